"""``--mode conformance`` as the suite runs it: a real ``mcp_client.py`` against a real server.

The exit code says whether every step got an answer: a JSON-RPC error reply is an answer
(exit 0, the step's line says so); no answer at all (a timeout) is exit 1.
"""

from __future__ import annotations

from typing import Any

from .scripted import NO_REPLY, ScriptedError, ScriptedSession, StartScripted
from .test_shell import run_client

TWO_TOOLS = {"tools": [
    {"name": "refused", "inputSchema": {"type": "object"}},
    {"name": "fine", "inputSchema": {"type": "object"}},
]}


async def _two_tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
    return TWO_TOOLS


async def test_an_error_reply_is_an_answer(start_scripted: StartScripted) -> None:
    async def call(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        if params.get("name") == "refused":
            raise ScriptedError(-32603, "the tool is broken")
        return {"content": [{"type": "text", "text": "fine"}]}

    server = await start_scripted({"tools/list": _two_tools, "tools/call": call})
    code, out, err = await run_client(
        ["--mode", "conformance", server.url("websocket")], "")
    assert code == 0, out + err
    lines = out.splitlines()
    assert "call refused {}: error: the tool is broken (-32603)" in lines
    assert "call fine {}: ok: fine" in lines
    assert lines[-1] == "done"


async def test_no_answer_fails_the_run(start_scripted: StartScripted) -> None:
    async def silent(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return NO_REPLY

    server = await start_scripted({"tools/call": silent})
    code, out, err = await run_client(
        ["--mode", "conformance", "--timeout", "1", server.url("websocket")], "")
    assert code == 1, out + err
    assert out.splitlines()[-1].startswith("failed: ")
    assert "Traceback" not in err
