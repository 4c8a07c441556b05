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
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from typing import Any, Protocol

from ..protocol.jsonrpc import dumps
from ..protocol.sse import KEEPALIVE, encode_event
from .session import Outgoing, ServerSession

__all__ = ["RETRY_MS", "EventStream", "HTTPSession", "parse_event_id"]

logger = logging.getLogger(__name__)

# Reconnection delay we advise clients in the ``retry`` field of a priming event.
RETRY_MS = 1000
# Finished request streams a session keeps for Last-Event-ID replay.
RETAINED_STREAMS = 16
GET_STREAM = "0"


class Writer(Protocol):
    async def write(self, data: bytes) -> None: ...


class EventStream:
    """The SSE events of one response stream, numbered from 1 and kept for replay."""

    __slots__ = ("_dropping", "_events", "_limit", "_next", "_wake", "attached", "delivered",
                 "final", "finished", "key", "resumable")

    def __init__(self, key: str, *, resumable: bool, limit: int) -> None:
        self.key = key
        self.resumable = resumable
        self._limit = limit
        self._events: deque[tuple[int, bytes]] = deque(maxlen=limit)
        self._next = 1
        self._wake = asyncio.Event()
        self.finished = False
        self.final: dict[str, Any] | None = None  # the response that ended the stream
        self.attached = False  # an HTTP response is delivering this stream now
        self.delivered = 0  # the last event number written to a client
        self._dropping = False  # warned once that undelivered events are being dropped

    @property
    def last(self) -> int:
        """Number of the newest event (0 before any)."""
        return self._next - 1

    def push(self, message: Outgoing) -> None:
        """Add one JSON-RPC message as the stream's next event."""
        n = self._next
        self._next += 1
        if len(self._events) == self._limit and self._events[0][0] > self.delivered:
            if not self._dropping:  # once per stream: a client must not flood our log
                logger.warning("stream %s: dropping undelivered events from %d on "
                               "(buffer of %d full)", self.key, self._events[0][0],
                               self._limit)
            self._dropping = True
        self._events.append((n, dumps(message)))
        self._wake.set()

    def _encode(self, n: int, payload: bytes) -> bytes:
        return encode_event(payload, event="message",
                            id=f"{self.key}-{n}" if self.resumable else None)

    async def send(self, message: Outgoing) -> None:
        """:meth:`push` as a :data:`~mcp_multi.server.session.SendFn`."""
        self.push(message)

    def finish(self, final: dict[str, Any] | None = None) -> None:
        """End the stream, after ``final`` (the request's response) when given."""
        if final is not None:
            self.push(final)
        self.final = final
        self.finished = True
        self._wake.set()

    def only_message(self) -> bytes | None:
        """The JSON of the one message of a stream finished with nothing before its response."""
        if not self.finished or self.last != 1 or not self._events:
            return None
        return self._events[0][1]

    def priming(self, cursor: int) -> bytes:
        """The event that opens a resumable stream: an id at ``cursor``, empty data, ``retry``."""
        return encode_event(b"", id=f"{self.key}-{cursor}", retry=RETRY_MS)

    def after(self, cursor: int) -> list[tuple[int, bytes]]:
        """The encoded events numbered after ``cursor`` that the buffer still holds."""
        return [(n, self._encode(n, payload)) for n, payload in self._events if n > cursor]

    async def wait(self, timeout: float) -> bool:
        """Wait for a new event or the end; False when ``timeout`` passed first."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def pump(self, writer: Writer, cursor: int, keepalive: float) -> None:
        """Write the events after ``cursor`` to ``writer`` until the stream finishes.

        A comment line goes out whenever ``keepalive`` seconds pass without an event, so
        proxies and clients do not take a quiet stream for a dead one.
        """
        while True:
            self._wake.clear()
            for n, event in self.after(cursor):
                await writer.write(event)
                cursor = self.delivered = n
            if self.finished and cursor >= self.last:
                return
            if not await self.wait(keepalive):
                await writer.write(KEEPALIVE)


def parse_event_id(value: str) -> tuple[str, int] | None:
    """``(stream key, event number)`` of a ``Last-Event-ID``; None if it is not one of ours."""
    key, sep, number = value.partition("-")
    if not sep or not key or not number.isdigit():
        return None
    return key, int(number)


class HTTPSession(ServerSession):
    """A handshake-era Streamable HTTP session (``Mcp-Session-Id``) and its streams."""

    __slots__ = ("_counter", "_limit", "get_stream", "streams")

    def __init__(self, *, limit: int) -> None:
        self._limit = limit
        self.get_stream = EventStream(GET_STREAM, resumable=True, limit=limit)
        super().__init__("http", self.get_stream.send)
        self.streams: OrderedDict[str, EventStream] = OrderedDict()
        self._counter = 0

    def new_stream(self) -> EventStream:
        """A resumable stream for one request; old finished streams are forgotten."""
        self._counter += 1
        stream = EventStream(str(self._counter), resumable=True, limit=self._limit)
        self.streams[stream.key] = stream
        if len(self.streams) > RETAINED_STREAMS:
            for key, old in list(self.streams.items()):
                if len(self.streams) <= RETAINED_STREAMS:
                    break
                if old.finished and not old.attached:
                    del self.streams[key]
        return stream

    def forget(self, stream: EventStream) -> None:
        """Drop a stream nobody can resume (it was answered as plain JSON)."""
        self.streams.pop(stream.key, None)

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
        without it would leave its client an empty answer); the GET stream ends now."""
        super().close()
        self.get_stream.finish()
