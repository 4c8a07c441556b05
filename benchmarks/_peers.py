"""Servers the benchmarks compare ours against, each run as its own process.

``python benchmarks/_peers.py sdk-sse PORT`` serves the official SDK's MCPServer with an
``echo`` tool over legacy SSE; ``floor-ws PORT`` is the floor: raw aiohttp answering every
WebSocket JSON-RPC request with a fixed echo result, with no MCP logic at all; ``sdk-http``
serves the SDK's MCPServer over Streamable HTTP at ``/mcp``, answering JSON.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
from aiohttp import WSMsgType, web


def floor_ws(port: int) -> None:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("mcp",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                req = orjson.loads(msg.data)
                if "id" in req:
                    text = "Echo: " + str(req.get("params", {}).get("arguments", {})
                                          .get("message", ""))
                    reply = {"jsonrpc": "2.0", "id": req["id"],
                             "result": {"content": [{"type": "text", "text": text}]}}
                    await ws.send_str(orjson.dumps(reply).decode())
        return ws

    app = web.Application()
    app.router.add_get("/ws", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=lambda *_: print("ready", flush=True))


def _sdk_server() -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("sdk-bench")

    @server.tool()
    def echo(message: str) -> str:
        """Echo back the provided message"""
        return f"Echo: {message}"

    return server


def sdk_sse(port: int) -> None:
    import uvicorn

    uvicorn.run(_sdk_server().sse_app(), host="127.0.0.1", port=port, log_level="warning")


def sdk_http(port: int) -> None:
    """The SDK's Streamable HTTP app answering JSON (the cheapest mode it has)."""
    import uvicorn

    app = _sdk_server().streamable_http_app(json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    peers = {"floor-ws": floor_ws, "sdk-sse": sdk_sse, "sdk-http": sdk_http}
    peers[sys.argv[1]](int(sys.argv[2]))
