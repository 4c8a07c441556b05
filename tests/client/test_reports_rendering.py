"""How the shell shows results and notifications (``client/rendering.py``, ``notices.py``):
pure functions, and the progress bar drawn on a stream."""

from __future__ import annotations

import base64
import io

from mcp_multi.client.notices import Notices
from mcp_multi.client.rendering import (
    notification_line,
    tool_result_lines,
)
from mcp_multi.protocol.jsonrpc import Notification


def test_the_seeds_text_results_keep_their_result_line() -> None:
    seed = {"content": [{"type": "text", "text": "2 + 2 * 3 = 8"}]}
    assert tool_result_lines(seed) == [
        "Result: {'content': [{'type': 'text', 'text': '2 + 2 * 3 = 8'}]}"]
    command = {"content": [{"type": "text", "text": "hi\nExit code: 0"}],
               "structuredContent": {"exitCode": 0, "output": "hi\n"}}
    assert tool_result_lines(command) == [f"Result: {command!r}"]


def test_images_audio_and_resources_are_shown_by_type_and_size() -> None:
    image = base64.b64encode(bytes(5000)).decode()
    result = {
        "content": [
            {"type": "image", "mimeType": "image/png", "data": image},
            {"type": "audio", "mimeType": "audio/wav", "data": "not base64!"},
            {"type": "resource", "resource": {"uri": "file:///b.bin",
                                              "mimeType": "application/octet-stream",
                                              "blob": base64.b64encode(b"xyz").decode()}},
            {"type": "resource_link", "uri": "file:///x", "name": "x\x1b[31m"},
            {"type": "text", "text": "bad\x1b]0;title\x07 text"},
            {"type": "hologram"},
        ],
        "structuredContent": {"data": image, "note": "n" * 1000, "nested": {"blob": image}},
        "isError": True,
    }
    lines = tool_result_lines(result)
    assert lines[:7] == [
        "Result (isError):",
        "  image (image/png, 5000 bytes)",
        "  audio (audio/wav, 11 characters, not valid base64)",
        "  resource file:///b.bin (application/octet-stream, 3 bytes)",
        "  resource link file:///x: x\\x1b[31m",
        "  bad\\x1b]0;title\\x07 text",
        "  hologram content",
    ]
    text = "\n".join(lines)
    assert image[:100] not in text and "\x1b" not in text
    assert '      "data": "<base64, 5000 bytes>",' in lines
    assert '        "blob": "<base64, 5000 bytes>"' in lines
    assert "n" * 300 + "… [700 more characters]" in text


def test_notifications_are_one_tagged_escaped_line() -> None:
    assert notification_line("s", "notifications/message", {
        "level": "warning", "logger": "db", "data": {"rows": 3}}) == (
        '[s] log warning db: {"rows": 3}')
    assert notification_line("s", "notifications/message", {"level": "info",
                                                            "data": "a\nb\x1b[2J"}) == (
        "[s] log info: a\\nb\\x1b[2J")
    assert notification_line("s", "notifications/resources/updated",
                             {"uri": "file:///a"}) == "[s] resource updated: file:///a"
    assert notification_line("s", "notifications/tools/list_changed", {}) == (
        "[s] the tool list changed")
    assert notification_line("s", "notifications/tasks/status", {
        "taskId": "t1", "status": "working", "statusMessage": "half"}) == (
        "[s] task t1 working: half")
    assert notification_line("s", "notifications/progress", {
        "progressToken": 1, "progress": 2.0, "total": 4, "message": "m"}) == (
        "[s] progress 2/4: m")
    long = notification_line("s", "notifications/message", {"level": "info", "data": "x" * 9999})
    assert len(long) < 2100


def test_progress_is_a_live_bar_on_a_terminal_and_wiped_after() -> None:
    out: list[str] = []
    status = io.StringIO()
    notices = Notices(out.append, live=True, status=status)
    for step in (1, 2):
        notices.hook("s", Notification("notifications/progress",
                                       {"progressToken": "t", "progress": step, "total": 4}))
    assert status.getvalue() == (
        "\r\x1b[K[s] [######..................]  25%"
        "\r\x1b[K[s] [############............]  50%")
    notices.hook("s", Notification("notifications/message", {"level": "info", "data": "x"}))
    assert status.getvalue().endswith("\r\x1b[K")  # the bar is wiped before a line
    assert out == ["[s] log info: x"]
    notices.settle()  # nothing left to wipe
    assert status.getvalue().count("\r\x1b[K") == 3
    piped = io.StringIO()
    Notices(out.append, status=piped).hook("s", Notification(
        "notifications/progress", {"progressToken": "t", "progress": 1, "total": 4}))
    assert piped.getvalue() == "[s] progress 1/4\n"
