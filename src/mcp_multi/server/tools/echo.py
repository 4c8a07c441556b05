"""``echo``: return the message it was given, prefixed with ``Echo: ``."""

from __future__ import annotations

from typing import Any

from mcp_multi.protocol.methods import tool_result
from mcp_multi.server.tools import Tool, ToolContext

__all__ = ["TOOL"]


async def echo(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Answer ``Echo: <message>``."""
    return tool_result(f"Echo: {arguments.get('message', '')}")


TOOL = Tool(
    name="echo",
    title="Echo",
    description="Echo back the provided message",
    input_schema={
        "type": "object",
        "properties": {
            "message": {"type": "string", "description": "The message to echo back"},
        },
        "required": ["message"],
    },
    handler=echo,
    at_once=True,
    annotations={"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
)
