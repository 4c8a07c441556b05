"""MCP method names and the shapes of the results we build."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CANCELLED",
    "INITIALIZE",
    "INITIALIZED",
    "LOGGING_MESSAGE",
    "LOGGING_SET_LEVEL",
    "LOG_LEVELS",
    "PING",
    "PROGRESS",
    "RESOURCES_LIST",
    "RESOURCES_READ",
    "RESOURCES_TEMPLATES_LIST",
    "SERVER_DISCOVER",
    "SUBSCRIPTIONS_ACKNOWLEDGED",
    "SUBSCRIPTIONS_LISTEN",
    "TOOLS_CALL",
    "TOOLS_LIST",
    "TOOLS_LIST_CHANGED",
    "text_content",
    "tool_result",
]

INITIALIZE = "initialize"
INITIALIZED = "notifications/initialized"
PING = "ping"
TOOLS_LIST = "tools/list"
TOOLS_CALL = "tools/call"
RESOURCES_LIST = "resources/list"
RESOURCES_READ = "resources/read"
RESOURCES_TEMPLATES_LIST = "resources/templates/list"
LOGGING_SET_LEVEL = "logging/setLevel"
CANCELLED = "notifications/cancelled"
PROGRESS = "notifications/progress"
LOGGING_MESSAGE = "notifications/message"
TOOLS_LIST_CHANGED = "notifications/tools/list_changed"
# The modern era (2026-07-28).
SERVER_DISCOVER = "server/discover"
SUBSCRIPTIONS_LISTEN = "subscriptions/listen"
SUBSCRIPTIONS_ACKNOWLEDGED = "notifications/subscriptions/acknowledged"

# RFC 5424 severities, least severe first, as MCP's logging uses them.
LOG_LEVELS: tuple[str, ...] = (
    "debug", "info", "notice", "warning", "error", "critical", "alert", "emergency",
)


def text_content(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def tool_result(text: str, *, is_error: bool = False,
                structured: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``tools/call`` result with one text block (``isError`` only when set)."""
    result: dict[str, Any] = {"content": [text_content(text)]}
    if structured is not None:
        result["structuredContent"] = structured
    if is_error:
        result["isError"] = True
    return result
