"""A hostile server against the real ``mcp_client.py``: no raw control character reaches a terminal.

The servers below put ESC sequences (retitle, clear, recolour, cursor report), bidirectional
overrides and C1 controls into everything they send: their name, tool names, descriptions,
error messages, resource text, and (the stdio one) their stderr. The client runs as a real
process in the shell (piped, with ``--trace`` and ``-v``), in test mode (with JUnit XML and
JSON reports) and in conformance mode; every byte it writes must be printable as itself.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp_multi.client.commands import RAW_METHODS
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.repl import ShellCompleter

from ..client.scripted import ScriptedError, ScriptedServer, ScriptedSession
from ..client.test_shell import run_client, shell_lines
from ..client.test_shell_parsing import complete

# Retitle the window, clear the screen, turn red, reverse the text, CSI as one C1 byte, NEL,
# DEL, a bare carriage return, a tab.
EVIL = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\u202egnp.exe\u2066\x9b6n\x85\x7f\rend\t."

HOSTILE_STDIO = r"""
import json, sys
EVIL = EVIL_TEXT
def reply(message, **body):
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], **body}) + "\n")
    sys.stdout.flush()
sys.stderr.write("starting " + EVIL + "\n"); sys.stderr.flush()
for line in sys.stdin:
    message = json.loads(line)
    method = message.get("method")
    if "id" not in message:
        continue
    if method == "initialize":
        reply(message, result={"protocolVersion": message["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": {"name": EVIL, "version": EVIL}})
    elif method == "tools/list":
        reply(message, result={"tools": [{"name": "x" + EVIL, "description": EVIL,
                                          "inputSchema": {"type": "object"}}]})
    elif method == "tools/call":
        sys.stderr.write("dying " + EVIL + "\n"); sys.stderr.flush()
        sys.exit(3)
    else:
        reply(message, error={"code": -32601, "message": "no " + EVIL})
""".replace("EVIL_TEXT", repr(EVIL))


def assert_clean(text: str) -> None:
    """Nothing but printable characters and line breaks."""
    raw = sorted({ch for ch in text if ch != "\n" and not ch.isprintable()})
    assert not raw, f"raw control characters {raw!r} in:\n{text[-3000:]}"


@pytest.fixture
async def hostile_url() -> AsyncIterator[str]:
    """A WebSocket server whose every text is hostile."""
    async def initialize(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"protocolVersion": params.get("protocolVersion", "2025-11-25"),
                "capabilities": {"tools": {}, "resources": {}},
                "serverInfo": {"name": "evil" + EVIL, "version": EVIL}}

    async def tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"tools": [
            {"name": "x" + EVIL, "description": EVIL + "\nmore " + EVIL,
             "inputSchema": {"type": "object", "required": ["a" + EVIL]}},
            {"name": "echo", "description": "ok", "inputSchema": {"type": "object"}},
        ]}

    async def refuse(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        raise ScriptedError(-32603, "boom " + EVIL)

    async def resources(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"resources": [{"uri": "evil://" + EVIL, "name": EVIL}]}

    async def read(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"contents": [{"uri": "evil://" + EVIL, "text": EVIL}]}

    server = await ScriptedServer({
        "initialize": initialize, "tools/list": tools, "tools/call": refuse,
        "resources/list": resources, "resources/read": read, "ping": refuse,
    }).start()
    yield server.url("websocket")
    await server.close()


async def test_the_shell_shows_hostile_text_escaped(hostile_url: str,
                                                    tmp_path: Path) -> None:
    url = hostile_url
    stdio = tmp_path / "hostile.py"
    stdio.write_text(HOSTILE_STDIO)
    commands = """\
tools
call evil echo {}
call evil resources/read {"uri": "x"}
broadcast echo {}
ping
send evil ping
call bad echo {}
servers
"""
    code, out, err = await run_client(
        [f"evil={url}", f"bad=stdio:{sys.executable} {stdio}", "--trace", "-v",
         "--protocol-version", "2025-11-25"], commands)
    assert code == 0, err
    assert_clean(out)
    assert_clean(err)
    assert "\\x1b]0;owned\\x07" in out  # shown, escaped
    assert "boom \\x1b]0;owned" in out
    assert "Disconnected servers: bad (" in out
    assert "starting \\x1b]0;owned" in err  # the stdio child's stderr, logged escaped


async def test_test_mode_and_its_reports_hold_no_control_characters(
        hostile_url: str, tmp_path: Path) -> None:
    url = hostile_url
    for report in (tmp_path / "report.xml", tmp_path / "report.json"):
        code, out, err = await run_client(
            [f"evil={url}", "--mode", "test", "--report", str(report)], "")
        assert code == 1, err  # the hostile server fails its checks
        assert_clean(out)
        assert_clean(err)
        text = report.read_text(encoding="utf-8")
        assert_clean(text)
        if report.suffix == ".json":
            assert_clean(json.dumps(json.loads(text), ensure_ascii=False))
        else:
            ET.fromstring(text.encode())  # well-formed XML


async def test_conformance_mode_shows_hostile_text_escaped(
        hostile_url: str) -> None:
    url = hostile_url
    code, out, err = await run_client(["--mode", "conformance", url], "")
    assert code == 0, out + err
    assert_clean(out)
    assert_clean(err)


async def test_malformed_tool_schemas_are_failures_not_tracebacks(tmp_path: Path) -> None:
    async def tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"tools": [
            {"name": "a", "inputSchema": {"type": "object", "required": 5}},
            {"name": "b", "inputSchema": {"type": "object", "required": [["x"]],
                                          "properties": []}},
            {"name": "c", "inputSchema": {"required": ["y"], "properties": {"y": 7}}},
        ]}

    server = await ScriptedServer({"tools/list": tools}).start()
    try:
        url = server.url("websocket")
        code, out, err = await run_client([f"s={url}", "--mode", "test"], "")
        assert code == 1 and "Traceback" not in err, err
        assert "Summary: " in out
        code, out, err = await run_client(["--mode", "conformance", url], "")
        assert code == 0 and "Traceback" not in err, out + err
        assert out.splitlines()[-1] == "done"
    finally:
        await server.close()


async def test_completion_offers_no_hostile_tool_name(hostile_url: str) -> None:
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("evil", hostile_url)
        await client.list_tools()
        assert complete(ShellCompleter(client), "call evil ") == ["echo", *RAW_METHODS]
        assert complete(ShellCompleter(client), "broadcast ") == ["echo"]


async def test_a_huge_error_message_is_one_clipped_line() -> None:
    async def huge(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        raise ScriptedError(-32603, "garbage " * 12_500)  # 100 KB

    server = await ScriptedServer({"tools/call": huge}).start()
    try:
        async with MultiServerMCPClient(timeout=10) as client:
            await client.add("g", server.url("websocket"))
            lines = await shell_lines(client, "call g echo {}\nbroadcast echo {}\n")
    finally:
        await server.close()
    assert len(lines) == 2
    for line in lines:
        assert len(line) < 2200 and line.endswith(" more characters]"), line[-200:]
