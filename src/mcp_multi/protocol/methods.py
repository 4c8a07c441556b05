"""MCP method names and the shapes of the results we build."""

from __future__ import annotations

from typing import Any

__all__ = [
    "CANCELLED",
    "COMPLETION_COMPLETE",
    "ELICITATION_COMPLETE",
    "ELICITATION_CREATE",
    "INITIALIZE",
    "INITIALIZED",
    "LOGGING_MESSAGE",
    "LOGGING_SET_LEVEL",
    "LOG_LEVELS",
    "PING",
    "PROGRESS",
    "PROMPTS_GET",
    "PROMPTS_LIST",
    "PROMPTS_LIST_CHANGED",
    "RESOURCES_LIST",
    "RESOURCES_LIST_CHANGED",
    "RESOURCES_READ",
    "RESOURCES_SUBSCRIBE",
    "RESOURCES_TEMPLATES_LIST",
    "RESOURCES_UNSUBSCRIBE",
    "RESOURCES_UPDATED",
    "ROOTS_LIST",
    "ROOTS_LIST_CHANGED",
    "SAMPLING_CREATE_MESSAGE",
    "SERVER_DISCOVER",
    "SUBSCRIPTIONS_ACKNOWLEDGED",
    "SUBSCRIPTIONS_LISTEN",
    "TASKS_CANCEL",
    "TASKS_GET",
    "TASKS_LIST",
    "TASKS_NOTIFICATION",
    "TASKS_RESULT",
    "TASKS_STATUS",
    "TASKS_UPDATE",
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
PROMPTS_LIST = "prompts/list"
PROMPTS_GET = "prompts/get"
RESOURCES_SUBSCRIBE = "resources/subscribe"
RESOURCES_UNSUBSCRIBE = "resources/unsubscribe"
COMPLETION_COMPLETE = "completion/complete"
RESOURCES_UPDATED = "notifications/resources/updated"
RESOURCES_LIST_CHANGED = "notifications/resources/list_changed"
PROMPTS_LIST_CHANGED = "notifications/prompts/list_changed"
# What a server asks its client (server-to-client requests, or ``input_required`` in 2026-07-28).
SAMPLING_CREATE_MESSAGE = "sampling/createMessage"
ELICITATION_CREATE = "elicitation/create"
ELICITATION_COMPLETE = "notifications/elicitation/complete"
ROOTS_LIST = "roots/list"
ROOTS_LIST_CHANGED = "notifications/roots/list_changed"
# The tasks extension (io.modelcontextprotocol/tasks).
TASKS_GET = "tasks/get"
TASKS_RESULT = "tasks/result"
TASKS_CANCEL = "tasks/cancel"
TASKS_LIST = "tasks/list"
TASKS_UPDATE = "tasks/update"
TASKS_NOTIFICATION = "notifications/tasks"
TASKS_STATUS = "notifications/tasks/status"
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
