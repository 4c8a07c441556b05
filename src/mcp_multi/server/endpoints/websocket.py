"""MCP over WebSocket at ``/ws``: one JSON-RPC message per text frame, both directions.

The ``mcp`` subprotocol that the official SDKs ask for is accepted; a client that asks for
none gets none. Requests run concurrently (see :meth:`Dispatcher.receive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from ...protocol.jsonrpc import dumps
from ..session import Outgoing, ServerSession
from ..state import STATE

__all__ = ["handle_websocket"]

logger = logging.getLogger(__name__)

# Frames up to this multiple of the message limit are read and refused with a JSON-RPC error
# (the session lives on); larger ones close the connection with 1009 (message too big).
_FRAME_SLACK = 4


async def handle_websocket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    limit = state.settings.max_message_size
    ws = web.WebSocketResponse(
        protocols=("mcp",), max_msg_size=limit * _FRAME_SLACK, heartbeat=30.0,
        decode_text=False,
    )
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="WebSocket upgrade expected\n")
    await ws.prepare(request)

    async def send(message: Outgoing) -> None:
        if not ws.closed:
            await ws.send_frame(dumps(message), WSMsgType.TEXT)

    session = ServerSession("websocket", send)
    handler = asyncio.current_task()
    if handler is not None:
        state.stream_handlers.add(handler)
    state.stats.opened("websocket")
    logger.info("websocket session %s opened from %s", session.id, request.remote)
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await state.dispatcher.receive(session, msg.data)
            elif msg.type == WSMsgType.ERROR:
                logger.info("websocket session %s: %s", session.id, ws.exception())
                break
    except asyncio.CancelledError:
        # Server shutdown (or the peer vanished): say goodbye with 1001 when we still can.
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
    finally:
        state.stream_handlers.discard(handler)
        session.close()
        state.stats.closed("websocket")
        logger.info("websocket session %s closed", session.id)
    return ws
