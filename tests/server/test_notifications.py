"""Progress and log notifications reach the caller on every transport, before the result."""

from __future__ import annotations

import pytest

from mcp_multi.server.app import RunningServer

from .wire import TRANSPORTS, connect


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_run_command_reports_progress_and_logs(transport: str,
                                                     mcp_server: RunningServer) -> None:
    peer = await connect(transport, mcp_server)
    try:
        await peer.initialize()
        assert (await peer.request("logging/setLevel", {"level": "info"}, id=1))["result"] == {}
        await peer.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_command", "arguments": {"command": "sleep 1.3; echo done"},
            "_meta": {"progressToken": "tok"}}})
        seen: list[dict] = []
        while True:
            msg = await peer.recv()
            if msg.get("id") == 2:
                break
            seen.append(msg)
        assert "done" in msg["result"]["content"][0]["text"]
        progress = [m["params"] for m in seen if m["method"] == "notifications/progress"]
        assert all(p["progressToken"] == "tok" for p in progress)
        values = [p["progress"] for p in progress]
        assert values == sorted(values) and len(set(values)) == len(values)
        assert values[-1] >= 1.0 and progress[-1]["total"] == mcp_server.state.settings \
            .command_timeout
        logs = [m["params"] for m in seen if m["method"] == "notifications/message"]
        assert [entry["level"] for entry in logs] == ["info", "info"]
        assert "started" in logs[0]["data"] and "exited with 0" in logs[1]["data"]
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", ["websocket", "sse"])
async def test_no_notifications_unless_asked(transport: str, mcp_server: RunningServer) -> None:
    peer = await connect(transport, mcp_server)
    try:
        await peer.initialize()
        await peer.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_command", "arguments": {"command": "sleep 1.2"}}})
        first = await peer.recv()
        assert first.get("id") == 2, first
    finally:
        await peer.close()
