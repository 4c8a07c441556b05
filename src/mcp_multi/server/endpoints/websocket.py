"""MCP over WebSocket at ``/ws``: one JSON-RPC message per text frame, both directions.

The ``mcp`` subprotocol that the official SDKs ask for is accepted; a client that asks for
none gets none. Requests run concurrently (see :meth:`Dispatcher.receive`).

Flow control: a peer that sends requests and never reads the replies must not make the
server hold them without bound. Replies are written one at a time (:class:`Outbound`), so
the transport's buffer holds one frame at most while the rest wait, counted, as bytes; the
connection's *backlog* is those bytes plus what the transport still buffers. Small replies
into a nearly empty buffer skip the turn: those of one loop turn (the answers to the
frames of one read) are framed here and leave in one write, which saves a system call and
a wake-up of the peer per reply. While the
backlog is over ``websocket_send_buffer`` — or the backlog of every connection together is
over ``websocket_total_buffer`` and this one has replies waiting — the server stops reading
the connection's frames (TCP pushes back on the peer). A connection that stays over its bound
for ``websocket_send_timeout`` seconds, or whose one frame cannot be written in that time, is
closed with 1008 and its transport aborted, which drops its buffer.

Connections sit in the WebSocket session table (see :mod:`~mcp_multi.server.session_table`):
past the table's limit the least recently used idle connection is closed with 1013 (try
again later) to admit a newcomer; past its address's share a newcomer is refused (503).

Credentials: the upgrade request is checked like every MCP request, and its caller owns the
session. A WebSocket carries no further headers, so the access token it was opened with
cannot be renewed on it: when that token expires the server closes the connection with
:data:`CLOSE_TOKEN_EXPIRED` (4401, "access token expired"; the 4xxx range is the
application's, and 401 says what HTTP would) and the client reconnects with a fresh token.
Requests already running are cancelled with the session.

Liveness: a peer that vanished without closing (its machine went down, a middlebox dropped
the connection) must not hold its session forever. Every ``websocket_heartbeat / 2`` seconds
one task per server (:class:`_Pinger`) looks at every connection: one that sent nothing since
the last look gets a ping, and one that still sent nothing a look after its ping is dropped
(1006, abnormal closure: no close frame, the transport is aborted). Anything the peer sends
counts, a pong or a frame; it is read from the count of reads its connection guard keeps
(:class:`~mcp_multi.server.limits.GuardedConnection`), so a busy connection costs nothing per
frame, where aiohttp's own heartbeat resets a timer on every one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from asyncio import Transport
from collections.abc import Callable, Sized

from aiohttp import WSCloseCode, WSMsgType, web

from ...protocol.errors import InvalidRequest
from ...protocol.jsonrpc import dumps
from ...protocol.wire import WEBSOCKET_SUBPROTOCOL
from ..auth.authenticator import caller_of
from ..limits import GuardedConnection
from ..session import Outgoing, ServerSession
from ..state import STATE, ServerState
from .http import error_reply

__all__ = ["CLOSE_TOKEN_EXPIRED", "Outbound", "handle_websocket"]

logger = logging.getLogger(__name__)

# Frames up to this multiple of the message limit are read and refused with a JSON-RPC error
# (the session lives on); larger ones close the connection with 1009 (message too big).
_FRAME_SLACK = 4
# A reply this small, into a buffer holding no more than this, is written straight away
# (see Outbound.send): far under the 64 KiB high-water mark of asyncio's and uvloop's
# transports, and under the size aiohttp compresses in an executor.
_UNBLOCKED = 4 * 1024
# How long a closing handshake may take with a peer that may not be reading.
_CLOSE_TIMEOUT = 0.5
# The close code of a connection whose access token expired.
CLOSE_TOKEN_EXPIRED = 4401
# A ping with no payload (RFC 6455 section 5.5.2), unmasked as a server's frames are.
_PING = b"\x89\x00"


class Outbound:
    """The replies of one connection on their way out, written one at a time and counted.

    ``send`` is the session's :data:`~mcp_multi.server.session.SendFn`; ``wait_for_room``
    is what the reading side awaits before it takes the next frame.
    """

    def __init__(self, ws: web.WebSocketResponse, transport: Transport, state: ServerState,
                 handler: asyncio.Task[object]) -> None:
        self._ws = ws
        self._transport = transport
        self._state = state
        self._handler = handler
        self._lock = asyncio.Lock()
        self._room = asyncio.Event()
        self.pending = 0  # bytes of replies waiting for their turn
        self.closing: tuple[int, str] | None = None  # (close code, why) once we end it
        # Small replies of one loop turn, framed by us and written together (see send);
        # only on a connection without permessage-deflate, whose frames need aiohttp.
        self._coalesce = not ws.compress
        self._batch: list[bytes] = []
        self._batched = 0
        # The frames aiohttp has read but not yet handed over (an internal of its reader:
        # None should it go, and then every small reply waits for the end of its turn).
        self._unread: Sized | None = getattr(getattr(ws, "_reader", None), "_buffer", None)
        self._send_buffer = state.settings.websocket_send_buffer
        self._reader_waits = False  # the reading side awaits _room (wait_for_room)

    @property
    def backlog(self) -> int:
        """Bytes waiting: replies not yet written plus what the transport still buffers."""
        return self.pending + self._batched + self._transport.get_write_buffer_size()

    @property
    def over(self) -> bool:
        """Whether this connection must not be read now (its replies pile up)."""
        pending = self.pending
        if pending + self._batched + self._transport.get_write_buffer_size() > self._send_buffer:
            return True
        state = self._state
        return pending > 0 and state.websocket_backlog > state.settings.websocket_total_buffer

    def end(self, code: int, why: str) -> None:
        """Close the connection (from any task): its handler closes with ``code``."""
        if self.closing is None:
            self.closing = (code, why)
            self._handler.cancel()

    async def send(self, message: Outgoing) -> None:
        if self.closing is not None or self._ws.closed:
            return
        data = dumps(message)
        size = len(data)
        # (``pending`` is nonzero while any reply takes or awaits its turn: the lock's holder
        # and its waiters all counted their bytes there first.)
        if size <= _UNBLOCKED and not self.pending:
            transport = self._transport
            if transport.get_write_buffer_size() + self._batched <= _UNBLOCKED:
                # Nothing of ours is being written and the buffer is far below its
                # high-water mark: a small frame is written at once without waiting to
                # drain, so it needs neither the turn nor the deadline (nor does it count
                # toward the backlog's peak: it leaves at most twice _UNBLOCKED buffered).
                if self._coalesce:
                    unread = self._unread
                    if self._batch or unread is None or len(unread):
                        self._gather(_text_frame(data), size)
                    elif not transport.is_closing():  # alone in its turn: straight out
                        transport.write(_text_frame(data))
                else:
                    await self._ws.send_frame(data, WSMsgType.TEXT)
                if self._reader_waits:
                    self._room.set()
                return
        state = self._state
        self.pending += size
        state.websocket_backlog += size
        state.websocket_backlog_peak = max(state.websocket_backlog_peak, self.backlog)
        try:
            async with self._lock:
                if self._ws.closed or self.closing is not None:
                    return
                self.flush()
                # aiohttp writes the frame into the transport, then waits for it to drain
                # below its high-water mark: with one writer at a time that is the bound.
                async with asyncio.timeout(state.settings.websocket_send_timeout):
                    await self._ws.send_frame(data, WSMsgType.TEXT)
        except TimeoutError:
            self.end(WSCloseCode.POLICY_VIOLATION, "the client does not read its replies")
        finally:
            self.pending -= size
            state.websocket_backlog -= size
            self._room.set()

    def _gather(self, frame: bytes, size: int) -> None:
        """Write a small framed reply with the others of its loop turn: the replies to the
        frames of one read leave in one write (one system call, one wake-up of the peer).
        While frames of that read still wait to be handled, a reply waits for them (at the
        latest for the end of this loop turn); the reply to its last frame takes them all.
        A reply that must take its turn flushes them first (order kept)."""
        batch = self._batch
        batch.append(frame)
        unread = self._unread
        if unread is not None and not len(unread):
            self.flush()
            return
        self._batched += size
        if len(batch) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the small replies gathered this loop turn (dropped once the connection
        closes, like any reply sent then)."""
        batch = self._batch
        if not batch:
            return
        self._batch = []
        self._batched = 0
        if self._ws.closed or self._transport.is_closing():
            return
        self._transport.write(batch[0] if len(batch) == 1 else b"".join(batch))
        if self._reader_waits:
            self._room.set()

    def ping(self) -> None:
        """Ping the peer (its pong, like anything it sends, tells the pinger it lives)."""
        if self.closing is None and not self._ws.closed and not self._transport.is_closing():
            self.flush()  # frames leave in the order they were made
            self._transport.write(_PING)

    async def wait_for_room(self) -> bool:
        """Wait while the backlog is over its bound; False if it stayed over too long."""
        if not self.over:
            return True
        deadline = time.monotonic() + self._state.settings.websocket_send_timeout
        while self.over and self.closing is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._room.clear()
            # Woken by our own replies leaving; a second at most between looks, since the
            # server-wide budget also frees up as other connections drain. (asyncio.timeout,
            # not wait_for: on 3.11 wait_for can swallow a cancel that races the wake-up.)
            self._reader_waits = True
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, 1.0)):
                        await self._room.wait()
            finally:
                self._reader_waits = False
        return self.closing is None

    async def close(self, code: int, why: str) -> None:
        """Say goodbye with ``code`` if the peer may take it, then drop the connection (and
        whatever the transport still buffers for it).

        A peer closed for not reading (1008) would never see a close frame, and waiting for
        the frame to drain is what must not happen, so its connection is aborted at once.
        """
        self.flush()
        try:
            # 1006 is never sent (RFC 6455 section 7.4.1): the peer is gone already.
            if code not in _ABORTED and not self.over:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(_CLOSE_TIMEOUT):
                        await self._ws.close(code=code, message=why.encode()[:120])
        finally:
            if not self._transport.is_closing() or self._transport.get_write_buffer_size():
                self._transport.abort()


# The frames that carry messages.
_DATA = (WSMsgType.TEXT, WSMsgType.BINARY)
# Close codes said by aborting the connection, without a close frame.
_ABORTED = (WSCloseCode.POLICY_VIOLATION, WSCloseCode.ABNORMAL_CLOSURE)


class _Pinger:
    """The heartbeat of every WebSocket connection of one server, in one task (module
    docstring). Made by the first connection of a server, gone with its last."""

    __slots__ = ("_interval", "_state", "_task", "_watched")

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._interval = state.settings.websocket_heartbeat / 2
        # Each connection: its guard, its count of reads at the last look, and whether it
        # was pinged then.
        self._watched: dict[Outbound, tuple[GuardedConnection, int, bool]] = {}
        self._task = asyncio.create_task(self._run())
        state.stream_handlers.add(self._task)

    def watch(self, outbound: Outbound, connection: GuardedConnection) -> None:
        self._watched[outbound] = (connection, connection.reads, False)

    def forget(self, outbound: Outbound) -> None:
        self._watched.pop(outbound, None)

    async def _run(self) -> None:
        try:
            while self._watched:
                await asyncio.sleep(self._interval)
                self._look()
        finally:
            if _pingers.get(id(self._state)) is self:
                del _pingers[id(self._state)]
            self._state.stream_handlers.discard(self._task)

    def _look(self) -> None:
        watched = self._watched
        for outbound, (connection, seen, pinged) in list(watched.items()):
            reads = connection.reads
            if reads != seen:
                watched[outbound] = (connection, reads, False)
            elif pinged:
                outbound.end(WSCloseCode.ABNORMAL_CLOSURE, "no answer to a ping")
            else:
                outbound.ping()
                watched[outbound] = (connection, reads, True)


# The pinger of each server that has WebSocket connections, by its state's identity (a
# pinger holds its state, so an identity cannot be reused while its pinger is here).
_pingers: dict[int, _Pinger] = {}


def _watch(state: ServerState, outbound: Outbound,
           transport: Transport) -> Callable[[], None] | None:
    """Put ``outbound``'s connection under its server's heartbeat; what takes it off again
    (None: no heartbeat, or a connection our guard does not hold)."""
    connection = transport.get_protocol()
    if state.settings.websocket_heartbeat <= 0 or not isinstance(connection, GuardedConnection):
        return None
    pinger = _pingers.get(id(state))
    if pinger is None:
        pinger = _pingers[id(state)] = _Pinger(state)
    pinger.watch(outbound, connection)
    return functools.partial(pinger.forget, outbound)


def _text_frame(data: bytes) -> bytes:
    """``data`` as one unmasked, uncompressed TEXT frame (RFC 6455 section 5.2)."""
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + data
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + data


async def handle_websocket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    limit = state.settings.max_message_size
    ws = web.WebSocketResponse(  # no heartbeat of aiohttp's: the pinger is it (docstring)
        protocols=(WEBSOCKET_SUBPROTOCOL,), max_msg_size=limit * _FRAME_SLACK,
        decode_text=False,
    )
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="WebSocket upgrade expected\n")
    address = request.remote or ""
    refused = state.websocket_sessions.admit(address)
    if refused is not None:
        return error_reply(503, InvalidRequest(refused))
    handler = asyncio.current_task()
    transport = request.transport
    assert handler is not None and transport is not None
    await ws.prepare(request)
    outbound = Outbound(ws, transport, state, handler)
    session = ServerSession("websocket", outbound.send)
    session.peer = address  # what its tasks are counted by, with its other sessions'
    session.principal = caller_of(request)
    expiry = _close_at_expiry(session, outbound)
    unwatch = _watch(state, outbound, transport)
    state.websocket_sessions.add(
        session, address, busy=lambda: bool(session.inflight or outbound.backlog),
        evict=lambda why: outbound.end(WSCloseCode.TRY_AGAIN_LATER, f"session ended: {why}"))
    state.stream_handlers.add(handler)
    state.stats.opened("websocket")
    logger.info("websocket session %s opened from %s", session.id, address)
    try:
        await _serve(ws, state, session, outbound)
    except asyncio.CancelledError:
        # Ended by us (evicted, not reading), the server shuts down, or the peer vanished.
        code, why = outbound.closing or (WSCloseCode.GOING_AWAY, "server shutting down"
                                         if state.shutting_down else "going away")
        await outbound.close(code, why)
    finally:
        if expiry is not None:
            expiry.cancel()
        if unwatch is not None:
            unwatch()
        state.websocket_sessions.remove(session.id)
        state.stream_handlers.discard(handler)
        session.close()
        state.stats.closed("websocket")
        logger.info("websocket session %s closed%s", session.id,
                    f": {outbound.closing[1]}" if outbound.closing else "")
    return ws


def _close_at_expiry(session: ServerSession,
                     outbound: Outbound) -> asyncio.TimerHandle | None:
    """Close the connection when the access token it was opened with expires."""
    expires_at = session.principal.expires_at
    if expires_at is None:
        return None
    return asyncio.get_running_loop().call_later(
        max(0.0, expires_at - time.time()), outbound.end, CLOSE_TOKEN_EXPIRED,
        "access token expired")


async def _serve(ws: web.WebSocketResponse, state: ServerState, session: ServerSession,
                 outbound: Outbound) -> None:
    """Read frames and hand them to the dispatcher, pausing while replies pile up."""
    touch = state.websocket_sessions.touch
    receive = state.dispatcher.receive
    sid = session.id
    while True:
        if outbound.over and not await outbound.wait_for_room():
            logger.warning("websocket session %s: the client does not read (%d bytes "
                           "waiting); closing", session.id, outbound.backlog)
            outbound.closing = outbound.closing or (WSCloseCode.POLICY_VIOLATION,
                                                    "the client does not read its replies")
            await outbound.close(*outbound.closing)
            return
        msg = await ws.receive()
        if msg.type in _DATA:
            touch(sid)
            await receive(session, msg.data)
        elif msg.type == WSMsgType.ERROR:
            logger.info("websocket session %s: %s", session.id, ws.exception())
            return
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return
