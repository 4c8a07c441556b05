"""What a tools/call carries, decided once per tool list rather than once per call."""

from __future__ import annotations

from typing import Any

from mcp_multi.client.connection import MCPConnection
from mcp_multi.transport import create_transport

from .scripted import ScriptedSession, StartScripted


async def _initialize(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
    return {"protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}, "tasks": {"requests": {"tools": {"call": {}}}}},
            "serverInfo": {"name": "scripted", "version": "0"}}


def _tools(*required: str) -> Any:
    async def tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"tools": [
            {"name": name, "inputSchema": {"type": "object"},
             **({"execution": {"taskSupport": "required"}} if name in required else {})}
            for name in ("echo", "slow")]}
    return tools


async def test_a_tool_that_requires_a_task_is_called_as_one_and_the_list_is_reread(
        start_scripted: StartScripted) -> None:
    listing = {"required": ("slow",)}

    async def tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return await _tools(*listing["required"])(params, session)

    async def call(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": "done"}]}

    server = await start_scripted({"initialize": _initialize, "tools/list": tools,
                                   "tools/call": call})
    async with MCPConnection("srv", create_transport("websocket", server.url("websocket")),
                             timeout=10) as conn:
        await conn.call_tool("slow", {})  # no tool list yet: a plain call
        await conn.list_tools()
        await conn.call_tool("slow", {})
        await conn.call_tool("echo", {})
        listing["required"] = ("echo",)
        await conn.list_tools(refresh=True)
        await conn.call_tool("slow", {})
        await conn.call_tool("echo", {})
    calls = [m["params"] for m in server.received if m.get("method") == "tools/call"]
    assert [(c["name"], "task" in c) for c in calls] == [
        ("slow", False), ("slow", True), ("echo", False), ("slow", False), ("echo", True)]
