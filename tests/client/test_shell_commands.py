"""The shell's ``ping`` and ``send`` commands, against real servers on loopback ports."""

from __future__ import annotations

import re
import time
from typing import Any

from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.repl import ShellCompleter

from ..conftest import StartServer
from .scripted import NO_REPLY, ScriptedSession, StartScripted
from .test_shell import shell_lines
from .test_shell_parsing import complete

PONG = re.compile(r"^\[(\w+)\] pong in \d+\.\d ms$")


async def test_ping_every_server_or_one(start_mcp_server: StartServer,
                                        start_scripted: StartScripted) -> None:
    ours = await start_mcp_server(name="ours", tools=("echo",))

    async def silent(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return NO_REPLY

    mute = await start_scripted({"ping": silent})
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("ws", f"localhost:{ours.port}")
        await client.add("http", f"http://127.0.0.1:{ours.port}/mcp")  # 2026-07-28: no ping
        lines = await shell_lines(client, "ping\nping http\nping nobody\nping a b\n")
        assert [PONG.match(line)[1] for line in lines[:3] if PONG.match(line)] == [
            "ws", "http", "http"]
        assert lines[3] == "Error: Unknown server: nobody (connected: ws, http)"
        assert lines[4] == "Error: usage: ping [server]"
        # A server that never answers costs its own timeout only, the others answer at once.
        client.timeout = 1.0
        await client.add("mute", mute.url("websocket"))
        start = time.perf_counter()
        lines = await shell_lines(client, "ping\n")
        assert time.perf_counter() - start < 5
        assert PONG.match(lines[0]) and PONG.match(lines[1])
        assert lines[2] == "[mute] Error: mute: ping got no response within 1s"


async def test_send_any_method_by_name(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(name="s", tools=("echo",))
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("s", f"localhost:{server.port}")
        lines = await shell_lines(client, """\
send s ping
send s ping {}
send s tools/list
send s no/such {"a": 1}
send s
send s ping [1]
call s ping {}
call s resources/list {}
""")
    assert lines[0] == "Result: {}"
    assert lines[1] == "Result: {}"
    assert lines[2].startswith("Result: {'tools': [{'name': 'echo'")
    assert lines[3].startswith("Error: ") and "(-32601)" in lines[3]
    assert lines[4] == "Error: usage: send <server> <method> [json_params]"
    assert lines[5] == "Error: JSON arguments must be an object, not list"
    assert lines[6].startswith("Error: ") and "ping" in lines[6]  # call: still a tool call
    assert lines[7].startswith("Result: {'resources': [")


def test_completion_knows_ping_and_send() -> None:
    completer = ShellCompleter(MultiServerMCPClient())
    assert complete(completer, "p") == ["ping", "prompts", "prompt"]
    assert complete(completer, "se") == ["servers", "send"]
    assert complete(completer, "send nobody resources/r") == ["resources/read"]
    assert complete(completer, "send nobody p") == ["ping", "prompts/list", "prompts/get"]
