"""A hostile-peer sweep of the client's issue-9 surface: servers that flood it with requests
and notifications, ask for input without end, run tasks that never finish, and a sampling
command that floods or never exits.

Each case runs a real scripted server on 127.0.0.1 port 0, bounded in count and time. Tests
marked *guard* prove a bound that already held when the sweep ran; the others each proved a
defect (they fail without the fix they name).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import pytest
from aiohttp import web
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from mcp_multi.client.answering import (
    ClientHandlers,
    policy_handlers,
    run_reply_command,
)
from mcp_multi.client.connection import MAX_INPUT_ROUNDS, MCPConnection
from mcp_multi.client.inbound import MAX_ANSWERING
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.person import Person, sampling_lines
from mcp_multi.protocol.errors import InputRequired, InternalError
from mcp_multi.transport import WebSocketTransport

from ..client.scripted import ScriptedServer, ScriptedSession
from ..transport.http_script import Recorded, StartHTTPScript, json_reply, start_http_script

__all__ = ["start_http_script"]

TIMEOUT = 8.0
ESC = "\x1b]0;pwned\x07\x1b[2J"
DISCOVERED = {"resultType": "complete", "supportedVersions": ["2026-07-28"],
              "capabilities": {"tools": {}},
              "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "1"}}}
ELICIT = {"method": "elicitation/create", "params": {
    "message": "Go?", "requestedSchema": {"type": "object", "properties": {
        "go": {"type": "boolean", "default": True}}}}}


def _task(status: str, **extra: Any) -> dict[str, Any]:
    return {"taskId": "t1", "status": status, "pollIntervalMs": 0,
            "createdAt": "2026-01-01T00:00:00Z", "lastUpdatedAt": "2026-01-01T00:00:00Z",
            "ttlMs": 60000, **extra}


async def started(server: ScriptedServer) -> ScriptedServer:
    return await server.start()


# ------------------------------------------------------------------ tasks and input rounds

async def test_a_task_stuck_asking_the_same_question_is_not_answered_in_a_busy_loop(
        start_http_script: StartHTTPScript) -> None:
    """Before: a task that stayed ``input_required`` with the same question was answered
    again at once after every poll, with no wait: thousands of ``tasks/update`` (and as many
    handler runs, each a process under ``--sampling command:``) a second. Now a question
    already answered is not answered again; the client waits its poll interval."""
    script = await start_http_script()

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "server/discover":
            return json_reply(DISCOVERED, recorded)
        if method == "tools/call":
            return json_reply({"resultType": "task", **_task("working")}, recorded)
        if method in ("tasks/update", "tasks/cancel"):
            return json_reply({"resultType": "complete"}, recorded)
        return json_reply({"resultType": "complete", **_task(
            "input_required", inputRequests={"ok": ELICIT})}, recorded)

    script.post = post
    async with MultiServerMCPClient(timeout=5,
                                    handlers=policy_handlers(elicitation="defaults")) as client:
        await client.add("s", script.url)
        connection = client.connections["s"]
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await connection.call_tool("slow", {}, task_timeout=30)
    updates = len(script.of("POST", "tasks/update"))
    polls = len(script.of("POST", "tasks/get"))
    assert updates == 1, updates
    assert polls <= 1 / 0.05 + 2, polls  # at most one poll per MIN_POLL_SECONDS


async def test_endless_input_required_rounds_end_after_the_round_limit(
        start_http_script: StartHTTPScript) -> None:
    """Guard: a server answering every retry with another ``input_required`` (and a
    growing 100 KB ``requestState``) gets ``MAX_INPUT_ROUNDS`` retries, then the call
    fails with ``InputRequired``."""
    script = await start_http_script()
    rounds = 0

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        nonlocal rounds
        if recorded.rpc_method == "server/discover":
            return json_reply(DISCOVERED, recorded)
        rounds += 1
        return json_reply({"resultType": "input_required",
                           "inputRequests": {f"k{rounds}": ELICIT},
                           "requestState": "s" * 100_000}, recorded)

    script.post = post
    async with MultiServerMCPClient(timeout=5,
                                    handlers=policy_handlers(elicitation="defaults")) as client:
        await client.add("s", script.url)
        with pytest.raises(InputRequired):
            await client.connections["s"].call_tool("ask", {})
    assert rounds == MAX_INPUT_ROUNDS + 1


# ------------------------------------------------------------------ floods

async def test_a_list_changed_flood_makes_few_tool_list_requests() -> None:
    """Before: every ``notifications/tools/list_changed`` started its own ``tools/list``
    refresh, so a server sending 500 of them got 500 requests (and the client held 500
    tasks). Now refreshes are coalesced: one runs, and one more follows if changes came in
    meanwhile."""
    listed = 0
    gate = asyncio.Event()

    async def tools(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        nonlocal listed
        listed += 1
        await gate.wait()
        return {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}

    server = await started(ScriptedServer({"tools/list": tools}))
    try:
        async with MCPConnection("s", WebSocketTransport(server.url("websocket")),
                                 timeout=TIMEOUT) as conn:
            note = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
            session = server.sessions[0]
            for _ in range(500):
                await session.send(note)
            await conn.request("ping")          # every notification was read before it
            gate.set()
            await asyncio.sleep(0.1)
            async with asyncio.timeout(TIMEOUT):
                await conn.list_tools()
    finally:
        await server.close()
    assert listed <= 3, listed


async def test_a_request_flood_is_refused_with_one_warning_per_thousand(
        caplog: pytest.LogCaptureFixture) -> None:
    """Before: each server request past ``MAX_ANSWERING`` logged its own warning, so a
    server flooding requests flooded the log. Now the refusals are counted and logged as
    dropped frames are: the first few, then one in a thousand. Every request is still
    answered (refused with -32603)."""
    hold = asyncio.Event()

    async def slow_roots(server: str) -> list[dict[str, Any]]:
        await hold.wait()
        return []

    server = await started(ScriptedServer())
    count = MAX_ANSWERING + 1000
    try:
        async with MCPConnection("s", WebSocketTransport(server.url("websocket")),
                                 timeout=TIMEOUT,
                                 handlers=ClientHandlers(roots=slow_roots)) as conn:
            session = server.sessions[0]
            with caplog.at_level(logging.WARNING, logger="mcp_multi.client.connection"):
                for i in range(count):
                    await session.send({"jsonrpc": "2.0", "id": f"r{i}",
                                        "method": "roots/list"})

                def refusals() -> int:
                    return sum(1 for m in server.received
                               if "error" in m and str(m.get("id", "")).startswith("r"))

                await server.wait_for(lambda _m: refusals() >= count - MAX_ANSWERING)
                hold.set()
                await conn.request("ping")
    finally:
        await server.close()
    warnings = [r for r in caplog.records if "refusing" in r.getMessage()]
    assert 1 <= len(warnings) <= 10, len(warnings)


async def test_a_sampling_request_flood_runs_at_most_max_answering_commands(
        tmp_path: Any) -> None:
    """Guard: 100 ``sampling/createMessage`` requests at once under ``--sampling
    command:`` start at most ``MAX_ANSWERING`` processes; the rest are refused."""
    marker = tmp_path / "ran"
    marker.mkdir()
    script = (f"import sys, os, time; open(os.path.join({str(marker)!r}, str(os.getpid())),"
              f" 'w').close(); time.sleep(0.3); print('ok')")
    command = f"command:{sys.executable} -c \"{script}\""
    server = await started(ScriptedServer())
    try:
        async with MCPConnection("s", WebSocketTransport(server.url("websocket")),
                                 timeout=TIMEOUT,
                                 handlers=policy_handlers(sampling=command)):
            session = server.sessions[0]
            for i in range(100):
                await session.send({"jsonrpc": "2.0", "id": i, "method":
                                    "sampling/createMessage", "params": {
                                        "messages": [], "maxTokens": 1}})
            def answers() -> int:
                return sum(1 for m in server.received
                           if "method" not in m and isinstance(m.get("id"), int))

            await server.wait_for(lambda _m: answers() >= 100)
    finally:
        await server.close()
    assert len(list(marker.iterdir())) <= MAX_ANSWERING


# ------------------------------------------------------------------ the sampling command

@pytest.mark.parametrize(("code", "why"), [
    ("import sys\nwhile True: sys.stdout.write('x' * 65536)", "printed over"),
    ("import time; time.sleep(60)", "ran over"),
    ("import os, sys; os.close(1); import time; time.sleep(60)", "ran over"),
], ids=["floods", "never-exits", "closes-stdout-then-hangs"])
async def test_a_sampling_command_that_floods_or_hangs_is_bounded(code: str, why: str) -> None:
    """Guard: the reply command is cut off at its output limit or its timeout, and its
    process group is gone afterwards."""
    started_at = time.monotonic()
    with pytest.raises(InternalError, match=why):
        await run_reply_command([sys.executable, "-c", code], {"messages": []},
                                timeout=1.0, limit=256 * 1024)
    assert time.monotonic() - started_at < 3


# ------------------------------------------------------------------ what reaches the terminal

def test_a_hostile_sampling_request_is_shown_clipped_and_escaped() -> None:
    """Guard: a sampling request with escapes everywhere and thousands of content blocks is
    shown in a bounded number of clipped lines without a control character (at most 50
    messages of 20 blocks)."""
    huge = ESC + "m" * 100_000
    params = {"systemPrompt": huge, "maxTokens": huge,
              "modelPreferences": {"hints": [{"name": huge}] * 100, "costPriority": huge},
              "messages": [{"role": huge, "content": [
                  {"type": "text", "text": huge},
                  {"type": "image", "data": "A" * 100_000, "mimeType": ESC}] * 30}] * 60}
    lines = sampling_lines("s", params)
    assert len(lines) < 2500, len(lines)
    for line in lines:
        assert len(line) < 4200, len(line)  # a text block shows up to 4000 characters
        assert "\x1b" not in line and "\x07" not in line


async def test_a_catastrophic_pattern_with_its_own_default_does_not_freeze_the_shell() -> None:
    """Before: the person's form was validated with the server's ``pattern``, and the
    server also chose the default a person takes with Enter: ``^(a+)+$`` against 25 ``a``
    and a ``!`` took seconds of the event loop (forty, days). Now patterns are not checked
    on the client (an elicitation's string schema has none; the server checks)."""
    schema = {"type": "object", "properties": {"name": {
        "type": "string", "pattern": "^(a+)+$", "default": "a" * 25 + "!"}}}
    shown: list[str] = []
    with create_pipe_input() as pipe:
        person = Person(shown.append, input=pipe, output=DummyOutput(), terminal=False)
        pipe.send_text("a\n\na\n")  # accept, Enter takes the default, send it
        started_at = time.monotonic()
        async with asyncio.timeout(TIMEOUT):
            answer = await person.elicit("s", {"message": "name?", "requestedSchema": schema})
    assert time.monotonic() - started_at < 1.0
    assert answer == {"action": "accept", "content": {"name": "a" * 25 + "!"}}
