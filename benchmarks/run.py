"""Issue 12's figures in one run: ``uv run python benchmarks/run.py`` writes benchmarks/RESULTS.md.

Options: ``--quick`` (tiny counts, to see that everything runs; the figures mean nothing),
``--out PATH`` (default benchmarks/RESULTS.md), ``--only SECTION...`` (``http``, ``ws``,
``client``, ``load``, ``sse``), ``--rounds N``, ``--duration S``, ``--no-wrk`` (the lean
generator over HTTP too), ``--floor-loop uvloop`` (the floors on uvloop, a stricter
baseline than aiohttp's default loop). A full run takes five to ten minutes.

What is measured, each figure a ratio against a baseline measured in the same run:

1. ``http``: our server over Streamable HTTP, ``tools/call echo``, against the raw aiohttp
   floor (``_peers.py floor-http``: a handler answering JSON-RPC with no MCP logic), in both
   eras: 2026-07-28 (one stateless POST carrying its envelope) and 2025-11-25 (a session
   opened by ``initialize`` beforehand, every POST carrying ``Mcp-Session-Id`` and
   ``MCP-Protocol-Version``). The load comes from wrk (one thread, 32 connections, a Lua
   script written into a temporary directory) when it is installed, else from the lean
   generator below. The official SDK's server (``sdk-http``) is measured the same way, for
   information. In the session era every request carries an id of its own (a server
   refuses an id already in flight in its session, and that cheap refusal must not count
   as a call), and every answer without the echo in its body counts as an error, not a
   call: wrk's script checks each answer in a ``response`` hook.
2. ``ws``: our server over WebSocket against ``floor-ws``. wrk cannot speak WebSocket, so
   the load comes from the lean generator: several processes (uvloop where installed),
   each holding its share of 32 connections of aiohttp's client, each connection sending
   one call and waiting for its answer (a closed loop, as wrk's connections do), the
   latencies in an HDR histogram per process, merged; the same generator for both servers.
3. ``client``: our client against the SDK's, sequential calls over HTTP, WebSocket and SSE,
   from ``benchmarks/bench_client.py --json`` (which alternates the clients in rounds and
   keeps the medians itself).
4. ``load``: the load mode, ``mcp-client bench ... --concurrency 32 --json``, against wrk
   ``-c32`` on the same server: the rate ratio and how far apart their p50 and p99 are.
5. ``sse``: 10,000 concurrent legacy SSE sessions, from
   ``benchmarks/bench_sse_sessions.py --json``: our server's RSS, and the SDK's for 1,000.

Theory of operation. Every server and client process is started by this script on a free
loopback port, in a session of its own (so a Ctrl-C on the terminal reaches this script
only), and stopped by it with its whole process tree, whatever happens: the measurement
ends, fails, times out, or is interrupted (SIGINT or SIGTERM). Every wait is bounded.

The machine may be small and shared, so absolute figures are noise: each comparison is made
in rounds, ours and the baseline one after the other, the order swapped each round, each
measurement preceded by a short unrecorded warm-up, and the report keeps the median of the
per-round ratios. For each server it also gives the CPU time the server process spent per
call (from its kernel counters, over the measured seconds), and the ratio of those: the
figure least bent by a neighbour's load, and the one the rate ratio tends to when the
server, not the load generator, is the bottleneck.

A section whose script is not there (another helper's branch not merged yet) or whose tool
is missing is reported as "not measured" with the reason; the run goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "_peers.py"
SECTIONS = ("http", "ws", "client", "load", "sse")
CONNECTIONS = 32
MODERN, HANDSHAKE = "2026-07-28", "2025-11-25"
TIMES = "\N{MULTIPLICATION SIGN}"


_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"{time.monotonic() - _T0:6.1f}s {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """How long and how often: the full run, or ``--quick``."""

    rounds: int
    duration: int  # seconds of one measurement (wrk takes whole seconds)
    warmup: int
    lean_processes: int
    bench_processes: int
    quick: bool
    floor_loop: str = "asyncio"  # the floors' event loop: "asyncio" or "uvloop"
    wrk: bool = True  # False: never use wrk, even where installed


# The load mode runs in one process, as wrk runs one thread: on a small machine a second
# process crowds the server it measures (its tail latency most) and adds no rate.
FULL = Plan(rounds=7, duration=4, warmup=1, lean_processes=2, bench_processes=1,
            quick=False)
QUICK = Plan(rounds=1, duration=1, warmup=0, lean_processes=2, bench_processes=1,
             quick=True)


# --- processes --------------------------------------------------------------------------


class NotMeasured(Exception):
    """A figure that could not be measured; the message says why, in one line."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_tree(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Stop a process and everything it started: SIGTERM to all, SIGKILL after ``grace``."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(family, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)


@dataclass
class Server:
    """A server process this run started, listening on ``port``; its output goes to ``log``."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu_seconds(self) -> float:
        try:
            t = psutil.Process(self.proc.pid).cpu_times()
        except psutil.NoSuchProcess as exc:
            raise NotMeasured(f"{self.name} exited") from exc
        return t.user + t.system


class Processes:
    """Every process the run starts, each stopped with its tree when the run leaves."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.running: list[subprocess.Popen[Any]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        while self.running:
            stop_tree(self.running.pop())

    def _popen(self, argv: list[str], out: Any, err: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any]) -> None:
        stop_tree(proc)
        if proc in self.running:
            self.running.remove(proc)

    def server(self, name: str, argv: list[str], timeout: float = 60.0) -> Server:
        """Start a server (``{port}`` in ``argv`` becomes a free port); wait until it listens."""
        port = free_port()
        path = self.tmp / f"{name}-{port}.log"
        with path.open("wb") as f:
            proc = self._popen([a.replace("{port}", str(port)) for a in argv], f,
                               subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = path.read_text(errors="replace").strip().splitlines()[-1:]
                raise NotMeasured(f"{name} exited with {proc.returncode}: {' '.join(tail)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return Server(name, proc, port, path)
            time.sleep(0.05)
        self.stop(proc)
        raise NotMeasured(f"{name} did not listen within {timeout:.0f} s")

    def run(self, argv: list[str], timeout: float, *, echo: str | None = None
            ) -> tuple[int, str, str]:
        """Run a command to its end (at most ``timeout`` seconds): exit status, stdout, stderr.
        With ``echo``, its stderr lines are also logged as they come, after ``[echo]``."""
        out = self.tmp / "run.out"
        err: list[str] = []
        with out.open("wb") as o:
            proc = self._popen(argv, o, subprocess.PIPE)
            reader = threading.Thread(target=_read_lines, args=(proc.stderr, err, echo),
                                      daemon=True)
            reader.start()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                name = Path(argv[1 if argv[0] == sys.executable else 0]).name
                raise NotMeasured(f"{name} ran over {timeout:.0f} s") from exc
            finally:
                self.stop(proc)
                reader.join(5)
        return proc.returncode, out.read_text(errors="replace"), "".join(err)


def _read_lines(stream: Any, into: list[str], echo: str | None) -> None:
    for raw in stream:
        line = raw.decode(errors="replace")
        into.append(line)
        if echo and line.strip():
            log(f"[{echo}] {line.rstrip()}")
    stream.close()


def ours_argv() -> list[str]:
    return [sys.executable, "-m", "mcp_multi.server", "--log-level", "WARNING",
            "--port", "{port}"]


def peer_argv(kind: str, plan: Plan) -> list[str]:
    return [sys.executable, str(PEERS), kind, "{port}", plan.floor_loop]


def script_tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


# --- HTTP requests: the two eras ----------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One ``tools/call echo`` over Streamable HTTP: its headers and its body."""

    era: str
    headers: dict[str, str]
    body: str


BASE_HEADERS = {"Content-Type": "application/json",
                "Accept": "application/json, text/event-stream"}


def modern_call() -> Call:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientInfo": {"name": "wrk", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "hi"}, "_meta": meta}}
    return Call(MODERN, {**BASE_HEADERS, "MCP-Protocol-Version": MODERN,
                         "Mcp-Method": "tools/call", "Mcp-Name": "echo"},
                json.dumps(body, separators=(",", ":")))


def post(url: str, headers: dict[str, str], body: str) -> tuple[dict[str, str], Any]:
    """One POST; the answer's headers and its JSON-RPC message (JSON or an SSE stream)."""
    req = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            got = {k.lower(): v for k, v in resp.headers.items()}
    except OSError as exc:
        raise NotMeasured(f"POST {url}: {exc}") from exc
    if not raw:
        return got, None
    if got.get("content-type", "").startswith("text/event-stream"):
        datas = [line[5:] for line in raw.splitlines() if line.startswith(b"data:")]
        raw = next((d for d in reversed(datas) if d.strip()), b"null")
    return got, json.loads(raw)


def handshake_call(url: str) -> Call:
    """Open a 2025-11-25 session on ``url``; the call that carries it."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                       "clientInfo": {"name": "wrk", "version": "1"}}}
    got, answer = post(url, BASE_HEADERS, json.dumps(init))
    headers = {**BASE_HEADERS, "MCP-Protocol-Version": HANDSHAKE}
    if "mcp-session-id" in got:
        headers["Mcp-Session-Id"] = got["mcp-session-id"]
    version = (answer or {}).get("result", {}).get("protocolVersion")
    if version not in (None, HANDSHAKE):  # None: the floor, which answers everything alike
        raise NotMeasured(f"initialize answered protocol version {version}")
    post(url, headers, json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "hi"}}}
    return Call(HANDSHAKE, headers, json.dumps(body, separators=(",", ":")))


def check_echo(url: str, call: Call) -> None:
    """One call made by hand before a load: the server must answer it right."""
    _, answer = post(url, call.headers, call.body)
    try:
        text = answer["result"]["content"][0]["text"]
    except (KeyError, IndexError, TypeError):
        text = None
    if text != "Echo: hi":
        raise NotMeasured(f"tools/call echo answered {json.dumps(answer)[:160]}")


# --- wrk ----------------------------------------------------------------------------------

# Every answer's body must hold the echo: one that does not (a JSON-RPC error under a 200
# status, say) is counted by the wrk thread that got it, and the `done` hook adds the threads'
# counts to what it prints, as one JSON line.
WRK_CHECK = """
bad = 0
response = function(status, headers, body)
  if status == 200 and not string.find(body, 'Echo: hi', 1, true) then bad = bad + 1 end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local e, wrong = summary.errors, 0
  for _, thread in ipairs(threads) do wrong = wrong + thread:get("bad") end
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,'
    .. '"write":%d,"status":%d,"timeout":%d,"bad":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    wrong, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""
WRK_ERRORS = {"connect": "connect", "read": "read", "write": "write",
              "status": "non-2xx", "timeout": "timeout", "bad": "no echo in the answer"}


def wrk_figures(r: dict[str, int]) -> dict[str, Any]:
    """wrk's counts as the report's figures: only right answers count as calls."""
    errors = {name: r[key] for key, name in WRK_ERRORS.items() if r[key]}
    calls = r["requests"] - r["status"] - r["bad"]
    return {"calls": calls, "calls_per_s": calls / r["duration_us"] * 1e6,
            "errors": sum(errors.values()), "error_kinds": errors,
            **{k.replace("_us", "_ms"): v / 1000 for k, v in r.items()
               if k.startswith("p") or k == "max_us"}}


# A request id may not be reused while in flight in a session (a server answers the second
# with an error, cheaply, and wrk would count that as a call): in the handshake era every
# request gets an id of its own. The stateless era has no session to share ids in, so its
# one fixed body is sent as is, the cheapest way for wrk.
WRK_IDS = """
local head, tail = wrk.body:match('^(.-"id":)1(,.*)$')
local next_id = 0
request = function()
  next_id = next_id + 1
  return wrk.format(nil, nil, nil, head .. next_id .. tail)
end
"""


def lua_script(call: Call) -> str:
    """wrk's script for ``call`` (run with ``-t1``: the ids are counted per wrk thread)."""
    lines = ['wrk.method = "POST"']
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in call.headers.items()]
    lines.append(f"wrk.body = '{call.body}'")
    return "\n".join(lines) + "\n" + (WRK_IDS if call.era == HANDSHAKE else "") + WRK_CHECK


class Load:
    """Drives a server with ``CONNECTIONS`` connections for ``plan.duration`` seconds."""

    def __init__(self, procs: Processes, plan: Plan) -> None:
        self.procs, self.plan = procs, plan
        self.wrk = shutil.which("wrk") if plan.wrk else None
        self.scripts = 0

    def http(self, server: Server, call: Call, *, lean: bool = False) -> dict[str, Any]:
        """One measurement over HTTP (after a warm-up): rate, percentiles, errors, CPU.
        wrk drives it where installed, else (or with ``lean``) the lean generator."""
        url = f"http://127.0.0.1:{server.port}/mcp"
        if lean or not self.wrk:
            return self.measured(server, lambda d, w: lean_load(
                server, "http", url, self.plan.lean_processes, d, w, call.headers, call.body))
        self.scripts += 1
        script = self.procs.tmp / f"call{self.scripts}.lua"
        script.write_text(lua_script(call))
        wrk = self.wrk

        def run(seconds: int, _: int) -> dict[str, Any]:
            code, out, err = self.procs.run(
                [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s",
                 "-s", str(script), url], timeout=seconds + 30)
            found = re.search(r"^WRKJSON (.*)$", out, re.M)
            if code or not found:
                raise NotMeasured(f"wrk failed: {script_tail(out + err)}")
            return wrk_figures(json.loads(found[1]))

        if self.plan.warmup:
            run(self.plan.warmup, 0)
        return self.measured(server, lambda d, _: run(d, 0))

    def ws(self, server: Server) -> dict[str, Any]:
        url = f"ws://127.0.0.1:{server.port}/ws"
        return self.measured(server, lambda d, w: lean_load(
            server, "ws", url, self.plan.lean_processes, d, w, {}, ""))

    def measured(self, server: Server, go: Callable[[int, int], dict[str, Any]]
                  ) -> dict[str, Any]:
        before = server.cpu_seconds()
        result = go(self.plan.duration, self.plan.warmup)
        cpu = result.pop("server_cpu_s", None) or server.cpu_seconds() - before
        if result["calls"]:
            result["cpu_us_per_call"] = cpu / result["calls"] * 1e6
        return result


# --- the lean load generator --------------------------------------------------------------


async def _lean_worker(kind: str, url: str, connections: int, duration: float, warmup: float,
                       headers: dict[str, str], body: str, barrier: Any, first_id: int
                       ) -> dict[str, Any]:
    """One process's share of the load: ``connections`` closed loops, then its histogram.
    Over HTTP the loops share one session, so each loop numbers its requests from an id of
    its own (``first_id + j * 10**8`` for loop ``j``): no id is ever in flight twice."""
    hist = HdrHistogram(1, 3_600_000_000, 3)
    errors: Counter[str] = Counter()
    counting = False
    stop = False
    head, _, tail = body.partition('"id":1')

    async def ws_loop(http: aiohttp.ClientSession, _: int) -> None:
        nonlocal counting
        async with http.ws_connect(url, protocols=("mcp",)) as ws:
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                               "clientInfo": {"name": "bench", "version": "1"}}}
            await ws.send_str(json.dumps(init))
            await ws.receive()
            await ws.send_str('{"jsonrpc":"2.0","method":"notifications/initialized"}')
            await ready.wait()
            i = 0
            while not stop:
                i += 1
                sent = time.perf_counter()
                await ws.send_str(f'{{"jsonrpc":"2.0","id":{i},"method":"tools/call",'
                                  '"params":{"name":"echo","arguments":{"message":"hi"}}}')
                msg = await ws.receive()
                ok = (msg.type == aiohttp.WSMsgType.TEXT and f'"id":{i},' in msg.data
                      and '"Echo: hi"' in msg.data)
                if counting:
                    hist.record_value(max(1, int((time.perf_counter() - sent) * 1e6)))
                    if not ok:
                        errors["bad answer" if msg.type == aiohttp.WSMsgType.TEXT
                               else "connection lost"] += 1
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return

    async def http_loop(http: aiohttp.ClientSession, j: int) -> None:
        await ready.wait()
        i = first_id + j * 100_000_000
        while not stop:
            i += 1
            sent = time.perf_counter()
            try:
                async with http.post(url, data=f'{head}"id":{i}{tail}', headers=headers) as r:
                    raw = await r.read()
                kind_ = None if r.status == 200 and b'"Echo: hi"' in raw else f"http {r.status}"
            except aiohttp.ClientError:
                kind_ = "connection lost"
            if counting:
                hist.record_value(max(1, int((time.perf_counter() - sent) * 1e6)))
                if kind_:
                    errors[kind_] += 1

    ready = asyncio.Event()
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as http:
        loop_of = ws_loop if kind == "ws" else http_loop
        tasks = [asyncio.create_task(loop_of(http, j)) for j in range(connections)]
        await asyncio.sleep(0.2)
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 30)
        ready.set()
        await asyncio.sleep(warmup)
        counting, started = True, time.perf_counter()
        await asyncio.sleep(duration)
        counting, stop = False, True
        window = time.perf_counter() - started
        await asyncio.wait(tasks, timeout=10)
        for t in tasks:
            t.cancel()
        failed = [t.exception() for t in tasks if t.done() and not t.cancelled()
                  and t.exception() is not None]
    if failed:
        errors[f"loop failed: {type(failed[0]).__name__}: {failed[0]}"] += len(failed)
    return {"hist": hist.encode(), "window": window, "errors": dict(errors)}


def _lean_process(queue: Any, *args: Any) -> None:
    run: Callable[[Any], Any] = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop

        run = uvloop.run
    try:
        queue.put(run(_lean_worker(*args)))
    except BaseException as exc:
        queue.put({"failed": f"{type(exc).__name__}: {exc}"})


def lean_load(server: Server, kind: str, url: str, processes: int, duration: int, warmup: int,
              headers: dict[str, str], body: str) -> dict[str, Any]:
    """``CONNECTIONS`` closed loops shared by ``processes`` processes; the merged figures,
    with the CPU time ``server`` spent while they were counted (``server_cpu_s``)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(processes + 1)
    shares = [CONNECTIONS // processes + (i < CONNECTIONS % processes) for i in range(processes)]
    workers = [ctx.Process(target=_lean_process, daemon=True,
                           args=(queue, kind, url, n, duration, warmup, headers, body, barrier,
                                 k * 10_000_000_000))
               for k, n in enumerate(shares)]
    results: list[dict[str, Any]] = []
    try:
        for w in workers:
            w.start()
        barrier.wait(60)
        time.sleep(warmup)  # the workers count from the barrier + warmup, for duration
        cpu = server.cpu_seconds()
        time.sleep(duration)
        cpu = server.cpu_seconds() - cpu
        results = [queue.get(timeout=60) for _ in workers]
    except Exception as exc:
        raise NotMeasured(f"the {kind} load generator failed: {type(exc).__name__}") from exc
    finally:
        for w in workers:  # once they have answered they are leaving; else kill them now
            w.join(5 if len(results) == len(workers) else 0)
            if w.is_alive():
                w.kill()
                w.join(5)
    failed = [r["failed"] for r in results if "failed" in r]
    if failed:
        raise NotMeasured(f"the {kind} load generator failed: {failed[0]}")
    hist = HdrHistogram(1, 3_600_000_000, 3)
    errors: Counter[str] = Counter()
    rate = 0.0
    for r in results:
        part = HdrHistogram.decode(r["hist"])
        hist.add(part)
        rate += part.get_total_count() / r["window"]
        errors.update(r["errors"])
    pct = {f"p{name}_ms": hist.get_value_at_percentile(q) / 1000
           for name, q in (("50", 50), ("90", 90), ("99", 99), ("999", 99.9))}
    return {"calls": hist.get_total_count(), "calls_per_s": rate, "server_cpu_s": cpu,
            "errors": sum(errors.values()), "error_kinds": dict(errors), **pct,
            "max_ms": hist.get_max_value() / 1000}


# --- the report's rows ---------------------------------------------------------------------


@dataclass
class Row:
    """One line of the summary: a figure, its baseline, the ratio, the target."""

    what: str
    figure: str
    baseline: str
    ratio: str
    target: str
    ok: bool | None  # None: reported, no target
    by_cpu: str = "—"  # the same ratio from the servers' CPU time per call


@dataclass
class Section:
    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    skipped: str | None = None  # "not measured: ..." for the whole section


def rate(x: float) -> str:
    return f"{x:,.0f} calls/s"


def mark(ok: bool | None) -> str:
    return {True: "✓", False: "✗", None: "—"}[ok]


def median_of(rounds: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rounds))


def rounds_table(rounds: list[dict[str, dict[str, Any]]], names: list[str],
                 column: str = "server") -> list[str]:
    """Per round and target: rate, p50, p99, errors, the server's CPU per call."""
    out = [f"| round | {column} | calls/s | p50 ms | p99 ms | errors | server CPU µs/call |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(rounds, 1):
        for name in names:
            if name in r:
                m = r[name]
                cpu = f"{m['cpu_us_per_call']:.0f}" if "cpu_us_per_call" in m else "—"
                kinds = ", ".join(f"{k} {n}" for k, n in m.get("error_kinds", {}).items())
                errors = f"{m['errors']} ({kinds})" if kinds else str(m["errors"])
                out.append(f"| {i} | {name} | {m['calls_per_s']:,.0f} | {m['p50_ms']:.2f} | "
                           f"{m['p99_ms']:.2f} | {errors} | {cpu} |")
    return out


def compare(load: Load, servers: dict[str, Server], calls: dict[str, Call],
            measure: Callable[[str, Server, Call], dict[str, Any]], label: str,
            optional: tuple[str, ...] = ()) -> list[dict[str, dict[str, Any]]]:
    """``plan.rounds`` rounds over ``servers``, the order reversed each round. A server
    named in ``optional`` whose measurement fails is dropped from every round."""
    rounds: list[dict[str, dict[str, Any]]] = []
    order = list(servers)
    for i in range(load.plan.rounds):
        found: dict[str, dict[str, Any]] = {}
        for name in list(order if i % 2 == 0 else reversed(order)):
            try:
                found[name] = measure(name, servers[name], calls[name])
            except NotMeasured as exc:
                if name not in optional:
                    raise
                log(f"[{label}] {name} dropped: {exc}")
                order.remove(name)
                for r in rounds:
                    r.pop(name, None)
                continue
            log(f"[{label}] round {i + 1}/{load.plan.rounds} {name}: "
                f"{found[name]['calls_per_s']:,.0f} calls/s")
        rounds.append(found)
    return rounds


def ratio_row(what: str, rounds: list[dict[str, dict[str, Any]]], ours: str, base: str,
              target: float | None, *, by_cpu: bool = True) -> Row:
    """The median of the per-round rate ratios ``ours / base``, checked against ``target``;
    with ``by_cpu``, also the median of ``base / ours`` CPU time per call."""
    if any(r[base]["calls_per_s"] <= 0 for r in rounds):
        raise NotMeasured(f"{base} answered no call in a round")
    ratios = [r[ours]["calls_per_s"] / r[base]["calls_per_s"] for r in rounds]
    mid = statistics.median(ratios)
    per_round = ", ".join(f"{x:.2f}" for x in ratios)
    cpu = [r[base]["cpu_us_per_call"] / r[ours]["cpu_us_per_call"] for r in rounds
           if r[ours].get("cpu_us_per_call") and r[base].get("cpu_us_per_call")]
    return Row(what, rate(statistics.median(r[ours]["calls_per_s"] for r in rounds)),
               f"{base} {rate(statistics.median(r[base]['calls_per_s'] for r in rounds))}",
               f"{mid:.2f}{TIMES} (rounds: {per_round})",
               f"≥ {target}{TIMES}" if target else "(information)",
               None if target is None else mid >= target,
               f"{statistics.median(cpu):.2f}{TIMES}" if cpu and by_cpu else "—")


TITLES = {"http": "1. Server over Streamable HTTP vs raw aiohttp",
          "ws": "2. Server over WebSocket vs raw aiohttp",
          "client": "3. Client vs the official SDK client, sequential calls",
          "load": "4. The load mode vs wrk", "sse": "5. 10,000 concurrent legacy SSE sessions"}


# --- the sections --------------------------------------------------------------------------


def section_http(procs: Processes, load: Load) -> Section:
    tool = ("wrk -t1 -c32" if load.wrk else f"the lean generator ({load.plan.lean_processes} "
            f"processes sharing {CONNECTIONS} connections of aiohttp's client)")
    sec = Section("http", TITLES["http"])
    floor = procs.server("floor-http", peer_argv("floor-http", load.plan))
    ours = procs.server("ours", ours_argv())
    sdk: Server | None = None
    try:
        sdk = procs.server("sdk-http", peer_argv("sdk-http", load.plan))
    except NotMeasured as exc:
        sec.details.append(f"The SDK's server was not measured: {exc}.")
    sec.details.append(f"Load: {tool}, `tools/call echo` with `{{\"message\":\"hi\"}}`, "
                       f"{load.plan.duration} s per measurement after a {load.plan.warmup} s "
                       f"warm-up, {load.plan.rounds} round(s), order reversed each round. "
                       "An answer without the echo counts as an error, not a call; in the "
                       "2025-11-25 era every request carries an id of its own.")
    for era in (MODERN, HANDSHAKE):
        servers = {"floor-http": floor, "ours": ours}
        calls: dict[str, Call] = {}
        for name, server in servers.items():
            url = f"http://127.0.0.1:{server.port}/mcp"
            calls[name] = modern_call() if era == MODERN else handshake_call(url)
            check_echo(url, calls[name])
        if sdk is not None:
            url = f"http://127.0.0.1:{sdk.port}/mcp"
            try:
                call = modern_call() if era == MODERN else handshake_call(url)
                check_echo(url, call)
            except NotMeasured as exc:
                sec.details.append(f"The SDK's server in era {era}: not measured ({exc}).")
            else:
                servers["sdk-http"], calls["sdk-http"] = sdk, call
        how = "stateless POST" if era == MODERN else "with a session"
        rounds = compare(load, servers, calls, lambda _, s, c: load.http(s, c),
                         f"http {era}", optional=("sdk-http",))
        sec.rows.append(ratio_row(f"server, Streamable HTTP {era} ({how}), vs raw aiohttp",
                                  rounds, "ours", "floor-http", 0.7))
        if all("sdk-http" in r for r in rounds):
            sec.rows.append(ratio_row(f"server, Streamable HTTP {era}, vs the official SDK "
                                      "server", rounds, "ours", "sdk-http", None))
        sec.details += ["", f"Era {era}, {how}:", "", *rounds_table(rounds, list(servers))]
    return sec


def section_ws(procs: Processes, load: Load) -> Section:
    sec = Section("ws", TITLES["ws"])
    servers = {"floor-ws": procs.server("floor-ws", peer_argv("floor-ws", load.plan)),
               "ours": procs.server("ours", ours_argv())}
    sec.details.append(
        f"Load: the lean generator, {load.plan.lean_processes} processes sharing {CONNECTIONS} "
        "connections (aiohttp's WebSocket client on uvloop where installed), each connection "
        "opened with `initialize` (2025-11-25) and then sending `tools/call echo` and "
        f"waiting for its answer; {load.plan.duration} s per measurement after a "
        f"{load.plan.warmup} s warm-up. The generator shares the machine with the server: "
        "the server's CPU per call is the figure that does not depend on it.")
    rounds = compare(load, servers, dict.fromkeys(servers, modern_call()),
                     lambda _, s, __: load.ws(s), "ws")
    sec.rows.append(ratio_row("server, WebSocket, vs raw aiohttp", rounds, "ours", "floor-ws",
                              0.85))
    sec.details += ["", *rounds_table(rounds, list(servers))]
    return sec


def other_script(procs: Processes, name: str, helper: str, args: list[str],
                 timeout: float) -> dict[str, Any]:
    """Run another helper's ``benchmarks/NAME --json OUT ARGS``; what it wrote."""
    script = HERE / name
    if not script.exists():
        raise NotMeasured(f"benchmarks/{name} is not on this branch (helper {helper}, "
                          f"branch i12-{helper})")
    out = procs.tmp / f"{script.stem}.json"
    code, stdout, stderr = procs.run([sys.executable, str(script), "--json", str(out), *args],
                                     timeout=timeout, echo=script.stem)
    if code or not out.exists():
        raise NotMeasured(f"{name} exited with {code}: {script_tail(stderr or stdout)}")
    found: dict[str, Any] = json.loads(out.read_text())
    return found


def section_client(procs: Processes, load: Load) -> Section:
    sec = Section("client", TITLES["client"])
    args = ["--calls", "30", "--rounds", "1"] if load.plan.quick else []
    got = other_script(procs, "bench_client.py", "client-speed", args, timeout=600)
    sec.details += [
        f"`benchmarks/bench_client.py --json OUT{''.join(' ' + a for a in args)}`: each "
        "client makes "
        "sequential `tools/call echo` against our server, the clients alternating in "
        f"{got.get('rounds', '?')} round(s) of {got.get('calls', '?')} calls, the median "
        "kept. `ours` over HTTP speaks 2026-07-28; `ours 2025-11-25` is the same client held "
        "to the SDK's era; `ours c16` is ours at concurrency 16 (information).", "",
        "| transport | ours calls/s | SDK calls/s | ratio | ours CPU µs/call | SDK CPU µs/call "
        "| ours 2025-11-25 calls/s | ratio | ours c16 calls/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(r: dict[str, Any], key: str, fmt: str) -> str:
        return format(r[key], fmt) if isinstance(r.get(key), int | float) else "—"

    for transport in ("http", "ws", "sse"):
        r = got.get(transport)
        if not isinstance(r, dict) or "ratio" not in r:
            sec.rows.append(Row(f"client, sequential calls, {transport}", "not measured: "
                                "bench_client.py gave no figure", "", "", "", None))
            continue
        sec.details.append(
            f"| {transport} | {cell(r, 'ours_seq', ',.0f')} | {cell(r, 'sdk_seq', ',.0f')} | "
            f"{cell(r, 'ratio', '.2f')} | {cell(r, 'ours_cpu_us', '.0f')} | "
            f"{cell(r, 'sdk_cpu_us', '.0f')} | {cell(r, 'ours_2025_seq', ',.0f')} | "
            f"{cell(r, 'ratio_2025', '.2f')} | {cell(r, 'ours_c16', ',.0f')} |")
        target = 3.0 if transport == "http" else None
        by_cpu = (f"{r['sdk_cpu_us'] / r['ours_cpu_us']:.2f}{TIMES}"
                  if r.get("sdk_cpu_us") and r.get("ours_cpu_us") else "—")
        sec.rows.append(Row(
            f"client, sequential calls, {transport}, vs the SDK client", rate(r["ours_seq"]),
            f"SDK client {rate(r['sdk_seq'])}", f"{r['ratio']:.2f}{TIMES}",
            f"≥ 3{TIMES}" if target else "(reported)",
            None if target is None else r["ratio"] >= target, by_cpu))
        if "ratio_2025" in r:
            sec.rows.append(Row(
                f"client, sequential calls, {transport} 2025-11-25 (the SDK's era)",
                rate(r["ours_2025_seq"]), f"SDK client {rate(r['sdk_seq'])}",
                f"{r['ratio_2025']:.2f}{TIMES}", "(information)", None))
    return sec


def mcp_client() -> str:
    found = Path(sys.executable).parent / "mcp-client"
    return str(found) if found.exists() else (shutil.which("mcp-client") or "mcp-client")


def section_load(procs: Processes, load: Load) -> Section:
    sec = Section("load", TITLES["load"])
    if importlib.util.find_spec("mcp_multi.client.bench") is None or \
            importlib.util.find_spec("mcp_multi.client.bench.cli") is None:
        raise NotMeasured("`mcp-client bench` is not on this branch (helper bench, "
                          "branch i12-bench)")
    if not load.wrk:
        raise NotMeasured("wrk is not installed (or --no-wrk)")
    ours = procs.server("ours", ours_argv())
    url = f"http://127.0.0.1:{ours.port}/mcp"
    call = modern_call()
    check_echo(url, call)
    plan = load.plan

    def bench(server: Server, _: Call) -> dict[str, Any]:
        def go(duration: int, warmup: int) -> dict[str, Any]:
            code, out, err = procs.run(
                [mcp_client(), "bench", url, "--tool", "echo", "--args", '{"message":"hi"}',
                 "--protocol-version", MODERN, "--concurrency", str(CONNECTIONS),
                 "--duration", str(duration), "--warmup", str(warmup),
                 "--processes", str(plan.bench_processes), "--json", "--no-progress"],
                timeout=duration + warmup + 90)
            try:
                target = json.loads(out)["targets"][0]
                found = {k: target[k] for k in ("calls", "calls_per_s", "p50_ms", "p90_ms",
                                                "p99_ms", "p999_ms", "max_ms")}
            except (ValueError, KeyError, IndexError) as exc:
                raise NotMeasured(f"mcp-client bench exited with {code}: "
                                  f"{script_tail(err or out)}") from exc
            # As with wrk, only the calls answered right count in the rate.
            ok = target.get("ok", found["calls"])
            if found["calls"]:
                found["calls_per_s"] *= ok / found["calls"]
            return {**found, "calls": ok, "errors": target.get("error_count", 0),
                    "error_kinds": target.get("errors") or {}}

        return load.measured(server, go)

    servers = {"wrk": ours, "mcp-client bench": ours}
    rounds = compare(load, servers, dict.fromkeys(servers, call),
                     lambda name, s, c: load.http(s, c) if name == "wrk" else bench(s, c),
                     "load")
    sec.details.append(
        f"Both against our server over Streamable HTTP {MODERN} (stateless), "
        f"{CONNECTIONS} connections, {plan.duration} s after a {plan.warmup} s warm-up: "
        f"`wrk -t1 -c{CONNECTIONS}` and `mcp-client bench {url} --tool echo --args "
        f"'{{\"message\":\"hi\"}}' --concurrency {CONNECTIONS} --processes "
        f"{plan.bench_processes} --json`.")
    sec.rows.append(ratio_row("load mode rate vs wrk's (HTTP, c32)", rounds,
                              "mcp-client bench", "wrk", 0.8, by_cpu=False))
    for key in ("p50_ms", "p99_ms"):
        offs = [r["mcp-client bench"][key] / r["wrk"][key] - 1 if r["wrk"][key] else math.inf
                for r in rounds]
        off = statistics.median(offs)
        ours_ms = median_of([r["mcp-client bench"] for r in rounds], key)
        wrk_ms = median_of([r["wrk"] for r in rounds], key)
        sec.rows.append(Row(
            f"load mode {key[:3]} vs wrk's", f"{ours_ms:.2f} ms", f"wrk {wrk_ms:.2f} ms",
            f"{off:+.0%} (rounds: {', '.join(f'{x:+.0%}' for x in offs)})", "within ±20%",
            abs(off) <= 0.2))
    sec.details += ["", *rounds_table(rounds, list(servers), "load generator")]
    return sec


def section_sse(procs: Processes, load: Load) -> Section:
    sec = Section("sse", TITLES["sse"])
    args = (["--sessions", "200", "--sdk-sessions", "50", "--processes", "2"]
            if load.plan.quick else [])
    got = other_script(procs, "bench_sse_sessions.py", "sse-memory", args, timeout=900)
    ours, sdk = got["ours"], got.get("sdk") or {}
    full = ours["sessions"] >= 10_000
    ok = ours["rss_mb"] <= 150 and ours.get("answered") == ours["sessions"]
    sdk_text = (f"SDK, {sdk['sessions']:,} sessions: {sdk['rss_mb']:.0f} MB "
                f"({sdk.get('kb_per_session', 0):.1f} KB/session)" if "rss_mb" in sdk
                else "SDK: not measured")
    sec.rows.append(Row(
        f"{ours['sessions']:,} SSE sessions open on one process, {ours.get('answered', 0):,} "
        "answering a call while all are open",
        f"{ours['rss_mb']:.0f} MB RSS ({ours.get('kb_per_session', 0):.1f} KB/session)",
        sdk_text, "—", "≤ 150 MB for 10,000, all answering", ok if full else None))
    sec.details += [
        f"`benchmarks/bench_sse_sessions.py --json OUT{''.join(' ' + a for a in args)}`: "
        "every session "
        "opens its stream, then all call `tools/call echo` while all are open; the "
        "server's resident memory is read with every stream still open.", "",
        "| server | sessions asked | open | answered | idle MB | RSS all open MB | peak MB "
        "| KB/session | failures |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in ("ours", "sdk"):
        r = got.get(name)
        if isinstance(r, dict) and "rss_mb" in r:
            failures = ", ".join(f"{k} {n}" for k, n in (r.get("failures") or {}).items())
            sec.details.append(
                f"| {name} | {r.get('asked', '—')} | {r['sessions']} | {r.get('answered')} | "
                f"{r.get('idle_rss_mb')} | {r['rss_mb']} | {r.get('peak_rss_mb')} | "
                f"{r.get('kb_per_session')} | {failures or 'none'} |")
    warnings = ours.get("server_warnings") or []
    if warnings:
        sec.details += ["", "Our server's warnings:", "",
                        *[f"- `{w.strip()[:200]}`" for w in warnings]]
    return sec


RUNNERS: dict[str, Callable[[Processes, Load], Section]] = {
    "http": section_http, "ws": section_ws, "client": section_client, "load": section_load,
    "sse": section_sse}


# --- the report ----------------------------------------------------------------------------


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"


def _package(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        if found:
            cpu = found[1].strip()
    system = platform.platform()
    with contextlib.suppress(OSError):
        found = re.search(r'^PRETTY_NAME="(.*)"', Path("/etc/os-release").read_text(), re.M)
        if found:
            system = f"{found[1]}, {platform.system()} {platform.release()}"
    wrk = shutil.which("wrk")
    return {"CPU": cpu, "cores": str(os.cpu_count()),
            "RAM": f"{psutil.virtual_memory().total / 2**30:.1f} GiB", "OS": system,
            "Python": f"{platform.python_version()} ({platform.python_implementation()})",
            "aiohttp": _package("aiohttp"), "uvloop": _package("uvloop"),
            "official SDK (mcp)": _package("mcp"),
            "wrk": _version([wrk, "--version"]).split(" [")[0] if wrk else "not installed"}


def git_commit() -> str:
    def git(*args: str) -> str:
        return _version(["git", "-C", str(ROOT), *args])

    commit = git("rev-parse", "--short", "HEAD")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                              ".", ":!benchmarks/RESULTS.md"], capture_output=True, text=True,
                             check=False).stdout.strip()
    return f"{commit} ({branch}{', with uncommitted changes' if changed else ''})"


def render(info: dict[str, str], header: dict[str, str], sections: list[Section]) -> str:
    out = ["# Benchmarks: issue 12's targets", "",
           "Written by `uv run python benchmarks/run.py` (see its docstring for the method). "
           "Every ratio is ours against a baseline measured in the same run, the median of "
           "the rounds; absolute figures depend on the machine and its load.", ""]
    out += [f"- {k}: {v}" for k, v in header.items()]
    out += ["", "## Machine", "", "| | |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in info.items()]
    out += ["", "## Targets", "",
            "Figure and baseline: the medians of their rounds. Ratio: the median over the "
            "rounds of ours / the baseline, which the target is checked against. By CPU: the "
            "same comparison from the CPU time per call of the servers (or of the clients, for "
            "the client rows): the baseline's / ours, which a busy neighbour bends least.", "",
            "| target | figure | baseline (same run) | ratio | by CPU | target | |",
            "|---|---|---|---|---|---|---|"]
    for sec in sections:
        if sec.skipped:
            out.append(f"| {sec.title} | not measured: {sec.skipped} | | | | | |")
        for row in sec.rows:
            out.append(f"| {row.what} | {row.figure} | {row.baseline} | {row.ratio} | "
                       f"{row.by_cpu} | {row.target} | {mark(row.ok)} |")
    for sec in sections:
        out += ["", f"## {sec.title}", ""]
        out += [f"Not measured: {sec.skipped}."] if sec.skipped else sec.details
    return "\n".join(out) + "\n"


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="tiny counts, to check that everything runs (figures mean nothing)")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md",
                   help="the Markdown report written (default benchmarks/RESULTS.md)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                   help=f"measure only these sections ({', '.join(SECTIONS)})")
    p.add_argument("--rounds", type=int, help=f"rounds of each comparison (default "
                                              f"{FULL.rounds}, quick {QUICK.rounds})")
    p.add_argument("--duration", type=int, help=f"seconds per measurement (default "
                                                f"{FULL.duration}, quick {QUICK.duration})")
    p.add_argument("--no-wrk", action="store_true",
                   help="drive HTTP with the lean generator even where wrk is installed "
                        "(the load-mode comparison then is not measured)")
    p.add_argument("--floor-loop", choices=("asyncio", "uvloop"), default="asyncio",
                   help="the raw aiohttp floors' event loop (default asyncio, aiohttp's own)")
    return p.parse_args(argv)


def _interrupted(signum: int, _: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(**{**plan.__dict__, "rounds": max(1, args.rounds or plan.rounds),
                   "duration": max(1, args.duration or plan.duration),
                   "floor_loop": args.floor_loop, "wrk": not args.no_wrk})
    # Ctrl-C and SIGTERM unwind the run, which stops every process it started (a shell
    # without job control starts background commands with SIGINT ignored: take it back).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    header = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(),
              "command": " ".join(["benchmarks/run.py",
                                   *(sys.argv[1:] if argv is None else argv)]),
              "mode": "quick: tiny counts, the figures mean nothing" if plan.quick else
              f"full: {plan.rounds} rounds of {plan.duration} s per comparison",
              "the floors' event loop": plan.floor_loop,
              "load average before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    sections: list[Section] = []
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        for key in args.only or SECTIONS:
            if interrupted:
                sections.append(Section(key, TITLES[key], skipped="the run was interrupted"))
                continue
            log(f"[{key}] {TITLES[key]}")
            try:
                with Processes(Path(tmp)) as procs:
                    sections.append(RUNNERS[key](procs, Load(procs, plan)))
            except NotMeasured as exc:
                log(f"[{key}] not measured: {exc}")
                sections.append(Section(key, TITLES[key], skipped=str(exc)))
            except KeyboardInterrupt:
                interrupted = True
                sections.append(Section(key, TITLES[key], skipped="the run was interrupted"))
            except Exception as exc:  # a bug here, or a script's output of another shape
                log(f"[{key}] failed:\n{traceback.format_exc()}")
                sections.append(Section(key, TITLES[key],
                                        skipped=f"{type(exc).__name__}: {exc}"[:300]))
    header["load average after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    header["took"] = f"{time.monotonic() - clock:.0f} s"
    info = machine()
    text = render(info, header, sections)
    args.out.write_text(text)
    summary = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    print(f"Targets{summary}\nWritten to {args.out}")
    if interrupted:
        raise KeyboardInterrupt
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        log("interrupted: every process started was stopped")
        raise SystemExit(130) from None
