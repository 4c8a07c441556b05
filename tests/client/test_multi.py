"""MultiServerMCPClient against real servers: naming, mixing transports, concurrent broadcast."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from mcp_multi.client.multi import MultiServerMCPClient, ServerExists, ServerNotFound
from mcp_multi.client.targets import ServerSpec
from mcp_multi.protocol.errors import (
    ConnectionClosed,
    InvalidParams,
    RequestTimeout,
    TransportError,
)

from ..conftest import StartServer
from .scripted import NO_REPLY, ScriptedSession, StartScripted


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_mixed_transports_add_call_remove(start_mcp_server: StartServer) -> None:
    calc = await start_mcp_server(name="calculator", tools=("math_calc", "echo"))
    files = await start_mcp_server(name="filesystem", tools=("list_files", "echo"))
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("calc", f"localhost:{calc.port}")
        await client.add("files", f"localhost:{files.port}", "sse")
        await client.add("calc2", f"ws://127.0.0.1:{calc.port}/ws")
        assert client.names == ["calc", "files", "calc2"]
        assert client.get("files").transport_kind == "sse"
        result = await client.call("calc", "math_calc", {"expression": "10 * 5"})
        assert result["content"][0]["text"] == "10 * 5 = 50"
        with pytest.raises(InvalidParams, match="Tool 'math_calc' is not enabled"):
            await client.call("files", "math_calc", {"expression": "1"})
        info = await client.request("files", "resources/read", {"uri": "server://info"})
        assert '"filesystem"' in info["contents"][0]["text"]
        tools = await client.list_tools()
        assert {name: [t["name"] for t in ts] for name, ts in tools.items()  # type: ignore[union-attr]
                } == {"calc": ["math_calc", "echo"], "files": ["list_files", "echo"],
                      "calc2": ["math_calc", "echo"]}
        with pytest.raises(ServerExists):
            await client.add("calc", f"localhost:{files.port}")
        with pytest.raises(ServerNotFound, match="Unknown server: nope"):
            await client.call("nope", "echo", {})
        connection = client.get("calc2")
        await client.remove("calc2")
        assert client.names == ["calc", "files"] and not connection.is_open
        with pytest.raises(ServerNotFound):
            await client.remove("calc2")
    assert len(client) == 0


async def test_add_all_keeps_order_and_reports_failures(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    dead = free_port()
    specs = [
        ServerSpec("b", "sse", f"http://127.0.0.1:{server.port}/sse"),
        ServerSpec("dead", "websocket", f"ws://127.0.0.1:{dead}/ws"),
        ServerSpec("a", "websocket", f"ws://127.0.0.1:{server.port}/ws"),
        ServerSpec("bad name", "websocket", f"ws://127.0.0.1:{server.port}/ws"),
    ]
    async with MultiServerMCPClient(timeout=10) as client:
        errors = await client.add_all(specs)
        assert client.names == ["b", "a"]
        assert set(errors) == {"dead", "bad name"}
        assert isinstance(errors["dead"], TransportError)
        assert isinstance(errors["bad name"], ValueError)


async def test_dead_server_can_be_added_again_under_its_name(
        start_mcp_server: StartServer) -> None:
    first = await start_mcp_server()
    second = await start_mcp_server()
    async with MultiServerMCPClient(timeout=10) as client:
        connection = await client.add("s", f"localhost:{first.port}")
        await first.close()
        with pytest.raises((ConnectionClosed, TransportError)):
            async with asyncio.timeout(10):
                while True:  # until the reader has seen the close
                    await connection.ping()
        await client.add("s", f"localhost:{second.port}")
        await client.call("s", "echo", {"message": "back"})


async def test_broadcast_to_ten_servers_with_one_stopped_mid_session(
        start_mcp_server: StartServer) -> None:
    servers = [await start_mcp_server(name=f"s{i}") for i in range(10)]
    async with MultiServerMCPClient(timeout=5) as client:
        for i, server in enumerate(servers):
            await client.add(f"s{i}", f"localhost:{server.port}",
                             "sse" if i % 2 else "websocket")
        warmup = await client.broadcast("echo", {"message": "warm"})
        assert warmup.ok and warmup.id == 1
        await servers[3].close()
        start = time.monotonic()
        broadcast = await client.broadcast("echo", {"message": "Hello all servers!"})
        elapsed = time.monotonic() - start
    assert elapsed < 5
    assert broadcast.id == 2
    assert [o.server for o in broadcast.outcomes] == [f"s{i}" for i in range(10)]
    failed = [o for o in broadcast.outcomes if not o.ok]
    assert [o.server for o in failed] == ["s3"]
    assert isinstance(failed[0].error, TransportError)
    assert failed[0].response(broadcast.id) is None
    for outcome in broadcast.outcomes:
        if outcome.ok:
            assert outcome.response(broadcast.id) == {
                "jsonrpc": "2.0", "id": 2,
                "result": {"content": [{"type": "text", "text": "Echo: Hello all servers!"}]}}


async def test_broadcast_a_hung_server_times_out_alone(
        start_mcp_server: StartServer, start_scripted: StartScripted) -> None:
    fast = [await start_mcp_server() for _ in range(3)]

    async def hang(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return NO_REPLY

    slow = await start_scripted({"tools/call": hang})
    async with MultiServerMCPClient(timeout=10) as client:
        for i, server in enumerate(fast):
            await client.add(f"fast{i}", f"localhost:{server.port}")
        await client.add("slow", slow.url("sse"))
        start = time.monotonic()
        broadcast = await client.broadcast("echo", {"message": "x"}, timeout=0.5)
        elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 5
    outcomes = {o.server: o for o in broadcast.outcomes}
    assert all(outcomes[f"fast{i}"].ok for i in range(3))
    assert all(outcomes[f"fast{i}"].seconds < 0.5 for i in range(3))
    assert isinstance(outcomes["slow"].error, RequestTimeout)


async def test_broadcast_reports_json_rpc_errors_as_responses(
        start_mcp_server: StartServer) -> None:
    both = await start_mcp_server(tools=("get_time", "echo"))
    echo_only = await start_mcp_server(tools=("echo",))
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("both", f"localhost:{both.port}")
        await client.add("echo", f"localhost:{echo_only.port}", "sse")
        broadcast = await client.broadcast("get_time", {})
        listing = await client.broadcast_request("resources/list")
    by_name = {o.server: o for o in broadcast.outcomes}
    assert by_name["both"].ok
    refused = by_name["echo"].response(broadcast.id)
    assert refused is not None and refused["error"]["code"] == -32602
    assert refused["error"]["message"] == "Tool 'get_time' is not enabled on this server"
    assert listing.ok and listing.id == 2
