"""2026-07-28 on the client over a real socket: ``Mcp-Param-*`` headers from ``x-mcp-header``
annotations (tools with invalid ones left out), task-run tool calls followed to their end
(status shown to the notification hook, ``tasks/cancel`` when given up), and roots changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mcp_multi.client.answering import policy_handlers
from mcp_multi.client.cli import main
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.protocol.errors import RequestTimeout
from mcp_multi.protocol.jsonrpc import Notification
from mcp_multi.protocol.params_headers import HeaderAnnotationError, header_params

from ..transport.http_script import Recorded, StartHTTPScript, json_reply


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


DISCOVERED = {"resultType": "complete", "supportedVersions": ["2026-07-28"],
              "capabilities": {"tools": {}},
              "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "1"}}}


def _tool(name: str, **properties: Any) -> dict[str, Any]:
    return {"name": name, "inputSchema": {"type": "object", "properties": properties}}


TOOLS = [
    _tool("route", region={"type": "string", "x-mcp-header": "Region"},
          n={"type": "integer", "x-mcp-header": "N"}, flag={"type": "boolean",
                                                           "x-mcp-header": "Flag"},
          nested={"type": "object", "properties": {
              "zone": {"type": "string", "x-mcp-header": "Zone"}}},
          plain={"type": "string"}),
    _tool("bad_number", x={"type": "number", "x-mcp-header": "X"}),
    _tool("bad_twice", a={"type": "string", "x-mcp-header": "A"},
          b={"type": "string", "x-mcp-header": "a"}),
    _tool("bad_name", a={"type": "string", "x-mcp-header": "A B"}),
    {"name": "bad_items", "inputSchema": {"type": "object", "properties": {"l": {
        "type": "array", "items": {"type": "string", "x-mcp-header": "L"}}}}},
]


def test_annotations_are_read_and_checked() -> None:
    headers = header_params(TOOLS[0]["inputSchema"])
    assert [(h.path, h.header) for h in headers] == [
        (("region",), "Mcp-Param-Region"), (("n",), "Mcp-Param-N"),
        (("flag",), "Mcp-Param-Flag"), (("nested", "zone"), "Mcp-Param-Zone")]
    for tool in TOOLS[1:]:
        with pytest.raises(HeaderAnnotationError):
            header_params(tool["inputSchema"])


async def test_param_headers_are_sent_and_bad_tools_left_out(
        start_http_script: StartHTTPScript, caplog: pytest.LogCaptureFixture) -> None:
    script = await start_http_script()

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        result = {"server/discover": DISCOVERED,
                  "tools/list": {"resultType": "complete", "tools": TOOLS}}.get(
            recorded.rpc_method or "", {"resultType": "complete", "content": []})
        return json_reply(result, recorded)

    script.post = post
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("s", script.url)
        with caplog.at_level(logging.WARNING):
            tools = await client.list_tools("s")
        assert [t["name"] for t in tools["s"]] == ["route"]  # type: ignore[union-attr]
        assert sum("leaving out tool" in r.message for r in caplog.records) == 4
        assert tools["s"][0] == TOOLS[0]  # type: ignore[index]  # the schema untouched
        await client.call("s", "route", {"region": " Zürich", "n": 42, "flag": False,
                                         "nested": {"zone": "a-1"}, "plain": "p"})
        await client.call("s", "route", {"region": "eu", "n": None})
    first, second = script.of("POST", "tools/call")
    assert first.header("mcp-param-region") == "=?base64?IFrDvHJpY2g=?="
    assert (first.header("mcp-param-n"), first.header("mcp-param-flag")) == ("42", "false")
    assert first.header("mcp-param-zone") == "a-1"
    assert not any(k.startswith("mcp-param-") for k in second.headers
                   if k not in ("mcp-param-region",))
    assert second.header("mcp-param-region") == "eu"


def _task(status: str, **extra: Any) -> dict[str, Any]:
    return {"taskId": "t1", "status": status, "pollIntervalMs": 10,
            "createdAt": "2026-01-01T00:00:00Z", "lastUpdatedAt": "2026-01-01T00:00:00Z",
            "ttlMs": 60000, **extra}


async def test_a_task_run_call_is_followed_to_its_result(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()
    polls: list[Recorded] = []

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "server/discover":
            return json_reply(DISCOVERED, recorded)
        if method == "tools/call":
            return json_reply({"resultType": "task", **_task("working")}, recorded)
        if method == "tasks/update":
            return json_reply({"resultType": "complete"}, recorded)
        polls.append(recorded)
        if len(polls) == 1:
            return json_reply({"resultType": "complete", **_task(
                "input_required", inputRequests={"ok": {"method": "elicitation/create", "params": {
                    "message": "Go?", "requestedSchema": {"type": "object", "properties": {
                        "go": {"type": "boolean", "default": True}}}}}})}, recorded)
        if len(polls) == 2:
            return json_reply({"resultType": "complete", **_task("working")}, recorded)
        return json_reply({"resultType": "complete", **_task("completed", result={
            "content": [{"type": "text", "text": "done"}]})}, recorded)

    script.post = post
    seen: list[tuple[str, Notification]] = []
    async with MultiServerMCPClient(timeout=10, handlers=policy_handlers(elicitation="defaults"),
                                    on_notification=lambda s, n: seen.append((s, n))) as client:
        await client.add("s", script.url)
        result = await client.call("s", "slow", {})
    assert result == {"content": [{"type": "text", "text": "done"}]}
    assert [(s, n.method, (n.params or {})["status"]) for s, n in seen] == [
        ("s", "notifications/tasks/status", "working"),
        ("s", "notifications/tasks/status", "input_required"),
        ("s", "notifications/tasks/status", "working"),
        ("s", "notifications/tasks/status", "completed")]
    update = script.of("POST", "tasks/update")[0].body["params"]
    assert (update["taskId"], update["inputResponses"]) == (
        "t1", {"ok": {"action": "accept", "content": {"go": True}}})
    call = script.of("POST", "tools/call")[0].body["params"]
    extensions = call["_meta"]["io.modelcontextprotocol/clientCapabilities"]["extensions"]
    assert extensions == {"io.modelcontextprotocol/tasks": {}}


async def test_a_task_given_up_on_is_cancelled(start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "server/discover":
            return json_reply(DISCOVERED, recorded)
        if method == "tools/call":
            return json_reply({"resultType": "task", **_task("working")}, recorded)
        return json_reply({"resultType": "complete", **_task("working")}, recorded)

    script.post = post
    async with MultiServerMCPClient(timeout=10) as client:
        connection = await client.add("s", script.url)
        with pytest.raises(RequestTimeout, match=r"did not end within 0\.3s"):
            await connection.call_tool("slow", {}, task_timeout=0.3)
        cancel = await script.wait_for(lambda r: r.rpc_method == "tasks/cancel")
    assert cancel.body["params"]["taskId"] == "t1"


async def test_changed_roots_are_announced(start_mcp_server: Any, tmp_path: Path) -> None:
    """Over a handshake-era session the server hears ``notifications/roots/list_changed``."""
    server = await start_mcp_server()
    sent: list[str] = []

    def frames(name: str, direction: str, frame: bytes | str) -> None:
        if direction == "send" and b"roots/list_changed" in (
                frame if isinstance(frame, bytes) else frame.encode()):
            sent.append(name)

    async with MultiServerMCPClient(timeout=10, on_frame=frames,
                                    handlers=policy_handlers()) as client:
        await client.add("a", f"127.0.0.1:{server.port}", "websocket")
        await client.set_roots([tmp_path])
        roots = client.handlers.roots if client.handlers else None
        assert roots is not None and await roots("a") == [
            {"uri": _uri(tmp_path), "name": tmp_path.name}]
    assert sent == ["a"]


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--sampling", "maybe", "bad sampling policy 'maybe'"),
    ("--elicitation", "sure", "bad elicitation policy 'sure'"),
    ("--roots", "/no/such/dir", "--roots /no/such/dir: not a directory"),
])
def test_bad_policy_flags_are_one_line_errors(flag: str, value: str, says: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--mode", "test", "127.0.0.1:1", flag, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
