"""Legacy HTTP+SSE transport of protocol 2024-11-05: ``GET /sse`` and ``POST /message``.

``GET /sse`` opens the stream; its first event is ``endpoint`` whose data is the relative URL
``/message?sessionId=<id>``. The client POSTs each JSON-RPC message there (``sessionId`` or
``session_id``); the POST is answered ``202 Accepted`` and the reply travels on the stream as an
``event: message``. Each session has a bounded outbound queue; the number of sessions is bounded
too; a client that drops the stream frees its session at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from ...protocol.errors import InvalidRequest
from ...protocol.jsonrpc import dumps, error_response
from ..session import ServerSession
from ..state import STATE

__all__ = ["handle_message", "handle_sse", "read_body"]

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0


async def handle_sse(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if len(state.sse_sessions) >= state.settings.max_sse_sessions:
        raise web.HTTPServiceUnavailable(text="Too many SSE sessions\n")
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(state.settings.session_queue_size)
    session = ServerSession("sse", queue.put)
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache, no-transform",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    state.sse_sessions[session.id] = session
    handler = asyncio.current_task()
    if handler is not None:
        state.stream_handlers.add(handler)
    state.stats.opened("sse")
    logger.info("sse session %s opened from %s", session.id, request.remote)
    try:
        await response.write(f"event: endpoint\ndata: /message?sessionId={session.id}\n\n".encode())
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            await response.write(b"event: message\ndata: " + dumps(message) + b"\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        state.sse_sessions.pop(session.id, None)
        state.stream_handlers.discard(handler)
        session.close()
        state.stats.closed("sse")
        logger.info("sse session %s closed", session.id)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def handle_message(request: web.Request) -> web.Response:
    state = request.app[STATE]
    session_id = request.query.get("sessionId") or request.query.get("session_id")
    if not session_id:
        raise web.HTTPBadRequest(text="Missing sessionId query parameter\n")
    session = state.sse_sessions.get(session_id)
    if session is None:
        raise web.HTTPNotFound(text=f"Unknown session: {session_id}\n")
    body = await read_body(request, state.settings.max_message_size)
    if isinstance(body, web.Response):
        return body
    await state.dispatcher.receive(session, body)
    return web.Response(status=202, text="Accepted")


async def read_body(request: web.Request, limit: int) -> bytes | web.Response:
    """The request body, or a 413 response carrying a JSON-RPC error when it exceeds ``limit``."""
    size = request.content_length
    body = bytearray()
    if size is None or size <= limit:
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                break
        else:
            return bytes(body)
        size = len(body)
    err = InvalidRequest(f"Message too large: {size} bytes exceeds the limit of {limit} bytes")
    return web.Response(status=413, body=dumps(error_response(None, err)),
                        content_type="application/json")
