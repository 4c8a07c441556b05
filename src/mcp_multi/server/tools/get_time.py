"""``get_time``: the server's current time in ISO 8601 with its UTC offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp_multi.protocol.methods import tool_result
from mcp_multi.server.tools import Tool, ToolContext, ToolError

__all__ = ["TOOL"]

_MAX_NAME = 100  # the longest IANA name is about 30 characters


async def get_time(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """The current time, e.g. ``2026-11-30T02:13:47.123456+00:00``.

    Without ``timezone`` the server's local zone is used; with it, the IANA zone of that name.

    Raises:
        ToolError: ``timezone`` names no known zone.
    """
    name = arguments.get("timezone")
    if not name:
        return tool_result(datetime.now().astimezone().isoformat())
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: keys that are not zone names at all, such as absolute paths or "..",
        # or files under the zone directory that are not zone data.
        raise ToolError(
            f"Unknown timezone: {name[:_MAX_NAME]!r}"
            " (use an IANA name such as 'UTC' or 'Europe/Paris')"
        ) from None
    return tool_result(datetime.now(zone).isoformat())


TOOL = Tool(
    name="get_time",
    title="Get time",
    description="Get the current server time",
    input_schema={
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "maxLength": _MAX_NAME,
                "description": "IANA time zone name, e.g. 'UTC' or 'Europe/Paris'; "
                "default: the server's local time zone",
            },
        },
    },
    handler=get_time,
    at_once=True,
    annotations={"readOnlyHint": True, "openWorldHint": False},
)
