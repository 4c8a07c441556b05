"""Our client against servers of the official ``mcp`` SDK: legacy HTTP+SSE, Streamable HTTP
(event streams or JSON, with sessions or stateless, in both protocol eras) and stdio.

The SDK server (Starlette under uvicorn) runs in this test's event loop on a socket we bind
and listen on first, so the client can connect at once: its connection waits in the backlog
until uvicorn accepts it. The stdio server is ``sdk_server.py`` run with ``sys.executable``.
No polling, no sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette

from mcp_multi.client.connection import MCPConnection
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.testmode import run_checks
from mcp_multi.protocol.errors import JSONRPCError
from mcp_multi.transport import StreamableHTTPTransport, stdio_url

from .sdk_server import build_sdk_server

SDK_STDIO_SERVER = Path(__file__).with_name("sdk_server.py")


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[int]:
    """Serve ``app`` under uvicorn on a free loopback port; yield the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        async with asyncio.timeout(10):
            await task
        sock.close()


@pytest.fixture
async def sdk_sse_url() -> AsyncIterator[str]:
    async with serving(build_sdk_server().sse_app(host="127.0.0.1")) as port:
        yield f"http://127.0.0.1:{port}/sse"


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


async def _exercise(client: MultiServerMCPClient, connection: MCPConnection) -> None:
    assert connection.server is not None and connection.server.server_name == "sdk-server"
    tools = await connection.list_tools()
    assert [t["name"] for t in tools] == ["echo", "add"]
    echo = await client.call("sdk", "echo", {"message": "from mcp-multi"})
    assert echo["content"][0]["text"] == "Echo: from mcp-multi"
    assert (await client.call("sdk", "add", {"a": 2, "b": 40}))["content"][0]["text"] == "42"
    assert (await client.call("sdk", "add", {"a": "two"})).get("isError") is True
    read = await client.request("sdk", "resources/read", {"uri": "info://about"})
    assert read["contents"][0]["text"] == "an SDK server"
    await connection.ping()
    with pytest.raises(JSONRPCError):
        await client.request("sdk", "no/such/method", {})
    # concurrent calls each get their own answer
    sums = await asyncio.gather(*(client.call("sdk", "add", {"a": i, "b": 1}) for i in range(8)))
    assert [r["content"][0]["text"] for r in sums] == [str(i + 1) for i in range(8)]


HTTP_MODES = {
    "sse-sessions": {},
    "json-sessions": {"json_response": True},
    "sse-stateless": {"stateless_http": True},
    "json-stateless": {"stateless_http": True, "json_response": True},
}


@pytest.mark.parametrize("mode", list(HTTP_MODES))
@pytest.mark.parametrize("version", [None, "2025-11-25"], ids=["auto", "handshake"])
async def test_client_talks_to_the_sdk_streamable_http_server(mode: str,
                                                             version: str | None) -> None:
    app = build_sdk_server().streamable_http_app(**HTTP_MODES[mode])  # type: ignore[arg-type]
    async with serving(app) as port, MultiServerMCPClient(
            timeout=10, protocol_version=version) as client:
        connection = await client.add("sdk", f"http://127.0.0.1:{port}/mcp")
        assert connection.transport_kind == "http"
        transport = connection.transport
        assert isinstance(transport, StreamableHTTPTransport)
        if version is None:
            # The SDK server answers server/discover: the stateless revision, no session.
            assert connection.protocol_version == "2026-07-28" and connection.era == "modern"
            assert transport.session_id is None
        else:
            assert connection.protocol_version == "2025-11-25"
            assert (transport.session_id is None) == ("stateless" in mode)
        await _exercise(client, connection)


async def test_client_talks_to_the_sdk_stdio_server() -> None:
    target = stdio_url([sys.executable, str(SDK_STDIO_SERVER)])
    async with MultiServerMCPClient(timeout=20) as client:
        connection = await client.add("sdk", target)
        assert connection.transport_kind == "stdio"
        assert connection.protocol_version == "2026-07-28"
        await _exercise(client, connection)
    async with MultiServerMCPClient(timeout=20, protocol_version="2025-06-18") as client:
        connection = await client.add("sdk", target)
        assert connection.protocol_version == "2025-06-18" and connection.era == "handshake"
        await _exercise(client, connection)


async def test_test_mode_passes_against_sdk_http_and_stdio_servers() -> None:
    app: Any = build_sdk_server().streamable_http_app()
    async with serving(app) as port, MultiServerMCPClient(timeout=20) as client:
        await client.add("http", f"http://127.0.0.1:{port}/mcp")
        await client.add("stdio", stdio_url([sys.executable, str(SDK_STDIO_SERVER)]))
        report = await run_checks(client)
    assert report.ok, [r for r in report.results if r.status == "FAIL"]
    statuses = {(r.server, r.check): r.status for r in report.results}
    assert statuses[("http", "call add")] == statuses[("stdio", "call add")] == "PASS"
