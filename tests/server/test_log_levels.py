"""Log notifications follow the level the client asked for: ``logging/setLevel`` in the
handshake era, each request's ``_meta`` ``logLevel`` in 2026-07-28 (none without it)."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .wire import TRANSPORTS, RawPeer, connect, enveloped

LEVEL = "io.modelcontextprotocol/logLevel"
LINES = ["Tool execution started", "Tool processing data", "Tool execution completed"]


@pytest.fixture
async def server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(name="log-server", profile="conformance")


async def logs_of_call(peer: RawPeer, id: int, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The log notifications that came with the call (all arrive before its reply)."""
    await peer.send({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    logs = []
    while (msg := await peer.recv()).get("id") != id:
        if msg.get("method") == "notifications/message":
            logs.append(msg["params"])
    assert not msg["result"].get("isError"), msg
    return logs


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_modern_log_level_per_request(server: RunningServer, transport: str) -> None:
    peer = await connect(transport, server, modern=True)
    tool = {"name": "test_tool_with_logging", "arguments": {}}
    try:
        logs = await logs_of_call(peer, 1, enveloped(tool, **{LEVEL: "info"}))
        assert [entry["data"] for entry in logs] == LINES
        assert {entry["level"] for entry in logs} == {"info"}
        assert {entry["logger"] for entry in logs} == {"test_tool_with_logging"}
        assert await logs_of_call(peer, 2, enveloped(tool, **{LEVEL: "warning"})) == []
        assert await logs_of_call(peer, 3, enveloped(tool)) == []  # none unless asked
        assert len(await logs_of_call(peer, 4, enveloped(tool, **{LEVEL: "debug"}))) == 3
        bad = await peer.request("tools/call", enveloped(tool, **{LEVEL: "loud"}), id=5)
        assert bad["error"]["code"] == -32602
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", ["websocket", "sse", "stdio"])
async def test_handshake_set_level(server: RunningServer, transport: str) -> None:
    peer = await connect(transport, server)
    tool = {"name": "test_tool_with_logging", "arguments": {}}
    try:
        await peer.initialize()
        assert await logs_of_call(peer, 1, tool) == []  # none before logging/setLevel
        assert (await peer.request("logging/setLevel", {"level": "error"}, id=2))["result"] == {}
        assert await logs_of_call(peer, 3, tool) == []
        assert (await peer.request("logging/setLevel", {"level": "info"}, id=4))["result"] == {}
        assert [entry["data"] for entry in await logs_of_call(peer, 5, tool)] == LINES
    finally:
        await peer.close()
