"""Servers the benchmarks compare ours against, each run as its own process.

``python benchmarks/_peers.py sdk-sse PORT`` serves the official SDK's MCPServer with an
``echo`` tool over legacy SSE; ``floor-ws PORT`` is the floor: raw aiohttp answering every
WebSocket JSON-RPC request with a fixed echo result, with no MCP logic at all; ``floor-http``
is the same floor over HTTP (a JSON-RPC POST to ``/mcp`` answered with JSON, no session, no
headers checked); ``sdk-http`` serves the SDK's MCPServer over Streamable HTTP at ``/mcp``,
answering JSON.

The floors run on asyncio's own event loop, as a plain aiohttp application does; a third
argument ``uvloop`` runs them on uvloop instead (``benchmarks/run.py --floor-loop uvloop``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson
from aiohttp import WSMsgType, web


def _loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def floor_ws(port: int, loop: str = "asyncio") -> None:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("mcp",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                req = orjson.loads(msg.data)
                if "id" in req:
                    await ws.send_str(_echo_reply(req).decode())
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    web.run_app(app, host="127.0.0.1", port=port, loop=_loop(loop),
                print=lambda *_: print("ready", flush=True))


def _echo_reply(req: dict[str, Any]) -> bytes:
    text = "Echo: " + str(req.get("params", {}).get("arguments", {}).get("message", ""))
    return orjson.dumps({"jsonrpc": "2.0", "id": req["id"],
                         "result": {"content": [{"type": "text", "text": text}]}})


def floor_http(port: int, loop: str = "asyncio") -> None:
    async def handle(request: web.Request) -> web.Response:
        req = orjson.loads(await request.read())
        if "id" not in req:
            return web.Response(status=202)
        return web.Response(body=_echo_reply(req), content_type="application/json")

    app = web.Application()
    app.router.add_post("/mcp", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, loop=_loop(loop),
                print=lambda *_: print("ready", flush=True))


def _sdk_server() -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("sdk-bench")

    @server.tool()
    def echo(message: str) -> str:
        """Echo back the provided message"""
        return f"Echo: {message}"

    return server


def sdk_sse(port: int, _loop: str = "") -> None:
    import uvicorn

    uvicorn.run(_sdk_server().sse_app(), host="127.0.0.1", port=port, log_level="warning")


def sdk_http(port: int, _loop: str = "") -> None:
    """The SDK's Streamable HTTP app answering JSON (the cheapest mode it has)."""
    import uvicorn

    app = _sdk_server().streamable_http_app(json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    peers = {"floor-ws": floor_ws, "floor-http": floor_http, "sdk-sse": sdk_sse,
             "sdk-http": sdk_http}
    peers[sys.argv[1]](int(sys.argv[2]), *sys.argv[3:])
