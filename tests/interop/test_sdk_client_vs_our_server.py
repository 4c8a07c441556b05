"""The official ``mcp`` SDK's clients against our server."""

from __future__ import annotations

import aiohttp
from mcp import ClientSession
from mcp.client.sse import sse_client

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer


def _texts(result: object) -> list[str]:
    return [c.text for c in result.content]  # type: ignore[attr-defined]


async def test_sdk_sse_client_lists_and_calls(start_mcp_server: StartServer) -> None:
    server: RunningServer = await start_mcp_server(name="sdk-target")
    async with sse_client(server.base_url + "/sse") as (read, write), \
            ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.server_info.name == "sdk-target"
        tools = await session.list_tools()
        assert [t.name for t in tools.tools] == [
            "echo", "get_time", "list_files", "run_command", "math_calc"]
        echo = await session.call_tool("echo", {"message": "from the SDK"})
        assert _texts(echo) == ["Echo: from the SDK"] and not echo.is_error
        calc = await session.call_tool("math_calc", {"expression": "2 + 2 * 3"})
        assert _texts(calc) == ["2 + 2 * 3 = 8"]
        bad = await session.call_tool("math_calc", {"expression": "invalid"})
        assert bad.is_error
        info = await session.read_resource("server://info")
        assert '"sdk-target"' in info.contents[0].text  # type: ignore[union-attr]


async def test_websocket_mcp_subprotocol(mcp_server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(mcp_server.base_url + "/ws", protocols=("mcp",)) as ws:
        assert ws.protocol == "mcp"
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "ws", "version": "1"}}})
        assert (await ws.receive_json(timeout=5))["result"]["protocolVersion"] == "2025-06-18"
        await ws.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert len((await ws.receive_json(timeout=5))["result"]["tools"]) == 5
        await ws.send_json({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"message": "ws"}}})
        reply = await ws.receive_json(timeout=5)
        assert reply == {"jsonrpc": "2.0", "id": 3,
                         "result": {"content": [{"type": "text", "text": "Echo: ws"}]}}


async def test_websocket_without_subprotocol(mcp_server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(mcp_server.base_url + "/ws") as ws:
        assert ws.protocol is None
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert (await ws.receive_json(timeout=5))["result"] == {}
