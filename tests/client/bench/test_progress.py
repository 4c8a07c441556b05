"""While it runs: the progress line on a terminal (and only there), and Ctrl-C ending a run
with a partial report of what was measured."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import sys

from .conftest import ROOT, BenchServer, finish, start_bench


async def test_progress_line_on_a_terminal_only(bench_server: BenchServer) -> None:
    leader, follower = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "mcp_client.py"), "bench", bench_server.url("websocket"),
            "--tool", "count", "--duration", "1.2", "--warmup", "0.3", "--concurrency", "2",
            cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=follower)
        os.close(follower)
        follower = -1
        outcome = await finish(proc)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all was read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert outcome.status == 0, seen
    text = seen.decode()
    assert "\r[server1] warmup " in text
    assert "\r[server1] " in text and "/1.2 s  " in text and " calls  " in text
    assert "errors 0" in text
    assert outcome.out.startswith("server1  ws://")  # the report, on stdout as ever


async def test_ctrl_c_ends_the_run_with_a_partial_report(bench_server: BenchServer) -> None:
    proc = await start_bench(bench_server.url("websocket"), "--tool", "count", "--duration",
                             "60", "--warmup", "0", "--concurrency", "2", "--json")
    await bench_server.counted.reach(30)
    proc.send_signal(signal.SIGINT)
    outcome = await finish(proc, timeout=20)
    assert outcome.status == 1, outcome.err
    target = outcome.target()
    assert target["complete"] is False and target["stopped"] == "interrupted"
    assert target["ok"] >= 30 - target["warmup_calls"]
    assert target["duration_s"] < 30


async def test_ctrl_c_reaches_worker_processes(bench_server: BenchServer) -> None:
    proc = await start_bench(bench_server.url("http"), "--tool", "count", "--calls",
                             "100000000", "--warmup", "0", "--concurrency", "2",
                             "--processes", "2", "--json")
    await bench_server.counted.reach(30)
    proc.send_signal(signal.SIGINT)  # the parent only: it tells its workers
    outcome = await finish(proc, timeout=20)
    assert outcome.status == 1, outcome.err
    target = outcome.target()
    assert target["complete"] is False and target["stopped"] == "interrupted"
    assert target["calls"] >= 1
