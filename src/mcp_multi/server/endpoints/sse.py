"""Legacy HTTP+SSE transport of protocol 2024-11-05: ``GET /sse`` and ``POST /message``.

``GET /sse`` opens the stream; its first event is ``endpoint`` whose data is the relative URL
``/message?sessionId=<id>``. The client POSTs each JSON-RPC message there (``sessionId`` or
``session_id``); the POST is answered ``202 Accepted`` and the reply travels on the stream as
an ``event: message``. Sessions sit in a bounded table where, when it is full, the least
recently used idle stream is ended to admit a newcomer (see
:mod:`~mcp_multi.server.session_table`); a client that drops the stream frees its session at
once.

Theory of operation. A stream may stay open for hours and a server may hold ten thousand, so
an open stream costs as little as we can make it: no task, no coroutine, no timer of its own.
``handle_sse`` admits the session, sends the response head through aiohttp (its middlewares
have checked the caller), then hands the connection over
(:func:`~mcp_multi.server.limits.hand_over`) to an :class:`SSEStream`, an asyncio protocol
that from then on writes the stream's events to the socket itself (in the chunked framing
the head announced) and hears when the client goes; aiohttp forgets the connection and the
handler returns. What a stream needs done over time is done for all the streams of a server
by one :class:`_Keeper` task, waking a few times a second:

- **keep-alive**: a stream quiet for :data:`KEEPALIVE_SECONDS` gets a comment line, so that
  proxies and clients do not take it for dead. Streams are kept in the order they were last
  written to (a write moves its stream to the end), so each wake looks only at the streams
  that are due;
- **the send deadline**: a write never waits. When the socket's buffer is full the transport
  pauses the stream, and events wait in the stream, bounded in number and in bytes and
  charged to the transport's server-wide
  :class:`~mcp_multi.server.budget.ByteBudget` (with what the paused transport holds). A
  client that lets more than the bounds pile up is not reading: its connection is dropped,
  and past the server-wide budget the streams holding the most are dropped first. A stream
  paused for longer than ``send_timeout`` is dropped too;
- **shutdown**: the keeper task is one of the server's stream handlers; cancelled at
  shutdown, it ends every stream cleanly.

The keeper stops when its server has no stream left, and the next stream starts another.

With a shared session store (``--session-store``) a POST may reach an instance that does not
hold the stream. Every instance then finds the session's record in the store and hands the
message to the instance named there (:mod:`~mcp_multi.server.cluster` delivers it into the
session). Even a POST that reaches the stream's own instance goes through the store, so that
the messages of one session are dispatched in the order they were accepted whichever
instance accepted them; a POST whose session's instance is gone gets 404, as for a session
that ended, and its client opens a new stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

import orjson
from aiohttp import hdrs, web

from ...protocol.errors import InvalidRequest
from ...protocol.jsonrpc import dumps
from ...protocol.sse import KEEPALIVE, KEEPALIVE_SECONDS, encode_event
from ...protocol.wire import PATH_SSE_MESSAGE
from ..auth.authenticator import caller_of, continues, same_caller
from ..auth.principal import principal_from_json, principal_to_json
from ..limits import hand_over
from ..session import Outgoing, ServerSession
from ..state import STATE, ServerState
from ..store import Delivery, SessionRecord, StoreUnavailable
from .http import error_reply, open_event_stream, read_body, send_within, store_unavailable

__all__ = ["SSEStream", "handle_message", "handle_sse", "receive_forwarded"]

# Seconds a shared legacy session's record, once read, serves its POSTs without being read
# again, and how many such records an instance keeps.
_RECHECK_SECONDS = 1.0
_MAX_RECORDS = 10_000

logger = logging.getLogger(__name__)


class SSEStream(asyncio.Protocol):
    """One open legacy SSE stream, once its response head is out: the protocol its connection
    was handed over to, and the ``send`` of its session (module docstring).

    ``send`` never blocks: a POST must not hang because its session's reader stalled. The
    stream ends when its client goes (:meth:`connection_lost`), when the session table
    evicts it or the server shuts down (:meth:`end`: the body is finished, the connection
    closed), or when its client does not read (the connection is dropped).
    """

    __slots__ = ("_bytes", "_chunked", "_events", "_in_transport", "_keeper", "_state",
                 "_transport", "ended_because", "last_write", "overflowed", "paused_at",
                 "session")

    def __init__(self, state: ServerState, session: ServerSession) -> None:
        self._state = state
        self.session = session
        self._transport: asyncio.Transport | None = None
        self._keeper: _Keeper | None = None
        self._chunked = True
        self._events: list[bytes] | None = None  # waiting while the transport is paused
        self._bytes = 0  # of the events waiting
        self._in_transport = 0  # bytes the paused transport holds, charged to the budget
        self.last_write = 0.0  # loop time of the last write (keep-alives count)
        self.paused_at: float | None = None  # loop time the transport paused us, if it has
        self.overflowed = False
        self.ended_because: str | None = None

    def start(self, transport: asyncio.Transport, chunked: bool) -> None:
        """Serve the stream on ``transport`` (handed over, its head written): the endpoint
        event goes out, and the stream joins its server's keeper."""
        self._transport = transport
        self._chunked = chunked
        self._keeper = _keeper_of(self._state)
        self._keeper.join(self)
        self._state.sse_buffer.join(self)
        self._write(encode_event(f"{PATH_SSE_MESSAGE}?sessionId={self.session.id}",
                                 event="endpoint"))

    @property
    def busy(self) -> bool:
        """Whether events wait or a paused transport holds some (it must not be evicted)."""
        return self._events is not None or self.paused_at is not None

    def is_busy(self) -> bool:
        """Whether the session must not be evicted: a request runs, or events are on
        their way."""
        return bool(self.session.inflight) or self.busy

    @property
    def held(self) -> int:
        """Bytes of events waiting, and held by a paused transport."""
        return self._bytes + self._in_transport

    async def send(self, message: Outgoing) -> None:
        """Put ``message`` on the stream (the session's ``send``)."""
        if self._transport is None:
            return
        event = encode_event(dumps(message), event="message")
        if self.paused_at is None:
            self._write(event)
            return
        size = len(event)
        settings = self._state.settings
        events = self._events
        if ((events is not None and len(events) >= settings.session_queue_size)
                or self.held + size > settings.session_bytes):
            self._overflow()
            return
        if events is None:
            self._events = events = []
        events.append(event)
        self._bytes += size
        self._state.sse_buffer.charge(size)  # may end this very stream, when it holds the most

    def _write(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None and self._keeper is not None
        transport.write(b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data)
        self.last_write = self._keeper.wrote(self)

    def keepalive(self) -> None:
        """A comment line (the keeper's, when the stream has been quiet)."""
        if self._transport is not None:
            self._write(KEEPALIVE)

    def shed(self, amount: int) -> int:
        """End the stream (the budget asks it to give ``amount`` back): all it held."""
        freed = self.held
        self._overflow()
        return freed

    def _overflow(self) -> None:
        if self._transport is None:
            return
        self.overflowed = True
        settings = self._state.settings
        logger.warning("sse session %s: the client is not reading (over %d events or %d "
                       "bytes waiting, or the most of all streams past the server's %d); "
                       "stream ended", self.session.id, settings.session_queue_size,
                       settings.session_bytes, settings.sse_total_buffer)
        self._finish(abort=True)

    def stalled(self, seconds: float) -> None:
        """The transport has been paused for ``seconds``, past the send deadline."""
        if self._transport is None:
            return
        self.ended_because = f"the client read nothing for {seconds:g} s"
        self._finish(abort=True)

    def end(self, why: str) -> None:
        """End the stream cleanly (evicted by the session table, or the server stops)."""
        if self._transport is None:
            return
        self.ended_because = why
        # A paused transport would hold the connection until a reader that never comes.
        self._finish(abort=self.paused_at is not None)

    # asyncio.Protocol: the callbacks of the connection handed over.
    def data_received(self, data: bytes) -> None:
        """A client sends nothing on its stream; what it sends anyway is ignored."""

    def eof_received(self) -> bool | None:
        return None  # the client is done: the transport closes

    def pause_writing(self) -> None:
        transport, keeper = self._transport, self._keeper
        if transport is None or keeper is None:
            return
        self.paused_at = keeper.paused(self)
        self._in_transport = transport.get_write_buffer_size()
        self._state.sse_buffer.charge(self._in_transport)

    def resume_writing(self) -> None:
        if self._keeper is not None:
            self._keeper.resumed(self)
        self.paused_at = None
        budget = self._state.sse_buffer
        budget.release(self._in_transport)
        self._in_transport = 0
        events, self._events = self._events, None
        if events is not None and self._transport is not None:
            budget.release(self._bytes)
            self._bytes = 0
            self._write(b"".join(events))  # one write for all that waited

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(abort=False)

    def _finish(self, *, abort: bool) -> None:
        """Close the connection (finished cleanly, or dropped) and end the session."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        state, session = self._state, self.session
        if self._keeper is not None:
            self._keeper.leave(self)
        if abort:
            transport.abort()
        elif not transport.is_closing():
            if self._chunked:
                transport.write(b"0\r\n\r\n")
            transport.close()
        budget = state.sse_buffer
        budget.release(self.held)
        budget.leave(self)
        self._events = None
        self._bytes = self._in_transport = 0
        state.sse_sessions.remove(session.id)
        if state.store.shared:
            state.chore(state.store.delete(session.id))
        session.close()
        state.stats.closed("sse")
        logger.info("sse session %s closed%s", session.id,
                    f": {self.ended_because}" if self.ended_because else "")


class _Keeper:
    """Keep-alives, send deadlines and shutdown for every open stream of one server, in one
    task (module docstring). Made by the first stream of a server, gone with its last."""

    __slots__ = ("_by_write", "_paused", "_state", "_task")

    def __init__(self, state: ServerState) -> None:
        self._state = state
        # Every stream, least recently written first: the ones due a keep-alive lead.
        self._by_write: OrderedDict[SSEStream, None] = OrderedDict()
        self._paused: dict[SSEStream, float] = {}
        self._task = asyncio.create_task(self._run())
        state.stream_handlers.add(self._task)

    def join(self, stream: SSEStream) -> None:
        self._by_write[stream] = None

    def leave(self, stream: SSEStream) -> None:
        self._by_write.pop(stream, None)
        self._paused.pop(stream, None)

    def wrote(self, stream: SSEStream) -> float:
        """``stream`` was just written to: it is the last due a keep-alive; the time now."""
        self._by_write.move_to_end(stream)
        return asyncio.get_running_loop().time()

    def paused(self, stream: SSEStream) -> float:
        """``stream``'s transport paused it: its send deadline runs from now (returned)."""
        now = asyncio.get_running_loop().time()
        self._paused.setdefault(stream, now)
        return self._paused[stream]

    def resumed(self, stream: SSEStream) -> None:
        self._paused.pop(stream, None)

    def _tick(self) -> float:
        return min(1.0, KEEPALIVE_SECONDS / 4, self._state.settings.send_timeout / 4)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._by_write:
                await asyncio.sleep(self._tick())
                self._sweep(loop.time())
        except asyncio.CancelledError:  # the server shuts down
            for stream in list(self._by_write):
                stream.end("the server is shutting down")
            raise
        finally:
            if _keepers.get(id(self._state)) is self:
                del _keepers[id(self._state)]
            self._state.stream_handlers.discard(self._task)

    def _sweep(self, now: float) -> None:
        deadline = self._state.settings.send_timeout
        for stream, since in list(self._paused.items()):
            if now - since > deadline:
                stream.stalled(now - since)
        quiet_since = now - KEEPALIVE_SECONDS
        due = []
        for stream in self._by_write:
            if stream.last_write > quiet_since:
                break
            due.append(stream)
        for stream in due:
            if stream.paused_at is None:
                stream.keepalive()
            else:  # its socket is full already: no comment needed
                self._by_write.move_to_end(stream)
                stream.last_write = now


# The keeper of each server that has streams open, by its state's identity (a keeper holds
# its state, so an identity cannot be reused while its keeper is here).
_keepers: dict[int, _Keeper] = {}


def _keeper_of(state: ServerState) -> _Keeper:
    keeper = _keepers.get(id(state))
    if keeper is None:
        keeper = _keepers[id(state)] = _Keeper(state)
    return keeper


async def handle_sse(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if state.shutting_down:
        return error_reply(503, InvalidRequest("Service Unavailable: the server is shutting "
                                               "down"))
    address = request.remote or ""
    refused = state.sse_sessions.admit(address)
    if refused is not None:
        return error_reply(503, InvalidRequest(refused))
    session = ServerSession("sse")
    session.peer = address  # what its tasks are counted by, with its other sessions'
    session.principal = caller_of(request)
    store = state.store
    if store.shared:
        try:
            await store.put(SessionRecord(session.id, "sse", store.instance,
                                          {"principal": principal_to_json(session.principal)}),
                            state.store_ttl)
        except StoreUnavailable:
            return store_unavailable()
    response = await open_event_stream(request)
    stream = SSEStream(state, session)
    transport = request.transport
    if transport is None or not hand_over(request, stream):
        if store.shared:
            state.chore(store.delete(session.id))
        session.close()
        return response  # the client went while the head was written
    session.send = stream.send
    state.sse_sessions.add(session, address, evict=stream.end, busy=stream.is_busy)
    state.stats.opened("sse")
    logger.info("sse session %s opened from %s", session.id, address)
    assert isinstance(transport, asyncio.Transport)
    # The head announced the framing of the body (chunked, unless the client spoke HTTP/1.0).
    chunked = "chunked" in response.headers.get(hdrs.TRANSFER_ENCODING, "").lower()
    stream.start(transport, chunked)
    if state.shutting_down:  # it began while the head was written: the keeper has gone
        stream.end("the server is shutting down")
    return response


async def handle_message(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    session_id = request.query.get("sessionId") or request.query.get("session_id")
    if not session_id:
        raise web.HTTPBadRequest(text="Missing sessionId query parameter\n")
    if state.store.shared:
        return await send_within(request, await _forward(request, state, session_id))
    session = state.sse_sessions.get(session_id)
    if session is None or not continues(session, request):
        raise _unknown(session_id)
    state.sse_sessions.touch(session_id)
    body = await read_body(request, state.settings.max_message_size)
    if isinstance(body, web.Response):
        return await send_within(request, body)
    state.stats.posts_accepted += 1
    await state.dispatcher.receive(session, body)
    return await send_within(request, _accepted())


def _unknown(session_id: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=f"Unknown session: {session_id}\n")


def _accepted() -> web.Response:
    return web.Response(status=202, text="Accepted")


async def _forward(request: web.Request, state: ServerState,
                   session_id: str) -> web.StreamResponse:
    """A shared session's POST: hand the message, with its caller, to the instance holding the
    session's stream (this one too), through the store."""
    store = state.store
    try:
        record = await _record(state, session_id)
    except StoreUnavailable:
        return store_unavailable()
    opener = None if record is None else principal_from_json(record.state.get("principal"))
    caller = caller_of(request)
    if (record is None or record.kind != "sse" or opener is None
            or not same_caller(caller, opener)):
        raise _unknown(session_id)
    body = await read_body(request, state.settings.max_message_size)
    if isinstance(body, web.Response):
        return body
    message = Delivery(session_id, "message", orjson.dumps(principal_to_json(caller)) + b"\n"
                       + body)
    try:
        delivered = await store.send_to(record.owner, message)
    except StoreUnavailable:
        return store_unavailable()
    if not delivered:  # the stream's instance stopped: the session is gone with it
        state.sse_records.pop(session_id, None)
        state.chore(store.delete(session_id))
        raise _unknown(session_id)
    state.stats.posts_accepted += 1
    return _accepted()


async def _record(state: ServerState, session_id: str) -> SessionRecord | None:
    """The record of the shared legacy session ``session_id``: as read less than a second ago
    (the instance holding its stream renews it; when that instance is gone, the delivery
    itself says so), else from the store."""
    now = time.monotonic()
    records = state.sse_records
    cached = records.get(session_id)
    if cached is not None and now - cached[0] < _RECHECK_SECONDS:
        return cached[1]
    record = await state.store.get(session_id, state.store_ttl)
    if record is None:
        records.pop(session_id, None)
        return None
    records[session_id] = (now, record)
    records.move_to_end(session_id)
    while len(records) > _MAX_RECORDS:
        records.popitem(last=False)
    return record


async def receive_forwarded(state: ServerState, session_id: str, body: bytes) -> None:
    """Dispatch a message :func:`_forward` handed this instance into its session, as the
    caller it names (whose token may have been refreshed since the stream opened)."""
    session = state.sse_sessions.get(session_id)
    head, sep, frame = body.partition(b"\n")
    if session is None or not sep:
        return
    try:
        caller = principal_from_json(orjson.loads(head))
    except orjson.JSONDecodeError:
        caller = None
    if caller is None or not same_caller(caller, session.principal):
        logger.warning("sse session %s: a forwarded message names another caller; dropped",
                       session.id)
        return
    session.principal = caller
    state.sse_sessions.touch(session_id)
    await state.dispatcher.receive(session, frame)
