"""Roles from token scopes, end to end: the test authorization server's tokens, our server with
``--auth-issuer`` and ``--policy``, our client over every transport.

A reader (scope ``mcp:read``) sees and calls only its tools; an operator (scope ``mcp:admin``)
sees them all and the admin tool. When the operator disables a tool while the reader is
connected, the reader is told ``notifications/tools/list_changed`` and its call is refused.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.protocol.errors import MCPError
from mcp_multi.protocol.jsonrpc import Notification

from .conftest import TRANSPORTS, Protected, StartProtected, write_policy

POLICY = """
[roles.reader]
tools = ["echo", "get_time"]

[roles.operator]
tools = ["*"]
admin = true

[[grants]]
scope = "mcp:read"
roles = ["reader"]

[[grants]]
scope = "mcp:admin"
roles = ["operator"]
"""

READER_TOOLS = ["echo", "get_time"]
ALL_TOOLS = ["echo", "get_time", "list_files", "run_command", "math_calc"]


@pytest.fixture
async def protected(start_protected: StartProtected, tmp_path: Path) -> Protected:
    return await start_protected("--policy", str(write_policy(tmp_path, POLICY)))


def names(tools: list[dict[str, Any]]) -> list[str]:
    return [tool["name"] for tool in tools]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_each_role_sees_and_calls_its_own_tools(protected: Protected,
                                                      transport: str) -> None:
    url = protected.url(transport)
    async with MultiServerMCPClient(headers=protected.bearer("mcp:read")) as reader:
        connection = await reader.add("r", url)
        assert names(await connection.list_tools()) == READER_TOOLS
        echo = await reader.call("r", "echo", {"message": "reader"})
        assert echo["content"][0]["text"] == "Echo: reader"
        with pytest.raises(MCPError) as refused:
            await reader.call("r", "math_calc", {"expression": "1 + 1"})
        # Refused as if it did not exist: the policy and the hidden tools go unnamed.
        assert refused.value.code == -32602
        assert "Unknown tool: math_calc" in str(refused.value)
        assert "reader" not in str(refused.value) and "operator" not in str(refused.value)

    async with MultiServerMCPClient(headers=protected.bearer("mcp:admin")) as operator:
        connection = await operator.add("o", url)
        seen = names(await connection.list_tools())
        assert set(ALL_TOOLS) <= set(seen) and "admin_tools" in seen
        calc = await operator.call("o", "math_calc", {"expression": "1 + 1"})
        assert calc["content"][0]["text"] == "1 + 1 = 2"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_runtime_disable_reaches_a_connected_client(protected: Protected,
                                                            transport: str) -> None:
    changed = asyncio.Event()

    def hook(server: str, notification: Notification) -> None:
        if notification.method == "notifications/tools/list_changed":
            changed.set()

    # The handshake era keeps a session open on /mcp, where a notification can reach it.
    version = "2025-11-25" if transport == "streamable_http" else None
    async with MultiServerMCPClient(headers=protected.bearer("mcp:read"), on_notification=hook,
                                    protocol_version=version) as reader, \
            MultiServerMCPClient(headers=protected.bearer("mcp:admin")) as operator:
        await reader.add("r", protected.url(transport))
        await operator.add("o", protected.url("websocket"))
        assert (await reader.call("r", "echo", {"message": "before"}))["content"][0][
            "text"] == "Echo: before"

        result = await operator.call("o", "admin_tools", {"action": "disable", "name": "echo"})
        assert result["content"][0]["text"] == "Tool 'echo' disabled"
        await asyncio.wait_for(changed.wait(), 5)

        assert names(await reader.get("r").list_tools()) == ["get_time"]
        with pytest.raises(MCPError):
            await reader.call("r", "echo", {"message": "after"})
