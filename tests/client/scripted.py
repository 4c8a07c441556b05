"""A scripted MCP server on a real loopback socket, for behaviours our server never shows.

It speaks both client transports (``/ws`` and ``/sse`` + ``/message``) with the least code
that can: each method is answered by a handler the test chooses (a result, a JSON-RPC
error, or :data:`NO_REPLY` to stay silent), every message received is recorded, and a test
waits for one with :meth:`ScriptedServer.wait_for` (an event with a timeout, no sleeps).
The test can also push messages to the client and drop connections.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web

TIMEOUT = 10.0
NO_REPLY: dict[str, Any] = {"__no_reply__": True}

Handler = Callable[[dict[str, Any], "ScriptedSession"], Awaitable[dict[str, Any]]]


class ScriptedError(Exception):
    """Raise from a handler to answer with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


async def _initialize(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
    return {"protocolVersion": params.get("protocolVersion", "2025-11-25"),
            "capabilities": {"tools": {"listChanged": True}},
            "serverInfo": {"name": "scripted", "version": "0"}}


async def _empty(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
    return {}


async def _tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
    return {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}


async def _echo(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
    text = str(params.get("arguments", {}).get("message", ""))
    return {"content": [{"type": "text", "text": f"Echo: {text}"}]}


class ScriptedSession:
    """One client connection to the scripted server."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]],
                 close: Callable[[], Awaitable[None]]) -> None:
        self._send, self._close = send, close

    async def send(self, message: dict[str, Any] | bytes) -> None:
        await self._send(message if isinstance(message, bytes) else orjson.dumps(message))

    async def close(self) -> None:
        await self._close()


class ScriptedServer:
    """Start with :meth:`start`; ``url(kind)`` is where a client transport connects."""

    def __init__(self, handlers: dict[str, Handler] | None = None, *,
                 endpoint: str | None = None) -> None:
        self.handlers: dict[str, Handler] = {
            "initialize": _initialize, "ping": _empty, "tools/list": _tools, "tools/call": _echo,
        }
        self.handlers.update(handlers or {})
        self.endpoint = endpoint
        self.received: list[dict[str, Any]] = []
        self.sessions: list[ScriptedSession] = []
        self.ws_protocols: list[str] = []
        self._changed = asyncio.Condition()
        self._sse_sessions: dict[str, ScriptedSession] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> ScriptedServer:
        app = web.Application()
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/sse", self._sse)
        app.router.add_post("/message", self._message)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    def url(self, kind: str) -> str:
        path = "/ws" if kind == "websocket" else "/sse"
        scheme = "ws" if kind == "websocket" else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def drop_all(self) -> None:
        """Drop every client connection (the server stays up)."""
        for close in list(self._closers):
            await close()

    async def close(self) -> None:
        await self.drop_all()
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- observation -----------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                       timeout: float = TIMEOUT) -> dict[str, Any]:
        """The first received message matching ``predicate``, waiting for it if need be."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for message in self.received:
                    if predicate(message):
                        return message
                await self._changed.wait()

    async def wait_method(self, method: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.wait_for(lambda m: m.get("method") == method, timeout)

    # -- protocol --------------------------------------------------------------------

    async def _handle(self, raw: bytes | str, session: ScriptedSession) -> None:
        message = orjson.loads(raw)
        async with self._changed:
            self.received.append(message)
            self._changed.notify_all()
        method = message.get("method")
        if method is None or "id" not in message:
            return
        handler = self.handlers.get(method)
        try:
            if handler is None:
                raise ScriptedError(-32601, f"Method not found: {method}")
            result = await handler(message.get("params") or {}, session)
        except ScriptedError as exc:
            await session.send({"jsonrpc": "2.0", "id": message["id"],
                                "error": {"code": exc.code, "message": exc.message}})
            return
        if result is not NO_REPLY:
            await session.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        self.ws_protocols.append(request.headers.get("Sec-WebSocket-Protocol", ""))
        ws = web.WebSocketResponse(protocols=("mcp",))
        await ws.prepare(request)

        async def send(data: bytes) -> None:
            if not ws.closed:
                await ws.send_str(data.decode())

        session = ScriptedSession(send, ws.close)
        self.sessions.append(session)
        self._closers.append(ws.close)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self._spawn(self._handle(msg.data, session))
        return ws

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        session_id = f"s{next(self._ids)}"
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        endpoint = self.endpoint or f"/message?sessionId={session_id}"

        async def send(data: bytes) -> None:
            await queue.put(b"event: message\r\ndata: " + data + b"\r\n\r\n")

        async def close() -> None:
            await queue.put(None)

        session = ScriptedSession(send, close)
        self.sessions.append(session)
        self._sse_sessions[session_id] = session
        self._closers.append(close)
        await response.write(f"event: endpoint\r\ndata: {endpoint}\r\n\r\n".encode())
        while (chunk := await queue.get()) is not None:
            await response.write(chunk)
        self._sse_sessions.pop(session_id, None)
        return response

    async def _message(self, request: web.Request) -> web.StreamResponse:
        session = self._sse_sessions.get(request.query.get("sessionId", ""))
        if session is None:
            return web.Response(status=404, text="no such session")
        self._spawn(self._handle(await request.read(), session))
        return web.Response(status=202)


@pytest.fixture(params=["websocket", "sse"])
def transport_kind(request: pytest.FixtureRequest) -> str:
    """Run the test once over every client transport."""
    return str(request.param)


StartScripted = Callable[..., Awaitable[ScriptedServer]]


@pytest.fixture
async def start_scripted() -> AsyncIterator[StartScripted]:
    """Start scripted servers on 127.0.0.1:0; all are closed after the test."""
    running: list[ScriptedServer] = []

    async def start(handlers: dict[str, Handler] | None = None, **kwargs: Any) -> ScriptedServer:
        server = await ScriptedServer(handlers, **kwargs).start()
        running.append(server)
        return server

    yield start
    for server in running:
        await server.close()
