"""The echo tool: the seed's exact result."""

from __future__ import annotations

from pathlib import Path

from mcp_multi.server.settings import ServerSettings
from mcp_multi.server.tools import ToolContext
from mcp_multi.server.tools.echo import TOOL


async def test_echo_answers_as_the_seed_shows(tmp_path: Path) -> None:
    ctx = ToolContext(settings=ServerSettings(root=tmp_path))
    result = await TOOL.handler({"message": "Hello from all servers!"}, ctx)
    assert result == {"content": [{"type": "text", "text": "Echo: Hello from all servers!"}]}


async def test_echo_keeps_the_message_verbatim(tmp_path: Path) -> None:
    ctx = ToolContext(settings=ServerSettings(root=tmp_path))
    for message in ("", "  spaces  ", "multi\nline", "ünïcødé ✓", "{'not': 'json'}"):
        result = await TOOL.handler({"message": message}, ctx)
        assert result["content"][0]["text"] == f"Echo: {message}"


def test_echo_listing() -> None:
    wire = TOOL.to_wire()
    assert wire["name"] == "echo"
    assert wire["description"] == "Echo back the provided message"
    assert wire["inputSchema"]["required"] == ["message"]
    assert wire["inputSchema"]["properties"]["message"]["type"] == "string"
    assert wire["annotations"] == {
        "readOnlyHint": True,
        "idempotentHint": True,
        "openWorldHint": False,
    }
