"""What goes wrong under load is counted by kind, and bad input is one line and exit 2:
a tool that fails, a method that does not exist, HTTP error statuses, a server that dies in
the middle of a run; an unknown tool, arguments that fail the schema, a target that cannot
be reached, bad options."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from aiohttp import web

from mcp_multi.server.app import start_server
from mcp_multi.server.settings import ServerSettings

from ...conftest import StartServer
from ...transport.http_script import HTTPScript, Recorded, event, json_reply, sse
from .conftest import BenchServer, finish, run_bench, start_bench

QUICK = ("--warmup", "0", "--concurrency", "3", "--no-progress")


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


async def test_a_failing_tool_is_a_tool_error(bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("http"), "--tool", "test_error_handling",
                              "--calls", "20", "--json", *QUICK)
    assert outcome.status == 1
    target = outcome.target()
    assert target["errors"] == {"tool error": 20}
    assert target["ok"] == 0 and target["error_count"] == 20
    assert target["complete"] is True  # the run went as planned; its calls failed


async def test_an_unknown_method_is_its_jsonrpc_code(bench_server: BenchServer) -> None:
    for url in (bench_server.url("websocket"), bench_server.url("http")):
        outcome = await run_bench(url, "--method", "no/such_method", "--calls", "10",
                                  "--json", *QUICK)
        assert outcome.status == 1, outcome.err
        assert outcome.target()["errors"] == {"jsonrpc -32601": 10}


async def test_an_http_error_status_is_counted_by_status() -> None:
    """A gateway that lets the session open, then answers every call 503 (no JSON-RPC)."""
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "initialize":
            return json_reply({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                               "serverInfo": {"name": "gateway", "version": "1"}}, recorded)
        if method == "tools/list":
            return json_reply({"tools": [{"name": "echo", "inputSchema": {
                "type": "object"}}]}, recorded)
        if method == "tools/call":
            return web.Response(status=503, text="upstream busy")
        return web.Response(status=202)

    script = HTTPScript()
    script.post = post
    await script.start()
    try:
        outcome = await run_bench(script.url, "--tool", "echo", "--calls", "12", "--json",
                                  "--protocol-version", "2025-11-25", *QUICK)
    finally:
        await script.close()
    assert outcome.status == 1, outcome.err
    assert outcome.target()["errors"] == {"http 503": 12}


async def test_a_refused_token_is_one_line_naming_the_target(
        start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(auth_token="right-token")
    outcome = await run_bench(f"api={server.base_url}/mcp", "--tool", "echo", "--header",
                              "Authorization: Bearer wrong-token", "--calls", "5", *QUICK)
    assert outcome.status == 2
    line = one_line(outcome.err)
    assert line.startswith("bench: api (http://127.0.0.1:") and "401" in line
    assert "wrong-token" not in line
    assert outcome.out == ""


async def test_a_server_dying_midway_gives_a_partial_report(
        bench_server: BenchServer) -> None:
    proc = await start_bench(bench_server.url("websocket"), "--tool", "count",
                             "--duration", "2.5", "--json", *QUICK)
    await bench_server.counted.reach(50)
    await bench_server.server.close()
    outcome = await finish(proc, timeout=30)
    assert outcome.status == 1, outcome.err
    target = outcome.target()
    assert target["ok"] > 0
    assert target["errors"].get("connection lost", 0) >= 1
    assert set(target["errors"]) <= {"connection lost", "jsonrpc -32800"}
    assert target["complete"] is False
    assert target["stopped"].startswith("connection lost: ")


async def test_unknown_tool_is_one_line_and_exit_2(bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("websocket"), "--tool", "ecoh", "--calls",
                              "5", *QUICK)
    assert outcome.status == 2
    line = one_line(outcome.err)
    assert line.startswith("bench: server1 has no tool 'ecoh' (it has: echo, get_time, ")
    assert outcome.out == ""


async def test_arguments_failing_the_schema_are_one_line(bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("http"), "--tool", "echo", "--args",
                              '{"message": 5}', "--calls", "5", *QUICK)
    assert outcome.status == 2
    line = one_line(outcome.err)
    assert line.startswith("bench: server1: the arguments for 'echo' fail its inputSchema: ")
    assert "$.message" in line and "is not of type 'string'" in line


async def test_a_skipped_target_leaves_the_others_running(
        bench_server: BenchServer) -> None:
    outcome = await run_bench("gone=127.0.0.1:1", f"ok={bench_server.url('websocket')}",
                              "--tool", "echo", "--args", '{"message": "hi"}', "--calls",
                              "5", "--json", *QUICK)
    assert outcome.status == 1
    assert one_line(outcome.err).startswith("bench: gone (ws://127.0.0.1:1/ws): ")
    gone, ok = outcome.report["targets"]
    assert set(gone) == {"name", "url", "error"} and gone["name"] == "gone"
    assert ok["calls"] == ok["ok"] == 5


async def test_an_unreachable_target_alone_is_exit_2() -> None:
    outcome = await run_bench("127.0.0.1:1", "--tool", "echo", "--calls", "5", *QUICK)
    assert outcome.status == 2
    assert one_line(outcome.err).startswith("bench: server1 (ws://127.0.0.1:1/ws): Cannot ")


async def test_bad_options_are_one_line_and_exit_2() -> None:
    cases: list[tuple[list[str], str]] = [
        (["localhost:1", "--tool", "echo", "--concurrency", "0"], "--concurrency must be"),
        (["localhost:1", "--tool", "echo", "--args", "{nope"], "--args: invalid JSON"),
        (["localhost:1", "--tool", "echo", "--args", "[1]"], "--args must be a JSON object"),
        (["localhost:1"], "--tool NAME or --method M"),
        (["--tool", "echo"], "at least one TARGET"),
        (["localhost:1", "--tool", "echo", "--duration", "1", "--calls", "3"], "not allowed"),
        (["localhost:1", "--tool", "echo", "--rate", "nan"], "--rate must be"),
        (["localhost:1", "--tool", "echo", "--transport", "telnet"], "unknown transport"),
        (["localhost:1", "--tool", "echo", "--frobnicate"], "unrecognized arguments"),
        (["bad:target:x", "--tool", "echo"], "bad server address"),
    ]
    outcomes = await asyncio.gather(*(run_bench(*args) for args, _ in cases))
    for (args, expected), outcome in zip(cases, outcomes, strict=True):
        assert outcome.status == 2, (args, outcome)
        line = one_line(outcome.err)
        assert line.startswith("mcp-client bench: error: ") and expected in line, (args, line)


async def test_an_event_stream_answer_is_read_to_the_calls_response() -> None:
    """A server answering each call as an event stream, a notification first."""
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "initialize":
            return json_reply({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                               "serverInfo": {"name": "streamer", "version": "1"}}, recorded)
        if method == "tools/list":
            return json_reply({"tools": [{"name": "echo", "inputSchema": {
                "type": "object"}}]}, recorded)
        if method == "tools/call":
            request_id = recorded.body["id"]
            failing = recorded.body["params"]["arguments"].get("fail")
            answer: dict[str, object] = {"jsonrpc": "2.0", "id": request_id, "result": {
                "content": [], "isError": bool(failing)}}
            return await sse(request, [
                event({"jsonrpc": "2.0", "method": "notifications/progress",
                       "params": {"progressToken": 1, "progress": 1}}),
                event(answer)])
        return web.Response(status=202)

    script = HTTPScript()
    script.post = post
    await script.start()
    try:
        good = await run_bench(script.url, "--tool", "echo", "--calls", "8", "--json",
                               "--protocol-version", "2025-11-25", *QUICK)
        bad = await run_bench(script.url, "--tool", "echo", "--args", '{"fail": true}',
                              "--calls", "8", "--json", "--protocol-version", "2025-11-25",
                              *QUICK)
    finally:
        await script.close()
    assert good.status == 0, good.err
    assert good.target()["ok"] == 8
    assert bad.status == 1, bad.err
    assert bad.target()["errors"] == {"tool error": 8}


async def test_a_server_back_on_its_port_gets_its_sessions_opened_again(
        bench_server: BenchServer, tmp_path: Path) -> None:
    old = bench_server.server
    proc = await start_bench(bench_server.url("websocket"), "--tool", "count",
                             "--duration", "4", "--json", "--sessions", "2", *QUICK)
    await bench_server.counted.reach(50)
    await old.close()
    before = bench_server.counted.calls
    again = await start_server(ServerSettings(host="127.0.0.1", port=old.port, root=tmp_path,
                                              profile="bench-test"))
    try:
        await bench_server.counted.reach(before + 50)  # the run goes on, on new sessions
        outcome = await finish(proc, timeout=30)
    finally:
        await again.close()
    assert outcome.status == 1, outcome.err
    target = outcome.target()
    assert target["errors"].get("connection lost", 0) >= 1
    assert target["complete"] is True and target["stopped"] is None
    assert target["ok"] > 100


async def test_a_session_the_server_forgets_is_opened_again(bench_server: BenchServer) -> None:
    """Over HTTP in the 2025-11-25 era, the lean driver calls in a session: when the server
    ends it (a DELETE, as its owner could send), the calls in flight fail with the server's
    answer (HTTP 404, its JSON-RPC error), one new session opens, and the run goes on in it."""
    state = bench_server.server.state
    proc = await start_bench(bench_server.url("http"), "--tool", "count", "--duration", "8",
                             "--protocol-version", "2025-11-25", "--json", *QUICK)
    await bench_server.counted.reach(50)
    ended = list(state.http_sessions)
    assert len(ended) == 1
    async with aiohttp.ClientSession() as http:
        response = await http.delete(bench_server.url("http"), headers={
            "Mcp-Session-Id": ended[0], "MCP-Protocol-Version": "2025-11-25"})
        assert response.status in (200, 202, 204)
    before = bench_server.counted.calls
    await bench_server.counted.reach(before + 50)  # the run goes on, in a new session
    renewed = list(state.http_sessions)
    outcome = await finish(proc, timeout=30)
    assert len(renewed) == 1 and renewed != ended
    target = outcome.target()
    assert outcome.status == 1, outcome.err  # the failed calls count
    assert target["errors"] == {"jsonrpc -32600": target["error_count"]}
    assert 1 <= target["error_count"] <= 3  # at most the calls in flight (--concurrency 3)
    assert target["ok"] > 100 and target["complete"] is True
