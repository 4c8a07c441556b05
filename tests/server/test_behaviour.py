"""One behaviour suite, run over every server transport against a real server (handshake era;
the 2026-07-28 era has its own suite in test_modern.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .wire import TRANSPORTS, RawPeer, SSEPeer, StdioPeer, StreamableHTTPPeer, connect


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def peer(transport: str, mcp_server: RunningServer) -> AsyncIterator[RawPeer]:
    p = await connect(transport, mcp_server)
    await p.initialize()
    yield p
    await p.close()


def text_of(response: dict) -> str:
    return str(response["result"]["content"][0]["text"])


async def test_initialize_negotiates_versions(transport: str, mcp_server: RunningServer) -> None:
    for asked, answered in [("2024-11-05", "2024-11-05"), ("2025-03-26", "2025-03-26"),
                            ("2025-06-18", "2025-06-18"), ("2025-11-25", "2025-11-25"),
                            ("1999-01-01", "2025-11-25")]:
        p = await connect(transport, mcp_server)
        reply = await p.initialize(asked)
        result = reply["result"]
        assert result["protocolVersion"] == answered
        assert result["serverInfo"]["name"] == "test-server"
        assert set(result["capabilities"]) >= {"tools", "resources", "logging"}
        assert (await p.request("ping", id=7))["result"] == {}
        await p.close()


async def test_request_before_initialize_is_refused(transport: str,
                                                   mcp_server: RunningServer) -> None:
    p = await connect(transport, mcp_server)
    if isinstance(p, StreamableHTTPPeer):
        # Without a session id only initialize is accepted, and HTTP itself says no.
        for method in ("tools/list", "ping"):
            resp = await p.post(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method}))
            assert resp.status == 400
            error = (await resp.json())["error"]
            assert error["code"] == -32600 and "initialize" in error["message"]
    else:
        reply = await p.request("tools/list")
        assert reply["error"]["code"] == -32600
        assert "initialize" in reply["error"]["message"]
        assert (await p.request("ping", id=2))["result"] == {}
    await p.close()


async def test_tools_list(peer: RawPeer) -> None:
    tools = (await peer.request("tools/list"))["result"]["tools"]
    names = [t["name"] for t in tools]
    assert names == ["echo", "get_time", "list_files", "run_command", "math_calc"]
    by_name = {t["name"]: t for t in tools}
    assert by_name["math_calc"]["description"] == "Perform basic math calculations"
    assert by_name["echo"]["description"] == "Echo back the provided message"
    assert by_name["list_files"]["description"] == "List files in a directory"
    for tool in tools:
        assert tool["inputSchema"]["type"] == "object"
    assert by_name["echo"]["annotations"]["readOnlyHint"] is True
    assert by_name["run_command"]["annotations"]["destructiveHint"] is True


async def test_each_tool(peer: RawPeer, mcp_server: RunningServer) -> None:
    root: Path = mcp_server.state.settings.root
    (root / "README.md").write_text("x")
    (root / "mcp_server.py").write_text("x")

    async def call(name: str, arguments: dict) -> dict:
        return await peer.request("tools/call", {"name": name, "arguments": arguments})

    assert text_of(await call("echo", {"message": "Hello WebSocket!"})) == "Echo: Hello WebSocket!"
    assert text_of(await call("math_calc", {"expression": "2 + 2 * 3"})) == "2 + 2 * 3 = 8"
    assert text_of(await call("math_calc", {"expression": "100 / 4"})) == "100 / 4 = 25.0"
    stamp = text_of(await call("get_time", {}))
    assert stamp[:2] == "20" and "T" in stamp and (stamp.endswith("Z") or stamp[-6] in "+-")
    listing = text_of(await call("list_files", {"path": "."}))
    assert listing.startswith("Files in .:\n")
    assert "README.md" in listing.splitlines() and "mcp_server.py" in listing.splitlines()
    out = await call("run_command", {"command": "echo hi"})
    assert "hi" in text_of(out) and not out["result"].get("isError")


async def test_tool_failures_are_results(peer: RawPeer) -> None:
    bad = await peer.request("tools/call", {"name": "math_calc",
                                            "arguments": {"expression": "invalid"}})
    assert bad["result"]["isError"] is True and "invalid" in text_of(bad)
    missing = await peer.request("tools/call", {"name": "list_files",
                                                "arguments": {"path": "/nonexistent"}})
    assert missing["result"]["isError"] is True
    schema = await peer.request("tools/call", {"name": "echo", "arguments": {"message": 5}})
    assert schema["result"]["isError"] is True and "message" in text_of(schema)


@pytest.mark.parametrize("version", ["2024-11-05", "2025-03-26", "2025-06-18"])
async def test_schema_violation_before_2025_11_25_is_invalid_params(
        transport: str, mcp_server: RunningServer, version: str) -> None:
    p = await connect(transport, mcp_server)
    try:
        await p.initialize(version)
        reply = await p.request("tools/call", {"name": "echo", "arguments": {"message": 5}})
        assert reply["error"]["code"] == -32602
        assert reply["error"]["message"].startswith("Invalid arguments for tool 'echo': message:")
        assert reply["error"]["data"]["tool"] == "echo"
    finally:
        await p.close()


async def test_unknown_tool(peer: RawPeer) -> None:
    reply = await peer.request("tools/call", {"name": "nonexistent_tool", "arguments": {}})
    assert reply["error"]["code"] == -32602
    assert reply["error"]["message"] == "Unknown tool: nonexistent_tool"


async def test_tool_filter(transport: str, start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(name="calculator", tools=("math_calc", "echo"))
    p = await connect(transport, server)
    await p.initialize()
    names = [t["name"] for t in (await p.request("tools/list"))["result"]["tools"]]
    assert names == ["math_calc", "echo"]
    reply = await p.request("tools/call", {"name": "list_files", "arguments": {"path": "."}})
    assert reply["error"]["message"] == "Tool 'list_files' is not enabled on this server"
    info = await p.request("resources/read", {"uri": "server://info"})
    body = orjson.loads(info["result"]["contents"][0]["text"])
    assert body["name"] == "calculator" and body["tools"] == ["math_calc", "echo"]
    await p.close()


async def test_resources(peer: RawPeer, transport: str) -> None:
    listed = (await peer.request("resources/list"))["result"]["resources"]
    assert [r["uri"] for r in listed] == ["server://info", "server://stats"]
    info = (await peer.request("resources/read", {"uri": "server://info"}))["result"]
    body = orjson.loads(info["contents"][0]["text"])
    assert body["name"] == "test-server"
    if transport == "stdio":  # a stdio server serves its one client and listens nowhere
        assert body["transports"] == ["stdio"]
    else:
        assert body["endpoints"]["websocket"] == "/ws" and body["endpoints"]["http"] == "/mcp"
        assert body["transports"] == ["websocket", "sse", "http"]
    assert body["uptime_seconds"] >= 0
    stats = (await peer.request("resources/read", {"uri": "server://stats"}))["result"]
    numbers = orjson.loads(stats["contents"][0]["text"])
    assert numbers["connections"] >= 1 and numbers["memory_rss_bytes"] > 0
    templates = (await peer.request("resources/templates/list"))["result"]
    assert [t["uriTemplate"] for t in templates["resourceTemplates"]] == ["server://tools/{name}"]
    missing = await peer.request("resources/read", {"uri": "server://nope"})
    assert missing["error"]["code"] == -32002


async def test_logging_set_level(peer: RawPeer) -> None:
    assert (await peer.request("logging/setLevel", {"level": "debug"}))["result"] == {}
    bad = await peer.request("logging/setLevel", {"level": "loud"})
    assert bad["error"]["code"] == -32602


@pytest.mark.parametrize("frame, code", [
    (b"{not json", -32700),
    (b'{"jsonrpc": "1.0", "id": 5, "method": "ping"}', -32600),
    (b'{"jsonrpc": "2.0", "id": 6, "method": 42}', -32600),
    (b'[]', -32600),
    (b'"just a string"', -32600),
])
async def test_malformed_frames(peer: RawPeer, frame: bytes, code: int) -> None:
    await peer.send(frame)
    reply = await peer.recv()
    assert reply["error"]["code"] == code
    # The session survives bad input.
    assert (await peer.request("ping", id=99))["result"] == {}


async def test_wrong_jsonrpc_keeps_id(peer: RawPeer) -> None:
    await peer.send(b'{"jsonrpc": "1.0", "id": 5, "method": "ping"}')
    assert (await peer.recv())["id"] == 5


async def test_unknown_method_and_bad_params(peer: RawPeer) -> None:
    unknown = await peer.request("tools/dance")
    assert unknown["error"]["code"] == -32601
    no_name = await peer.request("tools/call", {"arguments": {}})
    assert no_name["error"]["code"] == -32602
    bad_args = await peer.request("tools/call", {"name": "echo", "arguments": [1]})
    assert bad_args["error"]["code"] == -32602
    bad_cursor = await peer.request("tools/list", {"cursor": "zzz"})
    assert bad_cursor["error"]["code"] == -32602


async def test_oversized_message(transport: str, start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(max_message_size=1024)
    p = await connect(transport, server)
    await p.initialize()
    big = orjson.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"message": "x" * 2000}}})
    if isinstance(p, (SSEPeer, StreamableHTTPPeer)):
        resp = await p.post(big)
        assert resp.status == 413
        assert "too large" in (await resp.json())["error"]["message"]
    else:
        await p.send(big)
        reply = await p.recv()
        assert reply["error"]["code"] == -32600 and "too large" in reply["error"]["message"]
    assert (await p.request("ping", id=4))["result"] == {}
    await p.close()


async def test_cancellation_stops_a_running_call(peer: RawPeer) -> None:
    await peer.send({"jsonrpc": "2.0", "id": 50, "method": "tools/call",
                     "params": {"name": "run_command", "arguments": {"command": "sleep 5"}}})
    # A ping answered while the call runs proves calls do not block the session.
    assert (await peer.request("ping", id=51))["result"] == {}
    await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": 50, "reason": "test"}})
    # The call has ended (its id is free again) and sent no result: the reply under id 50
    # is the new ping's, not the command's.
    assert (await peer.reuse_id(50))["result"] == {}


async def test_disconnect_frees_session(transport: str, mcp_server: RunningServer) -> None:
    stats = mcp_server.state.stats
    p = await connect(transport, mcp_server)
    await p.initialize()
    if isinstance(p, StdioPeer):
        # Closing stdin is how a client ends a stdio server: it exits, and cleanly.
        await p.close()
        assert p.proc.returncode == 0
        return
    assert stats.connections == 1
    await p.close()
    for _ in range(200):
        if stats.connections == 0:
            break
        await asyncio.sleep(0.01)
    assert stats.connections == 0
    assert not mcp_server.state.sse_sessions and not mcp_server.state.http_sessions


async def test_sessions_are_isolated(transport: str, mcp_server: RunningServer) -> None:
    a = await connect(transport, mcp_server)
    b = await connect(transport, mcp_server)
    await a.initialize()
    await b.initialize()
    await a.send(b"{garbage")
    await a.recv()
    reply = await b.request("tools/call", {"name": "echo", "arguments": {"message": "b"}})
    assert text_of(reply) == "Echo: b"
    await a.close()
    assert (await b.request("ping", id=9))["result"] == {}
    await b.close()


async def test_root_confines_list_files(peer: RawPeer, mcp_server: RunningServer) -> None:
    outside = mcp_server.state.settings.root.parent
    reply = await peer.request("tools/call", {"name": "list_files",
                                              "arguments": {"path": os.fspath(outside)}})
    assert reply["result"]["isError"] is True


@pytest.mark.parametrize("stream_transport", ["websocket", "sse", "stdio"])
async def test_batch_is_answered_as_one_array(stream_transport: str,
                                              mcp_server: RunningServer) -> None:
    p = await connect(stream_transport, mcp_server)
    try:
        await p.initialize("2025-03-26")
        await p.send(orjson.dumps([
            {"jsonrpc": "2.0", "id": "a", "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": "b", "method": "tools/call",
             "params": {"name": "echo", "arguments": {"message": "in a batch"}}},
            42,
        ]))
        reply: object = await p.recv()  # a batch answer is an array
        assert isinstance(reply, list) and len(reply) == 3
        by_id = {r["id"]: r for r in reply}
        assert by_id["a"]["result"] == {}
        assert by_id["b"]["result"]["content"][0]["text"] == "Echo: in a batch"
        assert by_id[None]["error"]["code"] == -32600
        assert (await p.request("ping", id="after"))["result"] == {}
    finally:
        await p.close()
