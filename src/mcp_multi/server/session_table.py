"""The live sessions of one transport, bounded so that no client can lock the others out.

Theory of operation: each transport (WebSocket, legacy SSE, Streamable HTTP) keeps its
sessions in a :class:`SessionTable`, ordered from least to most recently used (``touch`` on
every request). Before a new session opens, ``admit`` makes room for it or says why not:

1. **A client address has a share** of the table (``per_client``, by default three quarters
   of it). An address at its share first loses its own half-open sessions (handshake never
   finished within the grace); if it is still at its share the newcomer is refused — one
   address can never take every seat, so others always find one.
2. **A full table makes room** instead of refusing: sessions idle past the idle timeout and
   half-open ones past the handshake grace are ended first, then the least recently used
   *idle* session gives way. A session is *busy* while a request runs on it or its stream
   has something being written (each transport says what busy means for it); a busy session
   is never evicted, so a table full of busy sessions refuses the newcomer (the per-address
   share keeps that from being one client's doing).

An evicted session is ended through the ``evict`` callback it was added with: its owner sees
the session end (404 on ``/mcp``, the SSE stream or the WebSocket closed) and opens a new one.
The table itself does no I/O.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

from .session import ServerSession

__all__ = ["SessionTable", "default_share"]

S = TypeVar("S", bound=ServerSession)
T = TypeVar("T")


def default_share(limit: int) -> int:
    """Seats one client address may hold when not configured: three quarters of the table
    (all of a table of one or two seats, which cannot be shared)."""
    return max(1, limit - limit // 4)


@dataclass(slots=True)
class _Seat(Generic[S]):
    session: S
    address: str
    busy: Callable[[], bool]
    # None: the session's own ``initialized`` says (no closure per seat for the usual case).
    is_settled: Callable[[], bool] | None
    evict: Callable[[str], object]
    last_used: float

    def settled(self) -> bool:
        """Whether the session's handshake finished."""
        return self.session.initialized if self.is_settled is None else self.is_settled()

    def idle_for(self, now: float) -> float:
        """Seconds since last use; -1 while busy (a busy session is never idle)."""
        return -1.0 if self.busy() else now - self.last_used


class SessionTable(Mapping[str, S]):
    """Sessions by id, least recently used first, with an admission rule (module docstring).

    Args:
        kind: the transport's name, for messages.
        limit: seats in the table.
        per_client: seats one client address may hold (None: :func:`default_share`).
        idle_timeout: seconds after which an idle session is ended to admit a new one.
        handshake_grace: seconds a session may stay half-open (no ``initialized`` yet).
    """

    def __init__(self, kind: str, limit: int, per_client: int | None = None, *,
                 idle_timeout: float, handshake_grace: float) -> None:
        self.kind = kind
        self.limit = limit
        self.per_client = min(limit, per_client or default_share(limit))
        self.idle_timeout = idle_timeout
        self.handshake_grace = handshake_grace
        self._seats: OrderedDict[str, _Seat[S]] = OrderedDict()
        self._by_address: dict[str, int] = {}
        self.evicted = 0  # sessions that gave way to a newcomer, since start

    # Mapping: the sessions by id.
    def __getitem__(self, session_id: str) -> S:
        return self._seats[session_id].session

    @overload
    def get(self, session_id: str, /) -> S | None: ...
    @overload
    def get(self, session_id: str, /, default: S | T) -> S | T: ...

    def get(self, session_id: str, /, default: object = None) -> object:
        """The session ``session_id``, or ``default`` (direct: the per-request lookup)."""
        seat = self._seats.get(session_id)
        return default if seat is None else seat.session

    def __iter__(self) -> Iterator[str]:
        return iter(self._seats)

    def __len__(self) -> int:
        return len(self._seats)

    def held_by(self, address: str) -> int:
        """Seats ``address`` holds now."""
        return self._by_address.get(address, 0)

    def add(self, session: S, address: str, *, busy: Callable[[], bool],
            evict: Callable[[str], object], settled: Callable[[], bool] | None = None) -> None:
        """Seat ``session`` (call ``admit`` first). ``busy`` says whether it may not be
        evicted now; ``settled`` whether its handshake finished (by default its
        ``initialized``); ``evict(reason)`` ends it when it must give way."""
        self._seats[session.id] = _Seat(session, address, busy, settled, evict,
                                        time.monotonic())
        self._by_address[address] = self.held_by(address) + 1

    def touch(self, session_id: str) -> None:
        """Mark a session used now (it becomes the last to be evicted)."""
        seat = self._seats.get(session_id)
        if seat is not None:
            seat.last_used = time.monotonic()
            self._seats.move_to_end(session_id)

    def remove(self, session_id: str) -> S | None:
        """Unseat a session (it ended); None if it was not seated."""
        seat = self._seats.pop(session_id, None)
        if seat is None:
            return None
        left = self._by_address[seat.address] - 1
        if left:
            self._by_address[seat.address] = left
        else:
            del self._by_address[seat.address]
        return seat.session

    def admit(self, address: str) -> str | None:
        """Make room for a session from ``address``; the reason it is refused, or None.

        Sessions that give way are unseated and their ``evict`` called before this returns.
        """
        now = time.monotonic()
        if self.held_by(address) >= self.per_client:
            self._expire(now, address)
            if self.held_by(address) >= self.per_client:
                return (f"Too many {self.kind} sessions from {address}: "
                        f"{self.per_client} of {self.limit} is one client's share")
        if len(self) >= self.limit:
            self._expire(now, None)
        if len(self) >= self.limit:
            victim = next((s for s in self._seats.values() if s.idle_for(now) >= 0), None)
            if victim is None:
                return f"Too many {self.kind} sessions: all {self.limit} are busy"
            self._give_way(victim, "least recently used, to admit a new session")
        return None

    def _expire(self, now: float, address: str | None) -> None:
        """End half-open sessions past the grace (of ``address`` only, when given) and, for
        the whole table, idle ones past the idle timeout."""
        for seat in list(self._seats.values()):
            idle = seat.idle_for(now)
            if idle < 0 or (address is not None and seat.address != address):
                continue
            if not seat.settled() and idle > self.handshake_grace:
                self._give_way(seat, "handshake never finished")
            elif address is None and idle > self.idle_timeout:
                self._give_way(seat, "idle")

    def _give_way(self, seat: _Seat[S], reason: str) -> None:
        self.remove(seat.session.id)
        self.evicted += 1
        seat.evict(reason)
