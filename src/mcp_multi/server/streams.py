"""Response streams of Streamable HTTP: resumable SSE event buffers, and the session owning them.

Theory of operation: every message the server sends over Streamable HTTP belongs to one
*stream* — the stream answering one POSTed request, or the session's standalone stream that
``GET /mcp`` opens. An :class:`EventStream` is where those messages wait: ``push`` adds a
message as the stream's next event (kept as JSON, encoded by
:func:`~mcp_multi.protocol.sse.encode_event` with an ``id`` of ``<stream>-<n>`` when the
stream is resumable) and wakes whoever is delivering it; ``pump`` is the delivering side,
writing events to one HTTP response from a cursor on. Because the events stay in a bounded
buffer after being written, a client whose connection broke can come back with
``Last-Event-ID`` and be served the rest of the *same* stream (never another's) from where
it stopped. A stream ends with ``finish``, which also pushes the request's response.

Only the handshake era resumes; a modern (2026-07-28) stream has no ids, no priming event
and nobody to resume it.

With a shared session store (``--session-store``) a session's requests may land on any
instance, so its streams must be readable from any of them. A request's stream stays an
:class:`EventStream` on the instance running the request (it alone writes it), and once it is
answered as a stream rather than as JSON it is *mirrored* into the store's journal of the
same number: another instance serves a ``Last-Event-ID`` for it from there (a
:class:`JournalStream`). The session's standalone stream, which any instance may push to (a
list change, a log line), lives only in the journal.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.jsonrpc import dumps
from ..protocol.sse import KEEPALIVE, encode_event
from .budget import ByteBudget
from .session import Outgoing, ServerSession

if TYPE_CHECKING:
    from .store import Journal

__all__ = ["GET_STREAM", "RETRY_MS", "EventStream", "HTTPSession", "JournalStream",
           "parse_event_id"]

logger = logging.getLogger(__name__)

# Reconnection delay we advise clients in the ``retry`` field of a priming event.
RETRY_MS = 1000
# Finished request streams a session keeps for Last-Event-ID replay.
RETAINED_STREAMS = 16
GET_STREAM = "0"
# Digits of an event number we read: no stream of ours counts further (and int() of a string
# thousands of digits long raises, or takes long).
_MAX_DIGITS = 18


class Writer(Protocol):
    async def write(self, data: bytes) -> None: ...


class EventStream:
    """The SSE events of one response stream, numbered from 1 and kept for replay.

    It holds at most ``limit`` events; the bytes it holds are reported to ``account`` (its
    session's, see :class:`HTTPSession`), which may ask it to :meth:`drop` its oldest ones.
    Events are only ever dropped from the oldest end, so every number up to ``dropped_to``
    is gone: a resume from before it is refused (:meth:`gone`), never served with a gap.
    """

    __slots__ = ("_account", "_dropping", "_events", "_limit", "_mirror", "_next", "_wake",
                 "attached", "delivered", "dropped_to", "final", "finished", "key", "resumable")

    def __init__(self, key: str, *, resumable: bool, limit: int,
                 account: Callable[[EventStream, int], None] | None = None) -> None:
        self.key = key
        self.resumable = resumable
        self._limit = limit
        self._account = account
        self._events: deque[tuple[int, bytes]] = deque()
        self._next = 1
        self._wake = asyncio.Event()
        self.finished = False
        # The response that ended the stream, less its result (the buffer holds that as
        # JSON: a retained stream must not hold a big reply twice, once out of the count).
        self.final: dict[str, Any] | None = None
        self.attached = False  # an HTTP response is delivering this stream now
        self.delivered = 0  # the last event number written to a client
        self.dropped_to = 0  # the newest event number dropped from the buffer
        self._dropping = False  # warned once that undelivered events are being dropped
        self._mirror: Journal | None = None  # where a shared session's stream is copied

    @property
    def last(self) -> int:
        """Number of the newest event (0 before any)."""
        return self._next - 1

    def push(self, message: Outgoing) -> None:
        """Add one JSON-RPC message as the stream's next event."""
        n = self._next
        self._next += 1
        if len(self._events) == self._limit:
            self._drop_oldest()
        payload = dumps(message)
        self._events.append((n, payload))
        if self._mirror is not None:
            self._mirror.append(payload, n)
        if self._account is not None:
            self._account(self, len(payload))  # may drop older events, never this one
        self._wake.set()

    def _drop_oldest(self) -> int:
        n, payload = self._events.popleft()
        self.dropped_to = n
        if n > self.delivered and not self._dropping:
            # Once per stream: a client must not flood our log.
            logger.warning("stream %s: dropping undelivered events from %d on (buffer of %d "
                           "events or its session's bytes full)", self.key, n, self._limit)
            self._dropping = True
        if self._account is not None:
            self._account(self, -len(payload))
        return len(payload)

    def drop(self, amount: int, *, delivered_only: bool, keep_newest: bool) -> int:
        """Drop the oldest events until ``amount`` bytes are freed; the bytes freed.

        ``delivered_only`` stops at the first event not yet written to a client;
        ``keep_newest`` spares the newest event (the one being added).
        """
        freed = 0
        while freed < amount and len(self._events) > keep_newest:
            if delivered_only and self._events[0][0] > self.delivered:
                break
            freed += self._drop_oldest()
        return freed

    def clear(self) -> None:
        """Forget every event (the stream can no longer be resumed). Deliberate, so silent:
        what a JSON answer carried was delivered without passing through the buffer."""
        self._dropping = True
        while self._events:
            self._drop_oldest()

    def gone(self, cursor: int) -> bool:
        """Whether events after ``cursor`` were dropped, so a resume from it would miss some."""
        return self.dropped_to > cursor

    def mirror(self, journal: Journal) -> None:
        """Copy the stream into ``journal`` from now on (what it holds first), so that another
        instance can serve a resume of it; its end is marked there too."""
        for n, payload in self._events:
            journal.append(payload, n)
        if self.finished:
            journal.end()
        self._mirror = journal

    def _encode(self, n: int, payload: bytes) -> bytes:
        return _event(self.key if self.resumable else None, n, payload)

    async def send(self, message: Outgoing) -> None:
        """:meth:`push` as a :data:`~mcp_multi.server.session.SendFn`."""
        self.push(message)

    def finish(self, final: dict[str, Any] | None = None) -> None:
        """End the stream, after ``final`` (the request's response) when given."""
        if final is not None:
            self.push(final)
            final = {key: value for key, value in final.items() if key != "result"}
        self.final = final
        self.finished = True
        if self._mirror is not None:
            self._mirror.end()
        self._wake.set()

    def only_message(self) -> bytes | None:
        """The JSON of the one message of a stream finished with nothing before its response."""
        if not self.finished or self.last != 1 or not self._events:
            return None
        return self._events[0][1]

    def priming(self, cursor: int) -> bytes:
        """The event that opens a resumable stream: an id at ``cursor``, empty data, ``retry``."""
        return _priming(self.key, cursor)

    def after(self, cursor: int) -> list[tuple[int, bytes]]:
        """The encoded events numbered after ``cursor`` that the buffer still holds."""
        return [(n, self._encode(n, payload)) for n, payload in self._events if n > cursor]

    def _next_after(self, cursor: int) -> tuple[int, bytes] | None:
        """The first event held numbered after ``cursor``, encoded; None if there is none."""
        for n, payload in self._events:
            if n > cursor:
                return n, self._encode(n, payload)
        return None

    async def wait(self, timeout: float) -> bool:
        """Wait for a new event or the end; False when ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def pump(self, writer: Writer, cursor: int, keepalive: float) -> None:
        """Write the events after ``cursor`` to ``writer`` until the stream finishes.

        Events are encoded one at a time as they are written (a stalled client must not
        make us hold a second, encoded copy of its backlog); ones dropped meanwhile are
        skipped. A comment line goes out whenever ``keepalive`` seconds pass without an
        event, so proxies and clients do not take a quiet stream for a dead one.
        """
        while True:
            self._wake.clear()
            while (event := self._next_after(cursor)) is not None:
                await writer.write(event[1])
                cursor = event[0]
                self.delivered = max(self.delivered, cursor)
            if self.finished:  # nothing is added after the end: all of it was written
                return
            if not await self.wait(keepalive):
                await writer.write(KEEPALIVE)


def _event(key: str | None, n: int, payload: bytes) -> bytes:
    """Event ``n`` of the stream ``key`` (no id when the stream is not resumable)."""
    return encode_event(payload, event="message", id=None if key is None else f"{key}-{n}")


def _priming(key: str, cursor: int) -> bytes:
    """The event that opens a resumable stream: an id at ``cursor``, empty data, ``retry``."""
    return encode_event(b"", id=f"{key}-{cursor}", retry=RETRY_MS)


class JournalStream:
    """A stream of a shared session read from (and, for the standalone stream, written to)
    the store's journal: what any instance serves when the stream may be written elsewhere.

    ``producer_alive`` says whether the instance writing the stream still runs (None: any
    instance may write it, as the standalone stream); a stream whose writer died without
    marking its end is ended once its journal has been quiet for a keep-alive period.
    """

    __slots__ = ("_journal", "_producer_alive", "delivered", "key")

    def __init__(self, key: str, journal: Journal,
                 producer_alive: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.key = key
        self._journal = journal
        self._producer_alive = producer_alive
        self.delivered = 0  # the last event number written to a client

    async def send(self, message: Outgoing) -> None:
        """Add a message to the stream (numbered by the store: any instance may write)."""
        self._journal.append(dumps(message))

    def priming(self, cursor: int) -> bytes:
        return _priming(self.key, cursor)

    async def gone(self, cursor: int) -> bool:
        """Whether events after ``cursor`` are no longer kept (or the stream is unknown)."""
        if not await self._journal.exists():
            return cursor > 0 or self._producer_alive is not None
        oldest = await self._journal.oldest()
        return oldest is not None and oldest > cursor + 1

    async def pump(self, writer: Writer, cursor: int, keepalive: float,
                   beat: Callable[[], Awaitable[bool]] | None = None,
                   beat_every: float = 5.0) -> None:
        """Write the events after ``cursor`` until the stream's end mark (or its writer's
        death); a keep-alive comment after each quiet ``keepalive`` seconds. ``beat`` is
        called every ``beat_every`` seconds, busy or quiet, and ends the stream when it says
        False (this instance lost its claim to deliver it)."""
        loop = asyncio.get_running_loop()
        last_write = last_beat = loop.time()
        while True:
            events, ended = await self._journal.read(cursor, min(keepalive, beat_every))
            for n, payload in events:
                await writer.write(_event(self.key, n, payload))
                cursor = self.delivered = n
            now = loop.time()
            if events:
                last_write = now
            if ended:
                return
            if now - last_beat >= beat_every:
                last_beat = now
                if beat is not None and not await beat():
                    return
                if (not events and self._producer_alive is not None
                        and not await self._producer_alive()):
                    return
            if now - last_write >= keepalive:
                await writer.write(KEEPALIVE)
                last_write = now


def parse_event_id(value: str) -> tuple[str, int] | None:
    """``(stream key, event number)`` of a ``Last-Event-ID``; None if it is not one of ours."""
    key, sep, number = value.partition("-")
    if not sep or not key or not number.isdigit() or len(number) > _MAX_DIGITS:
        return None
    return key, int(number)


class HTTPSession(ServerSession):
    """A handshake-era Streamable HTTP session (``Mcp-Session-Id``) and its streams.

    The session keeps its streams' events under ``max_bytes`` and charges them to the
    transport's server-wide ``budget``; past either it drops its oldest events (a
    :class:`~mcp_multi.server.budget.Holder`): first those already delivered, kept only for
    replay, then those of streams nobody is reading, then any — never the one being added.
    """

    __slots__ = ("_budget", "_counter", "_keep", "_limit", "_max_bytes", "_released",
                 "checked", "get_stream", "held", "stream_prefix", "streams")

    def __init__(self, *, limit: int, max_bytes: int | None = None,
                 budget: ByteBudget | None = None, session_id: str | None = None) -> None:
        self._limit = limit
        self._max_bytes = max_bytes
        self._budget = budget if budget is not None else ByteBudget(sys.maxsize)
        self._keep: EventStream | None = None  # the stream whose newest event is being added
        self._released = False
        self.held = 0  # bytes of events held by all the session's streams
        self.get_stream = EventStream(GET_STREAM, resumable=True, limit=limit,
                                      account=self._account)
        super().__init__("http", self.get_stream.send, session_id)
        # Shared sessions: the instance's id, before each request stream's number (keys unique
        # across the instances writing the session's streams).
        self.stream_prefix = ""
        # Shared sessions: when this copy was last brought up to date with the store's record
        # (time.monotonic(); 0: never, or another instance changed the record since).
        self.checked = 0.0
        self.streams: OrderedDict[str, EventStream] = OrderedDict()
        self._counter = 0
        self._budget.join(self)

    def _account(self, stream: EventStream, size: int) -> None:
        """``stream`` holds ``size`` bytes more (or fewer); past a bound, shed the oldest."""
        if self._released:
            return
        self.held += size
        if size < 0:
            self._budget.release(-size)
            return
        self._keep = stream
        try:
            self._budget.charge(size)  # may ask this session, or a bigger one, to shed
            if self._max_bytes is not None and self.held > self._max_bytes:
                self.shed(self.held - self._max_bytes)
        finally:
            self._keep = None

    def shed(self, amount: int) -> int:
        """Drop the session's oldest events until ``amount`` bytes are freed (if it can)."""
        freed = 0
        streams = [*self.streams.values(), self.get_stream]
        for delivered_only, unread_only in ((True, False), (False, True), (False, False)):
            for stream in streams:
                if freed >= amount:
                    return freed
                if unread_only and stream.attached:
                    continue
                freed += stream.drop(amount - freed, delivered_only=delivered_only,
                                     keep_newest=stream is self._keep)
        return freed

    def new_stream(self) -> EventStream:
        """A resumable stream for one request; old finished streams are forgotten."""
        self._counter += 1
        stream = EventStream(f"{self.stream_prefix}{self._counter}", resumable=True,
                             limit=self._limit,
                             account=self._account)
        self.streams[stream.key] = stream
        if len(self.streams) > RETAINED_STREAMS:
            for old in list(self.streams.values()):
                if len(self.streams) <= RETAINED_STREAMS:
                    break
                if old.finished and not old.attached:
                    self.forget(old)
        return stream

    def forget(self, stream: EventStream) -> None:
        """Drop a stream nobody can resume (it was answered as plain JSON, or is too old)."""
        self.streams.pop(stream.key, None)
        stream.clear()

    def find_stream(self, key: str) -> EventStream | None:
        if key == GET_STREAM:
            return self.get_stream
        return self.streams.get(key)

    @property
    def busy(self) -> bool:
        """Whether a request runs or a stream is being delivered (it must not be evicted)."""
        return (bool(self.inflight) or self.get_stream.attached
                or any(s.attached for s in self.streams.values()))

    def close(self) -> None:
        """End the session: running requests are cancelled, and each of their streams ends
        with the error response its request task pushes when cancelled (a stream cut off
        without it would leave its client an empty answer); the GET stream ends now. What
        the streams hold no longer counts against the server's budget."""
        super().close()
        self.get_stream.finish()
        if not self._released:
            self._released = True
            self._budget.release(self.held)
            self._budget.leave(self)
            self.held = 0
