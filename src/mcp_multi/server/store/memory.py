"""The session store of one process: everything in memory (the default).

Theory of operation: with no ``--session-store`` an instance is alone, so the store is a few
dictionaries. Its ``shared`` is False, which tells the endpoints to keep their local-only
path; the operations are nevertheless complete and behave as the Redis store's do (records
and journals expire after their TTL, journals keep at most ``limit`` entries, the only live
instance is this one), so that code written against :class:`~.base.SessionStore` can be
tested without Redis. Expired entries are dropped when looked at, and all of them at most
once a second by any operation.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from .base import Delivery, Inbox, Journal, SessionRecord, SessionStore
from .wire import check_key, valid_session_id

__all__ = ["MemoryStore"]

logger = logging.getLogger(__name__)

# Deliveries this instance may send itself before they are refused.
INBOX_LIMIT = 4096
# Events one read returns at most.
READ_BATCH = 256
SWEEP_EVERY = 1.0


@dataclass(slots=True)
class _Entries:
    """What a journal keeps: ``(number, payload)``, the payload None for the end mark."""

    entries: deque[tuple[int, bytes | None]] = field(default_factory=deque)
    last: int = 0
    producer: str | None = None
    expires: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryJournal(Journal):
    __slots__ = ("_key", "_limit", "_store", "_ttl")

    def __init__(self, store: MemoryStore, key: tuple[str, str], limit: int,
                 ttl: float) -> None:
        self._store = store
        self._key = key
        self._limit = max(1, limit)
        self._ttl = ttl

    def _kept(self) -> _Entries | None:
        kept = self._store._journals.get(self._key)
        if kept is not None and kept.expires <= self._store._clock():
            del self._store._journals[self._key]
            kept.changed.set()
            return None
        return kept

    def _add(self, payload: bytes | None, n: int | None) -> None:
        kept = self._kept()
        if kept is None:
            kept = self._store._journals[self._key] = _Entries()
            self._store._created.set()
            self._store._created = asyncio.Event()
        if n is None:
            n = kept.last + 1
        elif n <= kept.last:
            logger.warning("journal %s: event %d is not after %d, dropped", self._key[1], n,
                           kept.last)
            return
        kept.last = n
        kept.entries.append((n, payload))
        while len(kept.entries) > self._limit:
            kept.entries.popleft()
        kept.producer = self._store.instance
        kept.expires = self._store._clock() + self._ttl
        kept.changed.set()
        kept.changed = asyncio.Event()

    def append(self, payload: bytes, n: int | None = None) -> None:
        if n is not None and n < 1:
            raise ValueError("an event's number is 1 or more")
        self._add(payload, n)

    def end(self, final: bytes | None = None) -> None:
        if final is not None:
            self._add(final, None)
        self._add(None, None)

    async def flush(self) -> None:
        return None

    async def read(self, cursor: int, timeout: float) -> tuple[list[tuple[int, bytes]], bool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            kept = self._kept()
            events: list[tuple[int, bytes]] = []
            if kept is not None:
                for n, payload in kept.entries:
                    if n <= cursor:
                        continue
                    if payload is None:
                        return events, True
                    events.append((n, payload))
                    if len(events) >= READ_BATCH:
                        break
            remaining = deadline - loop.time()
            if events or remaining <= 0:
                return events, False
            # A journal not yet created wakes its readers through the store's event.
            changed = kept.changed if kept is not None else self._store._created
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return [], False

    async def oldest(self) -> int | None:
        kept = self._kept()
        return kept.entries[0][0] if kept is not None and kept.entries else None

    async def exists(self) -> bool:
        return self._kept() is not None

    async def producer(self) -> str | None:
        kept = self._kept()
        return kept.producer if kept is not None else None


class MemoryStore(SessionStore):
    """Sessions of this process only (see the module docstring)."""

    shared = False

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.instance = secrets.token_hex(6)
        self._clock = clock
        self._records: dict[str, tuple[SessionRecord, float]] = {}
        self._journals: dict[tuple[str, str], _Entries] = {}
        self._claims: dict[str, float] = {}
        self._created = asyncio.Event()
        self._swept = 0.0
        self._inbox: Inbox | None = None
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(INBOX_LIMIT)
        self._receiver: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return True

    async def start(self, inbox: Inbox) -> None:
        self._inbox = inbox
        if self._receiver is None:
            self._receiver = asyncio.create_task(self._receive(inbox))

    async def _receive(self, inbox: Inbox) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await inbox(delivery)
            except Exception:
                logger.exception("the inbox failed on a %s delivery", delivery.kind)

    async def close(self) -> None:
        self._inbox = None
        if self._receiver is not None:
            self._receiver.cancel()
            try:
                await self._receiver
            except asyncio.CancelledError:
                pass
            self._receiver = None

    def _sweep(self) -> None:
        now = self._clock()
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        for sid in [s for s, (_, at) in self._records.items() if at <= now]:
            del self._records[sid]
        for key in [k for k, kept in self._journals.items() if kept.expires <= now]:
            self._journals.pop(key).changed.set()
        for name in [n for n, at in self._claims.items() if at <= now]:
            del self._claims[name]

    async def put(self, record: SessionRecord, ttl: float) -> None:
        self._sweep()
        kept = SessionRecord(record.id, record.kind, record.owner, dict(record.state))
        self._records[record.id] = (kept, self._clock() + ttl)

    async def get(self, session_id: str, ttl: float) -> SessionRecord | None:
        self._sweep()
        found = self._records.get(session_id)
        if found is None:
            return None
        record, expires = found
        now = self._clock()
        if expires <= now:
            del self._records[session_id]
            return None
        self._records[session_id] = (record, now + ttl)
        return SessionRecord(record.id, record.kind, record.owner, dict(record.state))

    async def delete(self, session_id: str) -> bool:
        found = self._records.pop(session_id, None)
        return found is not None and found[1] > self._clock()

    async def refresh(self, session_ids: Collection[str], ttl: float) -> None:
        now = self._clock()
        for sid in session_ids:
            found = self._records.get(sid)
            if found is not None and found[1] > now:
                self._records[sid] = (found[0], now + ttl)

    async def send_to(self, instance: str, delivery: Delivery) -> bool:
        if instance != self.instance or self._inbox is None:
            return False
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            logger.warning("the inbox of this instance is full; a delivery was refused")
            return False
        return True

    async def broadcast(self, delivery: Delivery) -> None:
        return None  # there is no other instance

    async def alive(self, instance: str) -> bool:
        return instance == self.instance and self._inbox is not None

    def journal(self, session_id: str, key: str, *, limit: int, ttl: float) -> Journal:
        self._sweep()
        if not valid_session_id(session_id):
            raise ValueError("not a session id the store accepts")
        return MemoryJournal(self, (session_id, check_key(key)), limit, ttl)

    async def acquire(self, name: str, ttl: float) -> bool:
        self._sweep()
        now = self._clock()
        if self._claims.get(name, 0.0) > now:
            return False
        self._claims[name] = now + ttl
        return True

    async def renew(self, name: str, ttl: float) -> bool:
        self._sweep()
        now = self._clock()
        if self._claims.get(name, 0.0) <= now:
            return False
        self._claims[name] = now + ttl
        return True

    async def release(self, name: str) -> None:
        self._claims.pop(name, None)
