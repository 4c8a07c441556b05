"""The get_time tool: ISO 8601 with an offset, in the local or a named zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mcp_multi.server.settings import ServerSettings
from mcp_multi.server.tools import ToolContext, ToolError
from mcp_multi.server.tools.get_time import TOOL

ISO_WITH_OFFSET = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?[+-]\d\d:\d\d")


@pytest.fixture
def ctx(tmp_path: Path) -> ToolContext:
    return ToolContext(settings=ServerSettings(root=tmp_path))


async def _time(ctx: ToolContext, **arguments: str) -> str:
    result = await TOOL.handler(dict(arguments), ctx)
    assert "isError" not in result
    text: str = result["content"][0]["text"]
    return text


async def test_default_is_local_time_with_offset(ctx: ToolContext) -> None:
    text = await _time(ctx)
    assert ISO_WITH_OFFSET.fullmatch(text), text
    stamp = datetime.fromisoformat(text)
    assert stamp.utcoffset() is not None
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5


@pytest.mark.parametrize(
    ("zone", "offset"),
    [("UTC", "+00:00"), ("Asia/Kolkata", "+05:30"), ("Asia/Kathmandu", "+05:45")],
)
async def test_named_zone(ctx: ToolContext, zone: str, offset: str) -> None:
    text = await _time(ctx, timezone=zone)
    assert ISO_WITH_OFFSET.fullmatch(text), text
    assert text.endswith(offset)
    assert abs((datetime.now(UTC) - datetime.fromisoformat(text)).total_seconds()) < 5


async def test_empty_zone_means_local(ctx: ToolContext) -> None:
    assert ISO_WITH_OFFSET.fullmatch(await _time(ctx, timezone=""))


@pytest.mark.parametrize(
    "zone",
    ["Mars/Olympus_Mons", "Europe", "/etc/passwd", "../../etc/passwd", "Europe/", "zone.tab"],
)
async def test_unknown_zone_is_a_tool_error(ctx: ToolContext, zone: str) -> None:
    with pytest.raises(ToolError) as err:
        await TOOL.handler({"timezone": zone}, ctx)
    assert str(err.value).startswith(f"Unknown timezone: {zone!r}")


def test_get_time_listing() -> None:
    wire = TOOL.to_wire()
    assert wire["description"] == "Get the current server time"
    assert "required" not in wire["inputSchema"]
    assert wire["annotations"]["readOnlyHint"] is True
