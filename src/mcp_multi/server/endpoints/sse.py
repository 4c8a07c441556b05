"""Legacy HTTP+SSE transport of protocol 2024-11-05: ``GET /sse`` and ``POST /message``.

``GET /sse`` opens the stream; its first event is ``endpoint`` whose data is the relative URL
``/message?sessionId=<id>``. The client POSTs each JSON-RPC message there (``sessionId`` or
``session_id``); the POST is answered ``202 Accepted`` and the reply travels on the stream as an
``event: message``. Each session's outbound events are bounded in number and bytes (a client
that stops reading loses its stream, never the server its memory); sessions sit in a bounded
table where, when it is full, the least recently used idle stream is ended to admit a newcomer
(see :mod:`~mcp_multi.server.session_table`); a client that drops the stream frees its
session at once.

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
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

import orjson
from aiohttp import web

from ...protocol.errors import InvalidRequest
from ...protocol.jsonrpc import dumps
from ...protocol.sse import KEEPALIVE, KEEPALIVE_SECONDS, encode_event
from ...protocol.wire import PATH_SSE_MESSAGE
from ..auth.authenticator import caller_of, continues, same_caller
from ..auth.principal import principal_from_json, principal_to_json
from ..budget import ByteBudget
from ..session import Outgoing, ServerSession
from ..state import STATE, ServerState
from ..store import Delivery, SessionRecord, StoreUnavailable
from .http import (
    TimedWriter,
    error_reply,
    open_event_stream,
    read_body,
    send_within,
    store_unavailable,
)

__all__ = ["Outbox", "handle_message", "handle_sse", "receive_forwarded"]

# Seconds a shared legacy session's record, once read, serves its POSTs without being read
# again, and how many such records an instance keeps.
_RECHECK_SECONDS = 1.0
_MAX_RECORDS = 10_000

logger = logging.getLogger(__name__)


class Outbox:
    """Events waiting for one SSE stream, bounded in number and in bytes, and charged to the
    transport's server-wide :class:`~mcp_multi.server.budget.ByteBudget`.

    ``send`` never blocks: a POST must not hang because its session's reader stalled. A client
    that lets more than the bounds pile up is not reading; its stream is ended (``overflowed``)
    rather than let it pin the server's memory. Past the server-wide budget the streams holding
    the most are ended first. Events count until they are written: from ``take`` to
    ``written`` they are on their way to a socket that may be full.
    """

    def __init__(self, max_events: int, max_bytes: int, budget: ByteBudget,
                 on_overflow: Callable[[], object]) -> None:
        self._on_overflow = on_overflow
        self._budget = budget
        self._events: deque[bytes] = deque()
        self._bytes = 0  # of the events waiting
        self._taken = 0  # of the events being written
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._wake = asyncio.Event()
        self.overflowed = False
        self.writing = False  # events are being written to the client now
        budget.join(self)

    @property
    def busy(self) -> bool:
        """Whether events wait or are being written (the session must not be evicted)."""
        return bool(self._events) or self.writing

    @property
    def held(self) -> int:
        """Bytes of events waiting or being written."""
        return self._bytes + self._taken

    def shed(self, amount: int) -> int:
        """End the stream (the budget asks it to give ``amount`` back): all it held."""
        freed = self.held
        self._overflow()
        return freed

    def _overflow(self) -> None:
        if self.overflowed:
            return
        self.overflowed = True
        self.close()
        self._on_overflow()  # the writer may be stuck on a full socket: stop it
        self._wake.set()

    def close(self) -> None:
        """Forget every event and leave the budget."""
        self._budget.release(self.held)
        self._budget.leave(self)
        self._events.clear()
        self._bytes = self._taken = 0

    async def send(self, message: Outgoing) -> None:
        if self.overflowed:
            return
        event = encode_event(dumps(message), event="message")
        size = len(event)
        if len(self._events) >= self._max_events or self.held + size > self._max_bytes:
            self._overflow()
            return
        self._events.append(event)
        self._bytes += size
        self._budget.charge(size)  # may end this very stream, when it holds the most
        self._wake.set()

    async def take(self, timeout: float) -> list[bytes] | None:
        """Every waiting event (empty after ``timeout`` with none); None once overflowed."""
        if not self._events and not self.overflowed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        if self.overflowed:
            return None
        events = list(self._events)
        self._events.clear()
        self._taken += self._bytes
        self._bytes = 0
        return events

    def written(self) -> None:
        """The events of the last ``take`` are written: they no longer count."""
        self._budget.release(self._taken)
        self._taken = 0


async def handle_sse(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    address = request.remote or ""
    refused = state.sse_sessions.admit(address)
    if refused is not None:
        return error_reply(503, InvalidRequest(refused))
    settings = state.settings
    budget = settings.session_bytes
    handler = asyncio.current_task()
    assert handler is not None
    outbox = Outbox(settings.session_queue_size, budget, state.sse_buffer, handler.cancel)
    session = ServerSession("sse", outbox.send)
    session.peer = address  # what its tasks are counted by, with its other sessions'
    session.principal = caller_of(request)
    store = state.store
    if store.shared:
        try:
            await store.put(SessionRecord(session.id, "sse", store.instance,
                                          {"principal": principal_to_json(session.principal)}),
                            state.store_ttl)
        except StoreUnavailable:
            outbox.close()
            return store_unavailable()
    response = await open_event_stream(request)
    writer = TimedWriter(request, response)  # a write stuck on a full socket aborts it
    ended_because: list[str] = []

    def evict(why: str) -> None:
        ended_because.append(why)
        handler.cancel()

    state.sse_sessions.add(session, address, evict=evict,
                           busy=lambda: bool(session.inflight) or outbox.busy)
    state.stream_handlers.add(handler)
    state.stats.opened("sse")
    logger.info("sse session %s opened from %s", session.id, address)
    try:
        await writer.write(encode_event(f"{PATH_SSE_MESSAGE}?sessionId={session.id}",
                                        event="endpoint"))
        while (events := await outbox.take(KEEPALIVE_SECONDS)) is not None:
            outbox.writing = True
            # One write for all that waited: a chunk and a deadline per batch, not per event.
            await writer.write(b"".join(events) if events else KEEPALIVE)
            outbox.writing = False
            outbox.written()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        if outbox.overflowed:
            logger.warning("sse session %s: the client is not reading (over %d events or %d "
                           "bytes waiting, or the most of all streams past the server's %d); "
                           "stream ended", session.id, settings.session_queue_size, budget,
                           settings.sse_total_buffer)
        state.sse_sessions.remove(session.id)
        if store.shared:
            state.chore(store.delete(session.id))
        state.stream_handlers.discard(handler)
        outbox.close()
        session.close()
        state.stats.closed("sse")
        logger.info("sse session %s closed%s", session.id,
                    f": {ended_because[0]}" if ended_because else "")
    if outbox.overflowed and request.transport is not None:
        # Its socket is full: ending the chunked body would wait for a reader that never
        # comes, holding what the transport buffers. Drop the connection instead.
        request.transport.abort()
        return response
    with contextlib.suppress(ConnectionResetError):
        await writer.write_eof()
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
