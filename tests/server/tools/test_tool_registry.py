"""The tools through ToolRegistry: listing, --tools filtering, schema validation, calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mcp_multi.server.settings import ServerSettings
from mcp_multi.server.tools import (
    ALL_TOOLS,
    DisabledToolError,
    ToolContext,
    ToolRegistry,
    UnknownToolError,
)


def test_all_five_tools_in_order() -> None:
    assert list(ALL_TOOLS) == ["echo", "get_time", "list_files", "run_command", "math_calc"]


@pytest.mark.parametrize("name", list(ALL_TOOLS))
def test_every_schema_is_a_valid_object_schema(name: str) -> None:
    schema = ALL_TOOLS[name].input_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"


def test_listing_follows_the_tools_option_order() -> None:
    registry = ToolRegistry(["math_calc", "echo"])
    assert [(t["name"], t["description"]) for t in registry.list_tools()] == [
        ("math_calc", "Perform basic math calculations"),
        ("echo", "Echo back the provided message"),
    ]


def test_disabled_and_unknown_tools() -> None:
    registry = ToolRegistry(["math_calc", "echo"])
    with pytest.raises(DisabledToolError) as disabled:
        registry.get("list_files")
    assert str(disabled.value) == "Tool 'list_files' is not enabled on this server"
    with pytest.raises(UnknownToolError) as unknown:
        registry.get("nonexistent_tool")
    assert str(unknown.value) == "Unknown tool: nonexistent_tool"


def test_the_calls_that_may_wait_follow_what_is_enabled() -> None:
    registry = ToolRegistry()
    assert registry.waiting == {"list_files", "run_command"}  # the rest answer at once
    registry.set_enabled("run_command", False)
    assert registry.waiting == {"list_files"}
    registry.set_enabled("run_command", True)
    assert registry.waiting == {"list_files", "run_command"}
    assert ToolRegistry(["echo", "math_calc"]).waiting == frozenset()


def test_unknown_name_in_tools_option() -> None:
    with pytest.raises(ValueError, match="unknown tool"):
        ToolRegistry(["echo", "teleport"])


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("echo", {"message": "hi"}),
        ("get_time", {}),
        ("get_time", {"timezone": "UTC"}),
        ("list_files", {}),
        ("list_files", {"path": "."}),
        ("run_command", {"command": "true"}),
        ("run_command", {"command": "true", "timeout": 0.5}),
        ("math_calc", {"expression": "2 + 2"}),
    ],
)
def test_valid_arguments(name: str, arguments: dict[str, Any]) -> None:
    assert ToolRegistry().validation_errors(name, arguments) == []


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("echo", {}, "arguments: 'message' is a required property"),
        ("echo", {"message": 1}, "message: 1 is not of type 'string'"),
        ("get_time", {"timezone": 5}, "timezone: 5 is not of type 'string'"),
        ("list_files", {"path": ["."]}, "path: ['.'] is not of type 'string'"),
        ("run_command", {}, "arguments: 'command' is a required property"),
        ("run_command", {"command": ""}, "command: '' should be non-empty"),
        ("run_command", {"command": "true", "timeout": 0}, "timeout: 0 is less than or equal"),
        ("run_command", {"command": "true", "timeout": "1"}, "timeout: '1' is not of type"),
        ("math_calc", {}, "arguments: 'expression' is a required property"),
        ("math_calc", {"expression": "1" * 1001}, "expression: '111"),
    ],
)
def test_invalid_arguments_name_the_field(
    name: str, arguments: dict[str, Any], error: str
) -> None:
    errors = ToolRegistry().validation_errors(name, arguments)
    assert len(errors) == 1
    assert errors[0].startswith(error), errors


async def test_calls_through_the_registry(tmp_path: Path) -> None:
    (tmp_path / "mcp_client.py").write_text("")
    ctx = ToolContext(settings=ServerSettings(root=tmp_path))
    registry = ToolRegistry(["list_files", "echo", "math_calc"])
    calls = [
        ("echo", {"message": "test"}, "Echo: test"),
        ("list_files", {"path": "."}, "Files in .:\nmcp_client.py"),
        ("math_calc", {"expression": "10 * 5"}, "10 * 5 = 50"),
    ]
    for name, arguments, text in calls:
        assert registry.validation_errors(name, arguments) == []
        result = await registry.get(name).handler(arguments, ctx)
        assert result == {"content": [{"type": "text", "text": text}]}
