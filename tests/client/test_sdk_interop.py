"""Our client against a server of the official ``mcp`` SDK over legacy HTTP+SSE.

The SDK server (``MCPServer.sse_app``, Starlette under uvicorn) runs in this test's event
loop on a socket we bind and listen on first, so the client can connect at once: its
connection waits in the backlog until uvicorn accepts it. No polling, no sleeps.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer

from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.testmode import run_checks
from mcp_multi.protocol.errors import JSONRPCError


def build_sdk_server() -> MCPServer:
    server = MCPServer("sdk-server")

    @server.tool()
    def echo(message: str) -> str:
        """Echo back the provided message"""
        return f"Echo: {message}"

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers"""
        return a + b

    @server.resource("info://about", mime_type="text/plain")
    def about() -> str:
        """What this server is"""
        return "an SDK server"

    return server


@pytest.fixture
async def sdk_sse_url() -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    app = build_sdk_server().sse_app(host="127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}/sse"
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
        sock.close()


async def test_client_talks_to_the_sdk_sse_server(sdk_sse_url: str) -> None:
    async with MultiServerMCPClient(timeout=10) as client:
        connection = await client.add("sdk", sdk_sse_url)
        assert connection.transport_kind == "sse"
        assert connection.server is not None and connection.server.server_name == "sdk-server"
        tools = await client.list_tools("sdk")
        assert [t["name"] for t in tools["sdk"]] == ["echo", "add"]  # type: ignore[union-attr]
        echo = await client.call("sdk", "echo", {"message": "from mcp-multi"})
        assert echo["content"][0]["text"] == "Echo: from mcp-multi"
        added = await client.call("sdk", "add", {"a": 2, "b": 40})
        assert added["content"][0]["text"] == "42"
        bad = await client.call("sdk", "add", {"a": "two"})
        assert bad.get("isError") is True
        read = await client.request("sdk", "resources/read", {"uri": "info://about"})
        assert read["contents"][0]["text"] == "an SDK server"
        await connection.ping()
        with pytest.raises(JSONRPCError):
            await client.request("sdk", "no/such/method", {})
        broadcast = await client.broadcast("echo", {"message": "all"})
        assert broadcast.ok


async def test_test_mode_passes_against_the_sdk_server(sdk_sse_url: str) -> None:
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("sdk", sdk_sse_url)
        report = await run_checks(client)
    statuses = {r.check: r.status for r in report.results}
    assert report.ok, [r for r in report.results if r.status == "FAIL"]
    assert statuses["call add"] == "PASS" and statuses["call echo"] == "PASS"
    assert statuses["disabled tool"] == "SKIP"  # no server://info on an SDK server
    assert statuses["resources/read"] == "PASS"
