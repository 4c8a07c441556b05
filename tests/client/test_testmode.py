"""Test mode: the checklist's verdicts, its exit codes, and its CI reports."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.testmode import run_checks, sample_arguments

from ..conftest import StartServer
from .scripted import ScriptedSession, StartScripted
from .test_shell import run_client

FEATURE_CHECKS = ("resources/templates/list", "prompts/list", "prompts/get",
                  "completion/complete")


async def test_passing_servers_exit_zero_with_a_junit_report(
        start_mcp_server: StartServer, tmp_path: Path) -> None:
    calc = await start_mcp_server(name="calculator", tools=("math_calc", "echo"))
    files = await start_mcp_server(name="filesystem", tools=("list_files", "echo"))
    report = tmp_path / "report.xml"
    code, out, err = await run_client(
        [f"calc=localhost:{calc.port}", f"files=localhost:{files.port}", "--transport", "sse",
         "--mode", "test", "--report", str(report)], "")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].split() == ["SERVER", "CHECK", "RESULT", "TIME", "DETAIL"]
    assert re.match(r"Summary: \d+ passed, 0 failed, \d+ skipped in ", lines[-1])
    # Prompts, templates and completions are checked where the server offers them.
    assert len(lines) == 34 and all(
        "  PASS  " in line or ("  SKIP  " in line and line.split()[1] in FEATURE_CHECKS)
        for line in lines[1:-1])
    assert any(line.startswith("calc    disabled tool") and "is not enabled" in line
               for line in lines)
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "0"
    assert root.get("tests") == "32"
    assert [suite.get("name") for suite in root] == ["calc", "files"]
    names = [case.get("name") for case in root[0]]
    assert names == ["handshake", "ping", "tools/list", "call math_calc", "call echo",
                     "disabled tool", "unknown tool", "bad arguments", "resources/list",
                     "resources/read", *FEATURE_CHECKS, "broadcast", "removal"]


async def test_test_mode_over_all_four_transports(start_mcp_server: StartServer,
                                                 tmp_path: Path) -> None:
    servers = {kind: await start_mcp_server(name=f"over-{kind}", tools=("echo", "math_calc"))
               for kind in ("websocket", "sse", "http")}
    stdio = (f"stdio:{sys.executable} -m mcp_multi.server --stdio --name over-stdio "
             f"--tools echo math_calc --log-level WARNING --root {tmp_path}")
    report = tmp_path / "report.json"
    code, out, err = await run_client(
        [f"ws=localhost:{servers['websocket'].port}",
         f"sse=http://localhost:{servers['sse'].port}/sse",
         f"http=http://localhost:{servers['http'].port}/mcp", f"stdio={stdio}",
         "--mode", "test", "--report", str(report)], "")
    assert code == 0, out + err
    document = json.loads(report.read_text())
    assert document["ok"] and document["failed"] == 0
    assert all(r["check"] in FEATURE_CHECKS for r in document["results"] if r["status"] == "SKIP")
    by_server: dict[str, list[str]] = {}
    for result in document["results"]:
        by_server.setdefault(result["server"], []).append(result["check"])
    assert list(by_server) == ["ws", "sse", "http", "stdio"]
    assert all(checks == by_server["ws"] for checks in by_server.values())
    protocols = {r["server"]: r["detail"] for r in document["results"]
                 if r["check"] == "handshake"}
    assert "protocol 2025-11-25, websocket" in protocols["ws"]
    assert "protocol 2025-11-25, sse" in protocols["sse"]
    assert "protocol 2026-07-28, http" in protocols["http"]
    assert "protocol 2026-07-28, stdio" in protocols["stdio"]


async def test_a_dead_server_fails_the_run_with_a_json_report(
        start_mcp_server: StartServer, tmp_path: Path) -> None:
    alive = await start_mcp_server(name="alive", tools=("echo",))
    dead = await start_mcp_server(name="dead")
    await dead.close()
    report = tmp_path / "report.json"
    code, out, _ = await run_client(
        [f"alive=localhost:{alive.port}", f"dead=localhost:{dead.port}", "--mode", "test",
         "--report", str(report)], "")
    assert code == 1
    assert "dead    handshake" in out and "FAIL" in out
    document = json.loads(report.read_text())
    assert document["ok"] is False and document["failed"] == 1
    failures = [r for r in document["results"] if r["status"] == "FAIL"]
    assert [(r["server"], r["check"]) for r in failures] == [("dead", "handshake")]
    assert "Connection refused" in failures[0]["detail"]
    assert {r["server"] for r in document["results"]} == {"alive", "dead"}


async def test_test_mode_needs_a_server() -> None:
    code, _, err = await run_client(["--mode", "test"], "")
    assert code == 2 and "needs at least one server" in err


async def test_a_misbehaving_server_fails_its_checks(start_scripted: StartScripted) -> None:
    async def always_error(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": "broken"}], "isError": True}

    async def lenient(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"content": [{"type": "text", "text": "whatever you say"}]}

    broken = await start_scripted({"tools/call": always_error})
    accepting = await start_scripted({"tools/call": lenient})
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("broken", broken.url("websocket"))
        await client.add("lenient", accepting.url("sse"))
        report = await run_checks(client)
    verdicts = {(r.server, r.check): r.status for r in report.results}
    assert not report.ok
    assert verdicts[("broken", "call echo")] == "FAIL"
    assert verdicts[("broken", "unknown tool")] == "PASS"  # isError counts as refusal
    assert verdicts[("broken", "broadcast")] == "FAIL"
    assert verdicts[("lenient", "call echo")] == "FAIL"  # "mcp-client test" not echoed
    assert verdicts[("lenient", "unknown tool")] == "FAIL"  # accepted a tool it lacks
    assert verdicts[("lenient", "removal")] == "PASS"
    assert verdicts[("lenient", "resources/list")] == "SKIP"  # no resources capability


def test_sample_arguments_follow_formats_and_minimums() -> None:
    tool = {"name": "t", "inputSchema": {"type": "object", "required": ["u", "when", "n", "x"],
                                         "properties": {
                                             "u": {"type": "string", "format": "uri"},
                                             "when": {"type": "string", "format": "date-time"},
                                             "n": {"type": "integer", "minimum": 5},
                                             "x": {"type": "string", "format": "unheard-of"}}}}
    assert sample_arguments(tool) == {"u": "https://mcp-client-test.invalid/",
                                      "when": "2026-01-01T00:00:00Z", "n": 5, "x": "test"}


def test_sample_arguments_from_schemas() -> None:
    assert sample_arguments({"name": "echo"}) == {"message": "mcp-client test"}
    tool = {"name": "other", "inputSchema": {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "flag": {"type": "boolean"},
                       "mode": {"enum": ["a", "b"]}, "s": {"type": "string"},
                       "d": {"type": "number", "default": 2.5}, "opt": {"type": "string"}},
        "required": ["n", "flag", "mode", "s", "d"]}}
    assert sample_arguments(tool) == {"n": 1, "flag": True, "mode": "a", "s": "test", "d": 2.5}


async def test_a_report_that_cannot_be_written_is_one_line(start_mcp_server: StartServer,
                                                           tmp_path: Path) -> None:
    server = await start_mcp_server(name="calculator", tools=("echo",))
    report = tmp_path / "no-such-dir" / "report.xml"
    code, out, err = await run_client(
        [f"localhost:{server.port}", "--mode", "test", "--report", str(report)], "")
    assert code == 1 and "Traceback" not in err
    assert out.splitlines()[-1].startswith("Summary: ")
    assert err.splitlines()[-1] == (f"Error: cannot write the report {report}: "
                                    "No such file or directory")


async def test_timeout_must_be_a_finite_positive_number() -> None:
    for bad in ("0", "-1", "nan", "inf"):
        code, _, err = await run_client(["localhost:1", "--timeout", bad], "")
        assert code == 2 and "--timeout must be a positive number of seconds" in err, bad
