"""``mcp-client bench`` against our server: counts, the JSON report, --compare, every
transport and era, --processes. Never a figure of speed: only what was counted and shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ...conftest import StartServer
from .conftest import BenchServer, run_bench

QUICK = ("--warmup", "0", "--concurrency", "4", "--no-progress")


async def test_calls_counts_exactly_and_warmup_calls_are_made_but_not_counted(
        bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("websocket"), "--tool", "count", "--calls",
                              "137", "--warmup", "0.3", "--concurrency", "5", "--json")
    assert outcome.status == 0, outcome.err
    target = outcome.target()
    assert target["calls"] == 137 and target["ok"] == 137 and target["error_count"] == 0
    assert target["warmup_calls"] > 0
    # The tool ran for every measured call and every warmup call, and no more.
    assert bench_server.counted.calls == 137 + target["warmup_calls"]


async def test_json_is_one_object_in_the_documented_shape(bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("http"), "--tool", "echo", "--args",
                              '{"message": "hi"}', "--calls", "50", "--json", *QUICK)
    assert outcome.status == 0, outcome.err
    assert outcome.out.count("\n") == 1  # one line: the document, nothing else
    document = outcome.report
    assert document["version"] == 1
    assert document["command"] == "echo"
    assert document["started"].endswith("Z")
    assert document["options"] == {"concurrency": 4, "duration_s": None, "calls": 50,
                                   "rate": None, "sessions": 1, "warmup_s": 0.0,
                                   "processes": 1, "timeout_s": 30.0}
    target = outcome.target()
    assert set(target) == {
        "name", "url", "transport", "protocol_version", "calls", "ok", "errors",
        "error_count", "warmup_calls", "duration_s", "calls_per_s", "p50_ms", "p90_ms",
        "p99_ms", "p999_ms", "max_ms", "mean_ms", "complete", "stopped"}
    assert target["name"] == "server1" and target["url"] == bench_server.url("http")
    assert target["transport"] == "http" and target["protocol_version"] == "2026-07-28"
    assert target["complete"] is True and target["stopped"] is None
    assert target["errors"] == {}
    assert 0 < target["p50_ms"] <= target["p90_ms"] <= target["p99_ms"] \
        <= target["p999_ms"] <= target["max_ms"]


async def test_duration_measures_after_the_warmup(bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("websocket"), "--tool", "count",
                              "--duration", "0.5", "--warmup", "0.2", "--json",
                              "--concurrency", "2")
    assert outcome.status == 0, outcome.err
    target = outcome.target()
    assert target["calls"] > 0 and target["warmup_calls"] > 0
    assert target["duration_s"] >= 0.5
    assert bench_server.counted.calls == target["calls"] + target["warmup_calls"]


async def test_the_table_and_compare_put_targets_side_by_side(
        bench_server: BenchServer) -> None:
    outcome = await run_bench(f"ws={bench_server.url('websocket')}",
                              f"web={bench_server.url('http')}", "--tool", "echo", "--args",
                              '{"message": "hi"}', "--calls", "40", "--compare", *QUICK)
    assert outcome.status == 0, outcome.err
    lines = outcome.out.splitlines()
    assert lines[0].split() == ["ws", "web"]
    assert lines[1].split() == ["transport", "websocket", "2025-11-25", "http", "2026-07-28"]
    calls = next(line for line in lines if line.startswith("calls "))
    assert calls.split() == ["calls", "40", "40", "(1.00x)"]
    for label in ("calls/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors"):
        assert any(line.startswith(label) for line in lines), label
    assert lines[-1] == "(x: ratio to ws)"

    single = await run_bench(bench_server.url("websocket"), "--tool", "echo", "--args",
                             '{"message": "hi"}', "--calls", "10", *QUICK)
    assert single.status == 0, single.err
    table = single.out.splitlines()
    assert table[0].startswith("server1  ws://127.0.0.1:")
    assert table[1].strip().startswith("calls      10 in ")
    assert table[2].strip().startswith("latency    p50 ")
    assert table[3].strip() == "errors     none"
    assert single.err == ""  # no progress line off a terminal


@pytest.mark.parametrize(("transport", "version"), [
    ("websocket", None), ("sse", None), ("http", None), ("http", "2025-11-25"),
    ("stdio", None),
])
async def test_every_transport_and_era(bench_server: BenchServer, transport: str,
                                       version: str | None) -> None:
    if transport == "stdio":
        import sys
        target = f"stdio:{sys.executable} -m mcp_multi.server --stdio --tools echo"
    else:
        target = bench_server.url(transport)
    extra = ("--protocol-version", version) if version else ()
    outcome = await run_bench(target, "--tool", "echo", "--args", '{"message": "hi"}',
                              "--calls", "30", "--sessions", "2", "--json", *extra, *QUICK)
    assert outcome.status == 0, outcome.err
    result = outcome.target()
    assert result["transport"] == transport
    if version:
        assert result["protocol_version"] == version
    assert result["calls"] == result["ok"] == 30


async def test_worker_processes_share_the_plan(bench_server: BenchServer) -> None:
    outcome = await run_bench(bench_server.url("http"), "--tool", "count", "--calls", "101",
                              "--processes", "2", "--json", *QUICK)
    assert outcome.status == 0, outcome.err
    target = outcome.target()
    assert outcome.report["options"]["processes"] == 2
    assert target["calls"] == target["ok"] == 101
    assert bench_server.counted.calls == 101

    opened = await run_bench(bench_server.url("websocket"), "--tool", "count", "--duration",
                             "0.5", "--rate", "200", "--processes", "2", "--json", *QUICK)
    assert opened.status == 0, opened.err
    assert opened.target()["calls"] > 0


async def test_targets_from_a_config_file_with_their_headers(
        bench_server: BenchServer, start_mcp_server: StartServer, tmp_path: Path) -> None:
    guarded = await start_mcp_server(auth_token="sesame")
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {
        "open": {"url": bench_server.url("http")},
        "guarded": {"url": f"{guarded.base_url}/mcp",
                    "headers": {"Authorization": "Bearer sesame"}},
    }}))
    outcome = await run_bench("--config", str(config), "--tool", "echo", "--args",
                              '{"message": "hi"}', "--calls", "20", "--json", *QUICK)
    assert outcome.status == 0, outcome.err
    assert [(t["name"], t["ok"]) for t in outcome.report["targets"]] == [
        ("open", 20), ("guarded", 20)]
