"""The interface between the server and wherever its sessions live.

Theory of operation: a session of Streamable HTTP or legacy SSE is one conversation, but
behind a load balancer its requests reach several server *instances* (processes). What they
must agree on goes through a :class:`SessionStore`:

- a **registry** of sessions (:class:`SessionRecord`: which kind, which instance owns it,
  the negotiated state), each kept for a TTL that every use refreshes;
- **deliveries** (:class:`Delivery`) from one instance to another: a message POSTed to an
  instance that does not hold the session's stream travels to the instance that does
  (``send_to``), and a session that ends tells everyone (``broadcast``); an instance's
  :meth:`SessionStore.start` names the inbox its deliveries arrive at;
- **journals** (:class:`Journal`): the events of a resumable SSE stream, numbered and kept
  bounded for a while, so that a client reconnecting with ``Last-Event-ID`` can be served
  by any instance;
- **claims** (``acquire``/``release``): one name held by one instance at a time, with a TTL.

Two implementations: :class:`~.memory.MemoryStore` (one process, ``shared`` False: the
endpoints keep their local-only path) and :class:`~.redis_store.RedisStore`.

A shared store can be unreachable. Then every operation raises :exc:`StoreUnavailable`
(quickly: every operation is bounded in time), :attr:`SessionStore.available` is False, and
the store logs that once; the first operation that succeeds again makes it available (and
logs that once too).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

__all__ = ["Delivery", "Inbox", "Journal", "SessionRecord", "SessionStore", "StoreUnavailable"]


class StoreUnavailable(Exception):
    """The shared session store cannot be reached now; the message is one line naming it."""


@dataclass(slots=True)
class SessionRecord:
    """A session as the store keeps it.

    ``kind`` is ``"http"`` (Streamable HTTP) or ``"sse"`` (legacy); ``owner`` the instance
    that holds the stream (sse) or created the session (http); ``state`` the JSON-able
    negotiated state, which the store keeps without looking into it.
    """

    id: str
    kind: str
    owner: str
    state: dict[str, Any]


@dataclass(slots=True)
class Delivery:
    """A message for a session, travelling between instances.

    ``kind`` ``"message"``: ``body`` is one raw JSON-RPC frame for the session, as a client
    sent it; ``"close"``: the session ended elsewhere (``body`` empty).
    """

    session_id: str
    kind: str
    body: bytes


Inbox = Callable[[Delivery], Awaitable[None]]


class Journal(ABC):
    """One stream of SSE events of one session, kept in the store.

    Events are numbered from 1. A journal is numbered one way for all its life: either its
    single producer gives every event's number (``append(payload, n)``), or the store does
    (``append(payload)``, safe with many producers). The journal keeps at most ``limit``
    entries (the oldest go first) and disappears ``ttl`` seconds after the last append.
    """

    @abstractmethod
    def append(self, payload: bytes, n: int | None = None) -> None:
        """Add an event (``n`` >= 1 its number, or None: the next one). Never blocks: a
        shared store queues it, and stores queued events in order."""

    @abstractmethod
    def end(self, final: bytes | None = None) -> None:
        """Append ``final`` (if any, numbered by the store) then the end mark."""

    @abstractmethod
    async def flush(self) -> None:
        """Wait until everything appended so far is stored (StoreUnavailable if it could
        not be; it stays queued and is tried again)."""

    @abstractmethod
    async def read(self, cursor: int, timeout: float) -> tuple[list[tuple[int, bytes]], bool]:
        """The events numbered after ``cursor`` (waiting up to ``timeout`` seconds while
        there are none), and whether the end mark was reached. A bounded batch: call again
        from the last number for more. Check :meth:`oldest` first: events already dropped
        are skipped silently here."""

    @abstractmethod
    async def oldest(self) -> int | None:
        """The number of the oldest entry still kept (the end mark has a number too: one
        after the last event), None when nothing is kept. A resume from ``cursor`` is whole
        when ``oldest() is None or oldest() <= cursor + 1``."""

    @abstractmethod
    async def exists(self) -> bool:
        """Whether anything of this journal is kept."""

    @abstractmethod
    async def producer(self) -> str | None:
        """The instance that appended the newest entry, None when there is none."""


class SessionStore(ABC):
    """Where the sessions of a server live (see the module docstring)."""

    instance: str
    shared: bool

    @abstractmethod
    async def start(self, inbox: Inbox) -> None:
        """Start receiving deliveries for this instance (handed to ``inbox`` one after the
        other: inbox must not block long) and announcing that it is alive."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving, store what is queued (bounded), and let go of the connections."""

    @abstractmethod
    async def put(self, record: SessionRecord, ttl: float) -> None:
        """Keep ``record`` (replacing any of the same id) for ``ttl`` seconds."""

    @abstractmethod
    async def get(self, session_id: str, ttl: float) -> SessionRecord | None:
        """The record of ``session_id`` (None if none), its TTL renewed to ``ttl``."""

    @abstractmethod
    async def delete(self, session_id: str) -> bool:
        """Forget the record of ``session_id``; whether there was one."""

    @abstractmethod
    async def refresh(self, session_ids: Collection[str], ttl: float) -> None:
        """Renew the TTL of every listed session that is still kept."""

    @abstractmethod
    async def send_to(self, instance: str, delivery: Delivery) -> bool:
        """Hand ``delivery`` to ``instance``; False when no live instance of that id
        listens."""

    @abstractmethod
    async def broadcast(self, delivery: Delivery) -> None:
        """Hand ``delivery`` to every other instance."""

    @abstractmethod
    async def alive(self, instance: str) -> bool:
        """Whether ``instance`` announced itself alive within the last heartbeat TTL."""

    @abstractmethod
    def journal(self, session_id: str, key: str, *, limit: int, ttl: float) -> Journal:
        """A handle on journal ``key`` of ``session_id`` (created by its first append);
        ``limit`` entries kept at most, for ``ttl`` seconds after the last append."""

    @abstractmethod
    async def acquire(self, name: str, ttl: float) -> bool:
        """Claim ``name`` for ``ttl`` seconds; False when anyone holds it (this instance
        included: a claim is not re-entrant), unless its holder is no longer alive: then the
        claim is taken over (an instance that died does not hold its claims for their TTL)."""

    @abstractmethod
    async def renew(self, name: str, ttl: float) -> bool:
        """Hold ``name`` for ``ttl`` seconds more; False when this instance no longer holds it."""

    @abstractmethod
    async def release(self, name: str) -> None:
        """Let go of ``name`` if this instance holds it."""

    @property
    @abstractmethod
    def available(self) -> bool:
        """False between a failure to reach the store and the next success."""
