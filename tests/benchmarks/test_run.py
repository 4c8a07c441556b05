"""``benchmarks/run.py``: the report it writes (also when interrupted), and the processes it
leaves (none).

The runs are ``--quick`` (one round of one second) over the sections that need no other
script: the servers over Streamable HTTP (wrk when installed, else the lean generator) and over
WebSocket. Nothing here asserts on a figure: the machine running the tests is no benchmark.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from . import load_script

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "run.py"
X = "\N{MULTIPLICATION SIGN}"


@pytest.mark.timeout(180)
def test_quick_run_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--only", "http", "ws",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=170, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert re.search(r"^- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC$", text, re.M)
    assert re.search(r"^- commit: [0-9a-f]{7,}", text, re.M)
    for name in ("CPU", "cores", "RAM", "OS", "Python", "aiohttp", "uvloop", "wrk"):
        assert re.search(rf"^\| {re.escape(name)} \| .+ \|$", text, re.M), name
    assert "## 1. Server over Streamable HTTP vs raw aiohttp" in text
    assert "## 2. Server over WebSocket vs raw aiohttp" in text
    assert "## 3." not in text  # --only: the other sections are not there
    targets = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    for what in ("Streamable HTTP 2026-07-28", "Streamable HTTP 2025-11-25", "WebSocket"):
        row = next(line for line in targets.splitlines() if what in line and "raw aiohttp" in line)
        assert re.search(rf"\| \d+\.\d\d{X} .*\| (\d+\.\d\d{X}|—) \| ≥ 0\.\d+{X} \| [✓✗] \|$",
                         row), row
    assert "Written to" in done.stdout


def test_a_section_not_measured_says_why() -> None:
    run = load_script("run")
    text = run.render({"CPU": "x"}, {"date": "d"}, [
        run.Section("client", run.TITLES["client"], skipped="bench_client.py is not there"),
        run.Section("ws", run.TITLES["ws"], rows=[run.Row("w", "1", "2", f"0.50{X}",
                                                          f"≥ 0.85{X}", False)])])
    assert "| 3. Client vs the official SDK client, sequential calls | not measured: " \
           "bench_client.py is not there | | | | | |" in text
    assert f"| w | 1 | 2 | 0.50{X} | — | ≥ 0.85{X} | ✗ |" in text
    assert "Not measured: bench_client.py is not there." in text


def _cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


@pytest.mark.timeout(120)
def test_interrupted_run_leaves_no_process_behind(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(RUN), "--quick", "--only", "ws",
                             "--out", str(tmp_path / "r.md")], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen: set[psutil.Process] = set()
        deadline = time.monotonic() + 60
        # Wait until the servers and the load generator's processes are all running.
        while time.monotonic() < deadline and proc.poll() is None:
            found = psutil.Process(proc.pid).children(recursive=True)
            seen.update(found)
            if sum("spawn_main" in _cmdline(p) for p in found) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert len(seen) >= 3
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "not measured: the run was interrupted" in (tmp_path / "r.md").read_text()
    _, alive = psutil.wait_procs(list(seen), timeout=5)
    assert not alive, [_cmdline(p) for p in alive]


def test_wrk_counts_only_right_answers_as_calls() -> None:
    run = load_script("run")
    figures = run.wrk_figures({"requests": 1000, "duration_us": 2_000_000, "connect": 0,
                               "read": 1, "write": 0, "status": 30, "timeout": 0, "bad": 70,
                               "p50_us": 1500, "p90_us": 2000, "p99_us": 4000,
                               "p999_us": 9000, "max_us": 12000})
    assert figures["calls"] == 900
    assert figures["calls_per_s"] == 450
    assert figures["errors"] == 101
    assert figures["error_kinds"] == {"read": 1, "non-2xx": 30, "no echo in the answer": 70}
    assert (figures["p50_ms"], figures["p999_ms"], figures["max_ms"]) == (1.5, 9.0, 12.0)


def test_only_the_session_era_numbers_its_requests() -> None:
    run = load_script("run")
    modern = run.lua_script(run.modern_call())
    assert "request = function" not in modern
    assert "response = function" in modern
    handshake = run.lua_script(run.Call(run.HANDSHAKE, {"Mcp-Session-Id": "abc"},
                                        '{"jsonrpc":"2.0","id":1,"method":"tools/call"}'))
    assert "request = function" in handshake
    assert 'wrk.headers["Mcp-Session-Id"] = "abc"' in handshake
