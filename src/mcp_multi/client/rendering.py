"""What the shell shows of MCP results and notifications, as lines of text.

Pure functions, no printing: :mod:`.commands` and :mod:`.notices` print what these return.
Everything a server sent is escaped and clipped (:func:`~mcp_multi.protocol.text.for_display`)
before it is part of a line. Binary payloads (images, audio, blobs) are never shown: a
base64 string of megabytes tells a person nothing, its type, MIME type and decoded size do.

The seed's tools answer with text only, and the seed shows such a result as one
``Result: {...}`` line (the result's ``repr``): :func:`tool_result_lines` keeps that line
exactly for every text-only result, and shows a result holding anything else item by item.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from ..protocol import methods
from ..protocol.text import DISPLAY_LIMIT, clip, for_display

__all__ = [
    "BLOCK_LIMIT",
    "content_lines",
    "decoded_size",
    "is_plain_result",
    "json_block",
    "notification_line",
    "progress_line",
    "prompt_lines",
    "resource_contents_lines",
    "tool_result_lines",
]

# Characters of one multi-line block (a text item, a pretty-printed structure) shown.
BLOCK_LIMIT = 4000
# Characters of one string inside a pretty-printed structure.
STRING_LIMIT = 300
INDENT = "  "


def decoded_size(data: object) -> str:
    """``"N bytes"`` for base64 ``data`` without keeping the bytes; says so when it is not
    base64 (the data itself is never shown)."""
    if not isinstance(data, str):
        return "no data"
    try:
        size = len(binascii.a2b_base64(data.encode("ascii"), strict_mode=True))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return f"{len(data)} characters, not valid base64"
    return f"{size} bytes"


def _indented(text: str, indent: str, limit: int = BLOCK_LIMIT) -> list[str]:
    shown = for_display(text, limit, keep_newlines=True)
    return [indent + line for line in shown.split("\n")] if shown else [indent]


def _summarized(value: Any, depth: int = 0) -> Any:
    """``value`` with binary payloads (``data``, ``blob``) replaced by their size and every
    other long string clipped: what a person can read of a structure."""
    if depth > 20:
        return "…"
    if isinstance(value, dict):
        return {
            str(key): (f"<base64, {decoded_size(item)}>"
                       if key in ("data", "blob") and isinstance(item, str)
                       else _summarized(item, depth + 1))
            for key, item in list(value.items())[:200]
        }
    if isinstance(value, list):
        return [_summarized(item, depth + 1) for item in value[:200]]
    if isinstance(value, str):
        return clip(value, STRING_LIMIT)
    return value


def json_block(value: Any, indent: str = INDENT, limit: int = BLOCK_LIMIT) -> list[str]:
    """``value`` as indented, pretty-printed JSON lines: binary payloads as their size,
    long strings and the whole block clipped, control characters escaped."""
    try:
        text = json.dumps(_summarized(value), indent=2, ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):
        text = repr(value)
    return _indented(text, indent, limit)


def _mime(item: dict[str, Any]) -> str:
    mime = item.get("mimeType")
    return for_display(str(mime), 100) if mime else "no MIME type"


def _resource_item_lines(resource: dict[str, Any], indent: str, label: str = "") -> list[str]:
    """An embedded resource or one item of ``resources/read``: its URI, then a clipped text
    or the size of its blob."""
    head = f"{indent}{label}{for_display(str(resource.get('uri', '')), 500)}"
    if "blob" in resource:
        return [f"{head} ({_mime(resource)}, {decoded_size(resource['blob'])})"]
    if resource.get("mimeType"):
        head += f" ({_mime(resource)})"
    text = resource.get("text")
    if text is None:
        return [head]
    return [head + ":", *_indented(str(text), indent + INDENT)]


def content_lines(item: object, indent: str = INDENT) -> list[str]:
    """One content block (text, image, audio, embedded resource, resource link) as lines."""
    if not isinstance(item, dict):
        return [f"{indent}{for_display(repr(item), 200)}"]
    kind = item.get("type")
    if kind == "text":
        return _indented(str(item.get("text", "")), indent)
    if kind in ("image", "audio"):
        return [f"{indent}{kind} ({_mime(item)}, {decoded_size(item.get('data'))})"]
    if kind == "resource":
        resource = item.get("resource")
        if not isinstance(resource, dict):
            return [f"{indent}resource (malformed)"]
        return _resource_item_lines(resource, indent, "resource ")
    if kind == "resource_link":
        name = for_display(str(item.get("name", "")), 200)
        uri = for_display(str(item.get("uri", "")), 500)
        mime = f" ({_mime(item)})" if item.get("mimeType") else ""
        return [f"{indent}resource link {uri}{mime}" + (f": {name}" if name else "")]
    return [f"{indent}{for_display(str(kind), 100)} content"]


def is_plain_result(result: dict[str, Any]) -> bool:
    """Whether ``result`` holds text content only: the seed's ``Result: {...}`` form."""
    content = result.get("content")
    return isinstance(content, list) and all(
        isinstance(item, dict) and item.get("type") == "text" for item in content)


def tool_result_lines(result: dict[str, Any]) -> list[str]:
    """A ``tools/call`` result as the shell shows it.

    Text-only results: the seed's ``Result: {...}`` line, exactly (its ``repr`` shows a
    ``structuredContent`` too). Anything else: ``Result:`` (``Result (isError):``), then each
    content item, then ``structuredContent`` pretty-printed and clipped.
    """
    if is_plain_result(result):
        return [f"Result: {result!r}"]
    structured = result.get("structuredContent")
    lines = ["Result (isError):" if result.get("isError") else "Result:"]
    content = result.get("content")
    for item in content if isinstance(content, list) else ():
        lines += content_lines(item)
    if structured is not None:
        lines += ["  structuredContent:", *json_block(structured, INDENT * 2)]
    return lines


def resource_contents_lines(result: dict[str, Any]) -> list[str]:
    """A ``resources/read`` result: each item's URI, then its text or its blob's size."""
    contents = result.get("contents")
    if not isinstance(contents, list) or not contents:
        return ["  (no contents)"]
    lines: list[str] = []
    for item in contents:
        if isinstance(item, dict):
            lines += _resource_item_lines(item, INDENT)
        else:
            lines.append(f"  {for_display(repr(item), 200)}")
    return lines


def prompt_lines(result: dict[str, Any]) -> list[str]:
    """A ``prompts/get`` result: its description, then each message with its role."""
    lines: list[str] = []
    description = result.get("description")
    if description:
        lines.append(f"  description: {for_display(str(description))}")
    messages = result.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        role = for_display(str(message.get("role", "?")), 40)
        body = content_lines(message.get("content"), INDENT * 2)
        lines += [f"  {role}:", *body]
    return lines or ["  (no messages)"]


def _data_text(data: object) -> str:
    if isinstance(data, str):
        return data
    try:
        return json.dumps(data, ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):
        return repr(data)


def progress_line(server: str, params: dict[str, Any]) -> str:
    """``[server] progress 3/10: message`` (``3`` alone without a total)."""
    progress = for_display(_number(params.get("progress")), 40)
    total = params.get("total")
    done = f"{progress}/{for_display(_number(total), 40)}" if total is not None else progress
    message = params.get("message")
    tail = f": {for_display(str(message), 300)}" if message else ""
    return f"[{server}] progress {done}{tail}"


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def notification_line(server: str, method: str, params: dict[str, Any]) -> str:
    """One notification as one line tagged with its server's name."""
    tag = f"[{server}]"
    if method == methods.LOGGING_MESSAGE:
        level = for_display(str(params.get("level", "info")), 20)
        logger = params.get("logger")
        source = f" {for_display(str(logger), 100)}" if logger else ""
        return f"{tag} log {level}{source}: {for_display(_data_text(params.get('data')))}"
    if method == methods.RESOURCES_UPDATED:
        return f"{tag} resource updated: {for_display(str(params.get('uri', '')), 500)}"
    if method == methods.RESOURCES_LIST_CHANGED:
        return f"{tag} the resource list changed"
    if method == methods.TOOLS_LIST_CHANGED:
        return f"{tag} the tool list changed"
    if method == methods.PROMPTS_LIST_CHANGED:
        return f"{tag} the prompt list changed"
    if method == methods.TASKS_STATUS:
        task = for_display(str(params.get("taskId", "?")), 200)
        status = for_display(str(params.get("status", "?")), 40)
        message = params.get("statusMessage")
        tail = f": {for_display(str(message), 300)}" if message else ""
        return f"{tag} task {task} {status}{tail}"
    if method == methods.PROGRESS:
        return progress_line(server, params)
    if method == methods.CANCELLED:
        reason = params.get("reason")
        tail = f": {for_display(str(reason), 300)}" if reason else ""
        return f"{tag} request {for_display(str(params.get('requestId')), 100)} cancelled{tail}"
    if method == methods.ELICITATION_COMPLETE:
        return (f"{tag} elicitation complete: "
                f"{for_display(str(params.get('elicitationId', '')), 200)}")
    shown = clip(_data_text(params), DISPLAY_LIMIT // 4) if params else ""
    return f"{tag} {for_display(method, 200)}" + (f" {for_display(shown)}" if shown else "")
