"""MCPConnection over every transport: handshake, requests, timeouts, loss, server messages."""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mcp_multi.client.connection import MCPConnection
from mcp_multi.protocol.client_state import ClientState
from mcp_multi.protocol.errors import (
    AuthorizationRequired,
    ConnectionClosed,
    InvalidParams,
    JSONRPCError,
    MethodNotFound,
    ProtocolError,
    RequestTimeout,
    TransportError,
)
from mcp_multi.transport import create_transport, stdio_url

from ..conftest import StartServer
from ..transport.test_stdio import gone
from .scripted import NO_REPLY, ScriptedError, ScriptedSession, StartScripted

TIMEOUT = 10.0


def url_of(kind: str, port: int) -> str:
    return f"ws://127.0.0.1:{port}/ws" if kind == "websocket" else f"http://127.0.0.1:{port}/sse"


def connection_to(kind: str, url: str, **kwargs: Any) -> MCPConnection:
    kwargs.setdefault("timeout", TIMEOUT)
    return MCPConnection("srv", create_transport(kind, url), **kwargs)


async def test_handshake_and_calls_against_our_server(
        transport_kind: str, start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(name="calculator", tools=("math_calc", "echo"))
    async with connection_to(transport_kind, url_of(transport_kind, server.port)) as conn:
        assert conn.is_open and conn.server is not None
        assert conn.server.server_name == "calculator"
        assert conn.protocol_version == "2025-11-25"
        tools = await conn.list_tools()
        assert [t["name"] for t in tools] == ["math_calc", "echo"]
        assert conn.cached_tools == tools
        result = await conn.call_tool("math_calc", {"expression": "2 + 2 * 3"})
        assert result["content"] == [{"type": "text", "text": "2 + 2 * 3 = 8"}]
        await conn.ping()
        with pytest.raises(InvalidParams, match="Tool 'list_files' is not enabled"):
            await conn.call_tool("list_files", {"path": "."})
        with pytest.raises(JSONRPCError, match="Unknown tool: nope"):
            await conn.call_tool("nope", {})
        listed = await conn.request("resources/list")
        assert "server://info" in [r["uri"] for r in listed["resources"]]
    assert not conn.is_open
    with pytest.raises(ConnectionClosed, match="closed by the client"):
        await conn.ping()


async def test_handshake_messages_on_the_wire(transport_kind: str,
                                              start_scripted: StartScripted) -> None:
    server = await start_scripted()
    async with connection_to(transport_kind, server.url(transport_kind)):
        initialized = await server.wait_method("notifications/initialized")
    first = server.received[0]
    assert first["method"] == "initialize" and first["params"]["protocolVersion"] == "2025-11-25"
    assert first["params"]["clientInfo"]["name"] == "mcp-multi-client"
    assert "id" not in initialized


async def test_unspoken_version_fails_the_handshake(transport_kind: str,
                                                    start_scripted: StartScripted) -> None:
    async def old(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"protocolVersion": "2023-01-01", "capabilities": {},
                "serverInfo": {"name": "old", "version": "0"}}

    server = await start_scripted({"initialize": old})
    conn = connection_to(transport_kind, server.url(transport_kind))
    with pytest.raises(ProtocolError, match="2023-01-01"):
        await conn.connect()
    assert not conn.is_open
    assert not any(m.get("method") == "notifications/initialized" for m in server.received)


async def test_refused_initialize_raises_the_servers_error(
        transport_kind: str, start_scripted: StartScripted) -> None:
    async def refuse(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        raise ScriptedError(-32602, "Unsupported protocol version")

    server = await start_scripted({"initialize": refuse})
    with pytest.raises(InvalidParams, match="Unsupported protocol version"):
        await connection_to(transport_kind, server.url(transport_kind)).connect()


async def test_tools_list_follows_cursors(transport_kind: str,
                                          start_scripted: StartScripted) -> None:
    pages = {None: (["a", "b"], "p2"), "p2": (["c"], "p3"), "p3": (["d"], None)}

    async def tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        names, cursor = pages[params.get("cursor")]
        result: dict[str, Any] = {"tools": [{"name": n, "inputSchema": {}} for n in names]}
        if cursor:
            result["nextCursor"] = cursor
        return result

    server = await start_scripted({"tools/list": tools})
    async with connection_to(transport_kind, server.url(transport_kind)) as conn:
        assert [t["name"] for t in await conn.list_tools()] == ["a", "b", "c", "d"]


async def test_tools_list_repeating_cursor_is_a_protocol_error(
        start_scripted: StartScripted) -> None:
    async def loop(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"tools": [], "nextCursor": "again"}

    server = await start_scripted({"tools/list": loop})
    async with connection_to("websocket", server.url("websocket")) as conn:
        with pytest.raises(ProtocolError, match="repeated cursor"):
            await conn.list_tools()


async def test_timeout_raises_and_tells_the_server(transport_kind: str,
                                                   start_scripted: StartScripted) -> None:
    async def silent(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return NO_REPLY

    server = await start_scripted({"tools/call": silent})
    async with connection_to(transport_kind, server.url(transport_kind)) as conn:
        start = time.monotonic()
        with pytest.raises(RequestTimeout, match=r"no response within 0\.3s"):
            await conn.call_tool("echo", {"message": "x"}, timeout=0.3)
        assert time.monotonic() - start < 5
        call = await server.wait_method("tools/call")
        cancelled = await server.wait_method("notifications/cancelled")
        assert cancelled["params"]["requestId"] == call["id"]
        await conn.ping()  # the connection lives on


async def test_lost_connection_fails_every_pending_request_at_once(
        transport_kind: str, start_scripted: StartScripted) -> None:
    async def silent(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return NO_REPLY

    server = await start_scripted({"tools/call": silent})
    async with connection_to(transport_kind, server.url(transport_kind), timeout=60) as conn:
        calls = [asyncio.create_task(conn.call_tool("echo", {"message": str(i)}))
                 for i in range(3)]
        await server.wait_for(
            lambda m: sum(x.get("method") == "tools/call" for x in server.received) == 3)
        start = time.monotonic()
        await server.drop_all()
        async with asyncio.timeout(TIMEOUT):
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert time.monotonic() - start < 5
        assert all(isinstance(o, ConnectionClosed) for o in outcomes), outcomes
        assert not conn.is_open and conn.closed_reason
        with pytest.raises(ConnectionClosed):
            await conn.ping()


async def test_server_ping_is_answered_and_other_requests_refused(
        transport_kind: str, start_scripted: StartScripted) -> None:
    server = await start_scripted()
    async with connection_to(transport_kind, server.url(transport_kind)):
        await server.wait_method("notifications/initialized")
        session = server.sessions[0]
        await session.send({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
        await session.send({"jsonrpc": "2.0", "id": "srv-2", "method": "sampling/createMessage",
                            "params": {}})
        pong = await server.wait_for(lambda m: m.get("id") == "srv-1")
        refusal = await server.wait_for(lambda m: m.get("id") == "srv-2")
    assert pong == {"jsonrpc": "2.0", "id": "srv-1", "result": {}}
    assert refusal["error"]["code"] == MethodNotFound.code


async def test_tools_list_changed_refreshes_the_cache(transport_kind: str,
                                                      start_scripted: StartScripted) -> None:
    names = ["first"]

    async def tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"tools": [{"name": n, "inputSchema": {}} for n in names]}

    server = await start_scripted({"tools/list": tools})
    seen: list[str] = []
    async with connection_to(transport_kind, server.url(transport_kind),
                             on_notification=lambda s, n: seen.append(n.method)) as conn:
        assert [t["name"] for t in await conn.list_tools()] == ["first"]
        names.append("second")
        await server.sessions[0].send(
            {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        await server.wait_for(
            lambda m: sum(x.get("method") == "tools/list" for x in server.received) == 2)
        assert [t["name"] for t in await conn.list_tools()] == ["first", "second"]
    assert seen == ["notifications/tools/list_changed"]


async def test_bad_frames_are_dropped_not_fatal(transport_kind: str,
                                                start_scripted: StartScripted) -> None:
    async def noisy(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        await session.send(b"this is not json")
        await session.send(b'{"jsonrpc": "1.0", "id": 99}')
        await session.send({"jsonrpc": "2.0", "id": 12345, "result": {}})  # nobody asked
        return {}

    server = await start_scripted({"ping": noisy})
    async with connection_to(transport_kind, server.url(transport_kind)) as conn:
        await conn.ping()
        assert conn.is_open


async def test_frame_hook_sees_both_directions(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    frames: list[tuple[str, str]] = []

    def hook(name: str, direction: str, frame: bytes | str) -> None:
        frames.append((name, direction))

    async with connection_to("websocket", url_of("websocket", server.port), on_frame=hook):
        pass
    assert frames[:3] == [("srv", "send"), ("srv", "recv"), ("srv", "send")]


async def test_unreachable_server_fails_fast(transport_kind: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = connection_to(transport_kind, url_of(transport_kind, port))
    with pytest.raises(TransportError, match="Connection refused"):
        await conn.connect()
    assert not conn.is_open



async def test_a_stdio_server_that_dies_fails_every_pending_request_at_once(
        tmp_path: Path) -> None:
    child = tmp_path / "dies.py"
    child.write_text(textwrap.dedent("""
        import json, sys
        for count, line in enumerate(sys.stdin, 1):
            message = json.loads(line)
            if message.get("method") == "initialize":
                print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "serverInfo": {"name": "mortal", "version": "0"}}}), flush=True)
            elif message.get("method") == "tools/call" and message["params"]["name"] == "die":
                print("out of memory", file=sys.stderr, flush=True)
                sys.exit(137)
    """))
    transport = create_transport("stdio", stdio_url([sys.executable, str(child)]))
    async with MCPConnection("mortal", transport, timeout=60,
                             protocol_version="2025-11-25") as conn:
        waiting = [asyncio.create_task(conn.call_tool("slow", {})) for _ in range(3)]
        start = time.monotonic()
        with pytest.raises(ConnectionClosed, match=r"exited with code 137.*out of memory"):
            await conn.call_tool("die", {})
        async with asyncio.timeout(TIMEOUT):
            outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert time.monotonic() - start < 5
        assert all(isinstance(o, ConnectionClosed) for o in outcomes), outcomes
        assert not conn.is_open


async def test_junk_on_stdout_is_dropped_without_flooding_the_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    child = tmp_path / "noisy.py"
    child.write_text(textwrap.dedent("""
        import runpy, sys
        for n in range(2500):
            print(f"junk line {n}", flush=True)
        sys.argv = ["mcp-server", "--stdio", "--tools", "echo"]
        runpy.run_module("mcp_multi.server", run_name="__main__")
    """))
    transport = create_transport("stdio", stdio_url([sys.executable, str(child)]))
    with caplog.at_level("WARNING", logger="mcp_multi.client.connection"):
        async with MCPConnection("noisy", transport, timeout=30,
                                 protocol_version="2025-11-25") as conn:
            result = await conn.call_tool("echo", {"message": "still fine"})
    assert result["content"][0]["text"] == "Echo: still fine"
    drops = [r for r in caplog.records if "dropping a bad frame" in r.getMessage()]
    assert 5 <= len(drops) <= 7  # the first five, then one at the 1000th and 2000th
    assert "(2000 so far)" in drops[-1].getMessage()


async def test_close_cancelled_midway_still_ends_the_child() -> None:
    """Ctrl-C landing while a connection closes must not leave its stdio child behind."""
    transport = create_transport("stdio", stdio_url(
        [sys.executable, "-m", "mcp_multi.server", "--stdio", "--tools", "echo"]))
    conn = MCPConnection("child", transport, timeout=30, protocol_version="2025-11-25")
    await conn.connect()
    pid = transport.pid  # type: ignore[attr-defined]
    closing = asyncio.create_task(conn.close())
    await asyncio.sleep(0)  # close() is under way: it has cancelled the reader
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert await gone(pid)
    await conn.close()  # a second close is harmless


async def test_the_connection_state_follows_its_life(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    conn = connection_to("websocket", url_of("websocket", server.port))
    assert (conn.state, conn.closed_reason, conn.is_open) == (ClientState.NEW, None, False)
    with pytest.raises(ConnectionClosed, match="not connected"):
        await conn.ping()
    async with conn:
        assert conn.state is ClientState.OPEN and conn.is_open
        with pytest.raises(ProtocolError, match="'connect' is not allowed on a connection "
                                                "that is open"):
            await conn.connect()
        assert conn.is_open  # the refused second connect changed nothing
    assert conn.state is ClientState.CLOSED
    assert conn.closed_reason == "connection closed by the client"


@pytest.mark.parametrize("kind", ["http", "sse"])
async def test_our_server_wanting_a_token_is_reported_with_its_challenge(
        kind: str, start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(auth_token="s3cret")
    path = "mcp" if kind == "http" else "sse"
    conn = connection_to(kind, f"http://127.0.0.1:{server.port}/{path}")
    with pytest.raises(AuthorizationRequired, match=r"HTTP 401 Unauthorized "
                                                    r"\(WWW-Authenticate: Bearer\)") as refused:
        await conn.connect()
    assert (refused.value.status, refused.value.challenge) == (401, "Bearer")
    assert conn.state is ClientState.CLOSED
