"""Scale-out: ``tools/call echo`` through one instance, several behind nginx, and ``--workers``.

Run by hand as a report (never as a pass/fail test); it needs ``nginx`` and ``redis-server``::

    uv run python benchmarks/bench_scale.py [--calls 2000] [--concurrency 48] [--json]

Everything runs on loopback in this one command, each server in its own process on a free
port, and every figure is a ratio against a baseline measured in the same run:

(a) one instance of our server alone (the baseline), then behind nginx (nginx's own cost),
    then behind nginx with ``--session-store`` on a real ``redis-server`` (the store's cost),
    then three instances sharing the store behind nginx round robin (``deploy/nginx.conf``,
    no stickiness): the scale-out figure;
(b) ``mcp-server --workers 1`` against ``--workers 2 --session-store redis://…`` (two
    processes on one port through ``SO_REUSEPORT``).

Each target is measured over Streamable HTTP (handshake era: a session, JSON answers),
legacy HTTP+SSE and WebSocket. The instances and nginx are started by the scale-out tests'
harness (``tests/cluster/harness.py``) and Redis by ``tests/redis_server.py``, so the benchmark
runs what the tests prove. Every target is started first and stays up (an idle one costs
next to nothing), each target with a store on a ``redis-server`` of its own (pub/sub
channels are global to a Redis server, so targets sharing one would hear each other). The
measurements then run in ``--rounds`` interleaved rounds, each round taking the targets in
the order opposite to the one before, and the report keeps each target's best round and
shows every round's throughput: on a shared machine the slow spells are someone else's.

Theory of operation. The load comes from several client processes (``--clients``, spawned
once for the whole run), each with its own asyncio loop; a session is one ``aiohttp``
client session of its own, so its requests travel on its own keep-alive connection(s) and
the sessions are spread over as many connections (nginx then spreads requests, the kernel
spreads ``SO_REUSEPORT`` connections). ``--concurrency`` sessions are shared among the
processes; each session makes its calls one after another, so ``--concurrency`` is also the
number of calls in flight. The processes open their sessions, warm them up, and meet at a
barrier with the coordinator; then they all start, and meet again when done, before closing
their sessions (Streamable HTTP sessions are deleted). Between the two barriers the
coordinator reads the CPU time of every server, nginx and redis process, and the clients
report their own, so the report can say what one call costs in CPU in each component —
the figure that does not depend on how many cores the machine has — and Redis's command
statistics say how many commands of which kind the store ran per call. Before the load, one
session alone makes ``--calls / 10`` sequential calls (at most 300): the unloaded latency.

After the rounds the report checks every target for leftovers: the servers' open-session
gauges, keys left in Redis (session records, event journals), resident memory growth, and
warnings or errors in the servers' logs; and how many requests each server process served,
which shows how nginx and the kernel spread them. Every wait is bounded; each measurement
stops at ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPORT = HERE / "RESULTS-scale.md"

CALL_TIMEOUT = 10.0  # one tools/call, seconds
BARRIER_TIMEOUT = 60.0  # opening the sessions of one measurement, on a loaded machine
SEQUENTIAL_MAX = 300  # sequential calls of the unloaded latency, at most
WARM_UP = 3  # calls per session before the barrier
TRANSPORTS = {"http": "Streamable HTTP (handshake era, a session, JSON answers)",
              "sse": "legacy HTTP+SSE", "ws": "WebSocket"}
INIT = {"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bench-scale", "version": "0"}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def call(i: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": f"m{i}"}}}


class CallFailed(Exception):
    """A call answered with something other than its echo (the message says what)."""


def describe(exc: BaseException) -> str:
    """A short, countable name for what went wrong."""
    if isinstance(exc, CallFailed):
        return str(exc)[:100]
    if isinstance(exc, TimeoutError):
        return f"no answer within {CALL_TIMEOUT:g} s"
    return f"{type(exc).__name__}: {exc}"[:100]


async def _refusal(resp: aiohttp.ClientResponse) -> CallFailed:
    """The refusal ``resp`` carries: its status and, for a JSON-RPC error, its message."""
    text = (await resp.read())[:300].decode(errors="replace")
    with contextlib.suppress(ValueError, TypeError, KeyError):
        text = orjson.loads(text)["error"]["message"]
    return CallFailed(f"HTTP {resp.status}: {text}")


def _check(reply: dict[str, Any], i: int) -> None:
    try:
        ok = reply["result"]["content"][0]["text"] == f"Echo: m{i}"
    except (KeyError, IndexError, TypeError):
        ok = False
    if not ok:
        error = reply.get("error", {})
        raise CallFailed(f"JSON-RPC error {error.get('code')}: {error.get('message')}"
                         if error else f"wrong answer {str(reply)[:60]}")


# --- one MCP session of a client process, over each transport -----------------------------


class HTTPSession:
    """Streamable HTTP, handshake era: one POST per request on the session's connection."""

    def __init__(self, base: str) -> None:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        self.url = base + "/mcp"
        self.headers = {"Accept": "application/json, text/event-stream",
                        "Content-Type": "application/json"}

    async def open(self) -> None:
        await self.request({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                            "params": INIT})
        async with self.http.post(self.url, data=orjson.dumps(INITIALIZED),
                                  headers=self.headers) as resp:
            if resp.status != 202:
                raise await _refusal(resp)

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.url, data=orjson.dumps(msg),
                                  headers=self.headers) as resp:
            if resp.status != 200:
                raise await _refusal(resp)
            if "Mcp-Session-Id" in resp.headers:
                self.headers["Mcp-Session-Id"] = resp.headers["Mcp-Session-Id"]
                self.headers["MCP-Protocol-Version"] = INIT["protocolVersion"]
            body = await resp.read()
        if resp.content_type == "text/event-stream":  # the server chose to stream: last data
            datas = [line[5:] for line in body.splitlines() if line.startswith(b"data:")]
            body = next(d for d in reversed(datas) if d.strip())
        reply: dict[str, Any] = orjson.loads(body)
        return reply

    async def close(self) -> None:
        try:
            if "Mcp-Session-Id" in self.headers:
                async with self.http.delete(self.url, headers=self.headers) as resp:
                    await resp.read()
        finally:
            await self.http.close()


class _Waiting:
    """Requests awaiting their answer on a stream the session reads (SSE, WebSocket)."""

    def __init__(self) -> None:
        self.waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader: asyncio.Task[None] | None = None

    def answer(self, raw: bytes | str) -> None:
        data = orjson.loads(raw)
        fut = self.waiters.pop(data.get("id"), None)
        if fut is not None and not fut.done():
            fut.set_result(data)

    def ended(self) -> None:
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_exception(CallFailed("the stream ended"))
        self.waiters.clear()

    def expect(self, i: int) -> asyncio.Future[dict[str, Any]]:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters[i] = fut
        return fut


class SSESession(_Waiting):
    """Legacy HTTP+SSE: a GET stream on one connection, POSTs on another."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2))
        self.endpoint = ""
        self.stream: aiohttp.ClientResponse | None = None

    async def open(self) -> None:
        self.stream = await self.http.get(self.base + "/sse")
        if self.stream.status != 200:
            raise await _refusal(self.stream)
        async for raw in self.stream.content:
            if raw.startswith(b"data:"):
                endpoint = raw[5:].strip().decode()
                self.endpoint = self.base + endpoint if endpoint.startswith("/") else endpoint
                break
        else:
            raise CallFailed("no endpoint event")
        self.reader = asyncio.create_task(self._read())
        await self.request({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                            "params": INIT})
        await self._post(INITIALIZED)

    async def _read(self) -> None:
        assert self.stream is not None
        try:
            async for raw in self.stream.content:
                if raw.startswith(b"data:"):
                    self.answer(raw[5:])
        except (aiohttp.ClientError, ValueError):
            pass
        finally:
            self.ended()

    async def _post(self, msg: dict[str, Any]) -> None:
        async with self.http.post(self.endpoint, data=orjson.dumps(msg),
                                  headers={"Content-Type": "application/json"}) as resp:
            if resp.status not in (200, 202):
                raise await _refusal(resp)

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        fut = self.expect(msg["id"])
        try:
            await self._post(msg)
        except BaseException:
            self.waiters.pop(msg["id"], None)
            raise
        return await fut

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        if self.reader is not None:
            self.reader.cancel()
        await self.http.close()


class WSSession(_Waiting):
    """WebSocket: one connection, requests and answers as messages."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base
        self.http = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> None:
        self.ws = await self.http.ws_connect(self.base + "/ws", protocols=("mcp",))
        self.reader = asyncio.create_task(self._read())
        await self.request({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                            "params": INIT})
        await self.ws.send_bytes(orjson.dumps(INITIALIZED))

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self.answer(msg.data)
        finally:
            self.ended()

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        fut = self.expect(msg["id"])
        await self.ws.send_str(orjson.dumps(msg).decode())
        return await fut

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
        await self.http.close()


SESSIONS: dict[str, Callable[[str], HTTPSession | SSESession | WSSession]] = {
    "http": HTTPSession, "sse": SSESession, "ws": WSSession}


# --- a client process's share of one measurement --------------------------------------------


@dataclass
class Job:
    """What one client process does in one measurement."""

    base: str
    transport: str
    sessions: int
    calls: int  # over all its sessions
    max_seconds: float


async def _drive(session: Any, count: int, lat: list[float], errors: Counter[str],
                 deadline: float) -> bool:
    """Make ``count`` sequential calls (stopping at ``deadline``); False if it stopped."""
    for i in range(1, count + 1):
        if time.time() > deadline:
            return False
        start = time.perf_counter()
        try:
            reply = await asyncio.wait_for(session.request(call(i)), CALL_TIMEOUT)
            _check(reply, i)
        except Exception as exc:  # TimeoutError included
            errors[describe(exc)] += 1
            continue
        lat.append((time.perf_counter() - start) * 1e3)
    return True


async def _closed(session: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(session.close(), 5)


async def _job(job: Job, start: Any, end: Any) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    made = [SESSIONS[job.transport](job.base) for _ in range(job.sessions)]
    opened = await asyncio.gather(*(asyncio.wait_for(s.open(), CALL_TIMEOUT) for s in made),
                                  return_exceptions=True)
    sessions = []
    for session, outcome in zip(made, opened, strict=True):
        if isinstance(outcome, BaseException):
            errors["opening: " + describe(outcome)] += 1
            await _closed(session)
        else:
            sessions.append(session)
    warm: list[float] = []
    warm_errors: Counter[str] = Counter()
    await asyncio.gather(*(_drive(s, WARM_UP, warm, warm_errors, time.time() + CALL_TIMEOUT)
                           for s in sessions))
    errors.update({f"warming up: {k}": n for k, n in warm_errors.items()})
    if start is not None:
        await asyncio.to_thread(start.wait)
    cpu, began = time.process_time(), time.time()
    lat: list[float] = []
    shares = [job.calls // max(len(sessions), 1)] * len(sessions)
    for k in range(job.calls - sum(shares) if sessions else 0):
        shares[k] += 1
    finished = await asyncio.gather(*(_drive(s, n, lat, errors, began + job.max_seconds)
                                      for s, n in zip(sessions, shares, strict=True)))
    done, cpu = time.time(), time.process_time() - cpu
    if end is not None:
        await asyncio.to_thread(end.wait)
    await asyncio.gather(*(_closed(s) for s in sessions))
    return {"lat": lat, "errors": dict(errors), "began": began, "done": done, "cpu": cpu,
            "capped": not all(finished)}


def client_job(job: Job, start: Any = None, end: Any = None) -> dict[str, Any]:
    """Run in a client process: ``job``, meeting the others at the barriers ``start`` and
    ``end`` (manager proxies, or None for a measurement on its own)."""
    return asyncio.run(_job(job, start, end))


# --- what runs on the server side ---------------------------------------------------------


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and its descendants (a supervisor's workers, nginx's worker)."""
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


@dataclass
class Target:
    """One way of serving: where clients go, and the processes doing the work."""

    key: str
    label: str
    base: str
    servers: list[psutil.Process]
    nginx: list[psutil.Process] = field(default_factory=list)
    redis: list[psutil.Process] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)  # /metrics of each server process
    workers: int = 0  # several workers answer metrics[0], whichever a connection reaches
    logs: list[Path] = field(default_factory=list)
    store: str | None = None


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100)[q - 1]


class Bench:
    """The coordinator: client processes, barriers, and the figures of each measurement."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(max_workers=args.clients, mp_context=context)
        self.manager = context.Manager()
        self.rounds: list[dict[str, Any]] = []  # every measurement of every round
        self.rounds_run = 0
        self.started = time.monotonic()
        self.checks: list[dict[str, Any]] = []

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        self.manager.shutdown()

    async def measure(self, target: Target, transport: str, round_: int) -> dict[str, Any]:
        a, loop = self.args, asyncio.get_running_loop()
        alone = Job(target.base, transport, 1, min(SEQUENTIAL_MAX, max(a.calls // 10, 20)),
                    a.max_seconds / 4)
        seq = await loop.run_in_executor(self.pool, client_job, alone)
        parties = a.clients + 1
        start = self.manager.Barrier(parties, timeout=BARRIER_TIMEOUT)
        end = self.manager.Barrier(parties, timeout=BARRIER_TIMEOUT)
        jobs = []
        for k in range(a.clients):
            sessions = a.concurrency // a.clients + (k < a.concurrency % a.clients)
            jobs.append(Job(target.base, transport, sessions,
                            a.calls * sessions // a.concurrency, a.max_seconds))
        futures = [loop.run_in_executor(self.pool, client_job, job, start, end)
                   for job in jobs]
        parts = [target.servers, target.nginx, target.redis]
        await asyncio.to_thread(start.wait)
        before = [cpu_seconds(p) for p in parts]
        commands = await redis_commands(target.store)
        await asyncio.to_thread(end.wait)
        after = [cpu_seconds(p) for p in parts]
        commands = await redis_commands(target.store) - commands
        outs = await asyncio.gather(*futures)
        lat = [x for out in outs for x in out["lat"]]
        errors: Counter[str] = Counter()
        for out in outs:
            errors.update(out["errors"])
        errors.update({f"(unloaded) {k}": v for k, v in seq["errors"].items()})
        elapsed = max(max(o["done"] for o in outs) - min(o["began"] for o in outs), 1e-6)
        ok = max(len(lat), 1)
        cpu = {name: (b - a_) * 1e3 / ok
               for name, a_, b in zip(("servers", "nginx", "redis"), before, after, strict=True)}
        cpu["clients"] = sum(o["cpu"] for o in outs) * 1e3 / ok
        commands.pop("info", None)  # ours, above
        result = {"target": target.key, "label": target.label, "transport": transport,
                  "round": round_, "calls": len(lat), "seconds": elapsed,
                  "throughput": len(lat) / elapsed,
                  "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
                  "idle_p50_ms": percentile(seq["lat"], 50),
                  "idle_p99_ms": percentile(seq["lat"], 99),
                  "errors": dict(errors), "cpu_ms_per_call": cpu,
                  "cores_used": sum(cpu.values()) * len(lat) / elapsed / 1e3,
                  "redis_per_call": {k: n / ok for k, n in commands.most_common()},
                  "capped": any(o["capped"] for o in outs) or seq["capped"]}
        self.rounds.append(result)
        print(f"  {round_ + 1}  {target.label:<34} {transport:<4} "
              f"{result['throughput']:7.0f} calls/s  p50 {result['p50_ms']:6.2f} ms  "
              f"p99 {result['p99_ms']:6.2f} ms  errors {sum(errors.values())}",
              file=sys.stderr, flush=True)  # progress; stdout is the report (or the JSON)
        return result

    async def run_all(self, targets: list[Target]) -> None:
        """Every target over every transport, ``--rounds`` times; a round goes through the
        targets in the order opposite to the one before it, so that a slow spell of the
        machine does not fall on the same ones each time."""
        rss = {p.pid: p.memory_info().rss for t in targets for p in t.servers}
        for round_ in range(self.args.rounds):
            began = time.monotonic()
            for target in targets[::-1] if round_ % 2 else targets:
                for transport in self.args.transports:
                    await self.measure(target, transport, round_)
            self.rounds_run = round_ + 1
            took = time.monotonic() - began
            if time.monotonic() + took > self.started + self.args.budget:
                break  # another round like this one would overrun the run's budget
        await asyncio.sleep(0.5)  # closed sessions end on the server side
        for target in targets:
            self.checks.append(await leftovers(target, rss))

    @property
    def results(self) -> list[dict[str, Any]]:
        """The best round (highest throughput) of each target and transport, with the
        throughput of every round and the errors of all of them."""
        best: dict[tuple[str, str], dict[str, Any]] = {}
        every: dict[tuple[str, str], list[float]] = {}
        errors: dict[tuple[str, str], Counter[str]] = {}
        for r in self.rounds:
            key = (r["target"], r["transport"])
            every.setdefault(key, []).append(r["throughput"])
            errors.setdefault(key, Counter()).update(r["errors"])
            if key not in best or r["throughput"] > best[key]["throughput"]:
                best[key] = r
        return [{**r, "every_round": every[key], "errors": dict(errors[key])}
                for key, r in best.items()]


async def redis_commands(url: str | None) -> Counter[str]:
    """Commands the Redis at ``url`` has run so far, by name (none without a store)."""
    if url is None:
        return Counter()
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return Counter({name.removeprefix("cmdstat_"): int(value["calls"])
                    for name, value in stats.items()})


async def leftovers(target: Target, rss: dict[int, int]) -> dict[str, Any]:
    """What the target still holds once every client has gone (see the module docstring)."""
    check: dict[str, Any] = {"target": target.key, "label": target.label}
    growth = []
    for proc in target.servers:
        with contextlib.suppress(psutil.Error):
            if proc.pid in rss:
                growth.append((proc.memory_info().rss - rss[proc.pid]) / 2**20)
    check["rss_growth_mb"] = [round(g, 1) for g in growth]
    open_sessions: Counter[str] = Counter()
    check["requests"] = []
    for text in await read_metrics(target):
        for transport, value in OPEN_SESSIONS.findall(text):
            open_sessions[transport] += int(float(value))
        found = REQUESTS.search(text)
        check["requests"].append(int(float(found[1])) if found else None)
    check["open_sessions"] = dict(open_sessions)
    if target.store:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(target.store)
        try:
            keys: Counter[str] = Counter()
            async for key in client.scan_iter(match="mcp:*", count=1000):
                parts = key.decode().split(":")
                keys[":".join(parts[:2])] += 1
            check["redis_keys"] = dict(keys)
        finally:
            await client.aclose()
    lines: Counter[str] = Counter()
    for log in target.logs:
        with contextlib.suppress(OSError):
            for line in log.read_text(errors="replace").splitlines():
                found = re.search(r" (WARNING|ERROR|CRITICAL) (.*)", line)
                if found:
                    lines[f"{found[1]} {re.sub(r'[0-9a-f]{12,}', '…', found[2])[:140]}"] += 1
    check["log"] = dict(lines.most_common(8))
    return check


OPEN_SESSIONS = re.compile(r'^mcp_connections\{[^}]*transport="([^"]+)"[^}]*\} (\S+)$', re.M)
REQUESTS = re.compile(r'^mcp_requests_total(?:\{[^}]*\})? (\S+)$', re.M)
WORKER = re.compile(r'^mcp_worker_info\{[^}]*worker="([^"]+)"', re.M)


async def read_metrics(target: Target) -> list[str]:
    """The ``/metrics`` text of each server process of ``target``. Workers sharing a port
    cannot be asked by name: each new connection reaches one of them, so ask (bounded) until
    every worker has answered once."""
    texts: dict[str, str] = {}
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        for url in target.metrics * (40 if target.workers > 1 else 1):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    text = await resp.text()
                found = WORKER.search(text)
                texts.setdefault(found[1] if found and target.workers > 1 else url, text)
            if target.workers > 1 and len(texts) == target.workers:
                break
    return list(texts.values())


async def wait_workers(base: str, workers: int) -> None:
    """Wait (bounded) until ``/healthz`` on fresh connections has named every worker."""
    seen: set[int] = set()
    connector = aiohttp.TCPConnector(force_close=True)
    async with asyncio.timeout(30), aiohttp.ClientSession(connector=connector) as http:
        while len(seen) < workers:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(base + "/healthz") as resp:
                    seen.add((await resp.json()).get("worker", 0))
            await asyncio.sleep(0.02)


# --- the run ---------------------------------------------------------------------------------


async def run(bench: Bench, tmp: Path) -> None:
    """Start every target at once (idle ones cost next to nothing), measure, stop them all.
    Each target with a store has a redis-server of its own: pub/sub channels are global to a
    Redis server, so targets sharing one would hear each other's broadcasts."""
    sys.path.insert(0, str(ROOT))
    from tests.cluster.harness import Cluster, Instance, find_binary
    from tests.redis_server import RedisProcess
    from tests.redis_server import free_port as redis_port

    quiet = ("--log-level", "WARNING")
    redis_binary = find_binary("redis-server")
    if redis_binary is None or find_binary("nginx") is None:
        raise SystemExit("bench_scale needs nginx and redis-server "
                         "(apt-get install nginx redis-server)")
    stores: dict[str, RedisProcess] = {}
    for key in ("one-nginx-redis", "three-nginx-redis", "workers-2"):
        (tmp / f"redis-{key}").mkdir()
        stores[key] = RedisProcess(redis_binary, tmp / f"redis-{key}", redis_port())
        stores[key].start()

    def redis_of(key: str) -> list[psutil.Process]:
        process = stores[key].process
        assert process is not None
        return [psutil.Process(process.pid)]

    one = Cluster.build(tmp / "one", 1, extra_args=quiet)
    one_store = Cluster.build(tmp / "one-store", 1, store_url=stores["one-nginx-redis"].url,
                              extra_args=quiet)
    three = Cluster.build(tmp / "three", 3, store_url=stores["three-nginx-redis"].url,
                          extra_args=quiet)
    workers = [Instance(0, f"workers-{n}", [*quiet, "--root", str(tmp), "--workers", str(n),
                                            *(["--session-store", stores["workers-2"].url]
                                              if n > 1 else [])],
                        tmp / f"workers-{n}.log") for n in (1, 2)]
    try:
        # One after another: a few Python processes importing at once on a busy small
        # machine can outlast the harness's start-up bound.
        for cluster in (one, one_store, three):
            await cluster.start_all()
        for server in workers:
            await server.start()
        await wait_workers(workers[1].base_url, 2)

        def servers(cluster: Cluster) -> list[psutil.Process]:
            return [p for i in cluster.instances if i.process is not None
                    for p in tree(i.process.pid)]

        def nginx(cluster: Cluster) -> list[psutil.Process]:
            assert cluster.nginx.process is not None
            return tree(cluster.nginx.process.pid)

        def metrics(cluster: Cluster) -> list[str]:
            return [f"{i.base_url}/metrics" for i in cluster.instances]

        def logs(cluster: Cluster) -> list[Path]:
            return [i.log for i in cluster.instances]

        targets = [
            Target("one", "1 instance (baseline)", one.instances[0].base_url, servers(one),
                   metrics=metrics(one), logs=logs(one)),
            Target("one-nginx", "1 instance behind nginx", one.url, servers(one), nginx(one),
                   metrics=metrics(one), logs=logs(one)),
            Target("one-nginx-redis", "1 instance + redis behind nginx", one_store.url,
                   servers(one_store), nginx(one_store), redis_of("one-nginx-redis"),
                   metrics=metrics(one_store), logs=logs(one_store),
                   store=stores["one-nginx-redis"].url),
            Target("three-nginx-redis", "3 instances + redis behind nginx", three.url,
                   servers(three), nginx(three), redis_of("three-nginx-redis"),
                   metrics=metrics(three), logs=logs(three),
                   store=stores["three-nginx-redis"].url),
        ]
        for n, server in zip((1, 2), workers, strict=True):
            assert server.process is not None
            targets.append(Target(
                f"workers-{n}", f"--workers {n}" + (" + redis" if n > 1 else ""),
                server.base_url, tree(server.process.pid),
                redis=redis_of("workers-2") if n > 1 else [],
                metrics=[f"{server.base_url}/metrics"], workers=n, logs=[server.log],
                store=stores["workers-2"].url if n > 1 else None))
        await bench.run_all(targets)
    finally:
        await asyncio.gather(one.close(), one_store.close(), three.close(),
                             *(w.stop() for w in workers), return_exceptions=True)
        for store in stores.values():
            store.stop()


# --- the report ----------------------------------------------------------------------------


def _version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not found"
    return (done.stdout + done.stderr).strip().splitlines()[0]


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    system = platform.platform()
    with contextlib.suppress(OSError):
        found = re.search(r'^PRETTY_NAME="(.*)"', Path("/etc/os-release").read_text(), re.M)
        if found:
            system = f"{found[1]}, Linux {platform.release()}"
    nginx = shutil.which("nginx", path=os.pathsep.join([os.environ.get("PATH", ""),
                                                        "/usr/sbin", "/sbin"])) or "nginx"
    return {"cpu": model, "cores": os.cpu_count(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "os": system,
            "python": platform.python_version(), "nginx": _version([nginx, "-v"]),
            "redis": _version(["redis-server", "--version"]),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


BASELINES = {"one": "one", "one-nginx": "one", "one-nginx-redis": "one",
             "three-nginx-redis": "one", "workers-1": "workers-1", "workers-2": "workers-1"}


def ceiling(r: dict[str, Any]) -> float:
    """Calls per second if every server process had a core of its own and the clients ran
    elsewhere: the servers' CPU per call spread over their processes, bounded by nginx (one
    worker process) and redis (one thread), each on one core."""
    cpu = r["cpu_ms_per_call"]
    instances = {"three-nginx-redis": 3, "workers-2": 2}.get(r["target"], 1)
    bounds = [instances * 1e3 / cpu["servers"]]
    bounds += [1e3 / cpu[k] for k in ("nginx", "redis") if cpu[k] > 0.001]
    return min(bounds)


def table(results: list[dict[str, Any]], transport: str) -> list[str]:
    by_key = {r["target"]: r for r in results if r["transport"] == transport}
    lines = ["| target | calls/s (every round) | x base | p50 ms | p99 ms | x base p50 "
             "| unloaded p50 ms | CPU ms/call: servers + nginx + redis + clients "
             "| cores used | redis cmds/call | ceiling calls/s | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for key, r in by_key.items():
        base = by_key.get(BASELINES[key], r)
        cpu = r["cpu_ms_per_call"]
        every = " / ".join(f"{t:.0f}" for t in r["every_round"])
        lines.append(
            f"| {r['label']} | **{r['throughput']:.0f}** ({every}) | "
            f"{r['throughput'] / base['throughput']:.2f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['p50_ms'] / base['p50_ms']:.2f} | {r['idle_p50_ms']:.2f} "
            f"| {cpu['servers']:.2f} + {cpu['nginx']:.2f} + {cpu['redis']:.2f} + "
            f"{cpu['clients']:.2f} | {r['cores_used']:.2f} "
            f"| {sum(r['redis_per_call'].values()):.1f} | {ceiling(r):.0f} "
            f"| {sum(r['errors'].values())}{' (capped)' if r['capped'] else ''} |")
    return lines


def ratio(results: list[dict[str, Any]], transport: str, key: str, base: str,
          what: str = "throughput") -> float:
    by_key = {r["target"]: r for r in results if r["transport"] == transport}
    if key not in by_key or base not in by_key:
        return float("nan")
    if what == "ceiling":
        return ceiling(by_key[key]) / ceiling(by_key[base])
    return float(by_key[key][what] / by_key[base][what])


def report(info: dict[str, Any], args: argparse.Namespace, results: list[dict[str, Any]],
           checks: list[dict[str, Any]], seconds: float, rounds: int) -> str:
    cores = info["cores"]
    out = [
        "# Scale-out benchmark: one instance vs three behind nginx, `--workers 2` vs 1",
        "",
        f"Written by `uv run python benchmarks/bench_scale.py` on {info['date']} "
        f"(`--calls {args.calls} --concurrency {args.concurrency} --clients {args.clients} "
        f"--rounds {args.rounds}`, {rounds} rounds run in {seconds:.0f} s). A report, "
        "not a test: the "
        "figures are ratios against baselines measured in the same run.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, **{cores} cores**; RAM {info['ram_gb']} GiB",
        f"- OS: {info['os']}; Python {info['python']}",
        f"- {info['nginx']}; {info['redis']}",
        f"- load average when the run started / ended: {info['load_before']} / "
        f"{info['load_after']}: other work shared the machine, so every figure is noisy",
        "",
        "## What was measured",
        "",
        f"`tools/call echo` round trips. {args.clients} client processes (each its own asyncio "
        f"loop) hold {args.concurrency} sessions between them, each session on its own "
        f"connection(s) making its calls one after another; {args.calls} calls per "
        "measurement, cut short at "
        f"{args.max_seconds:g} s (*capped*). Every target was measured {rounds} times, "
        "the rounds interleaved (every target once, then again in the opposite order); the "
        "table gives the best round in bold and every round's throughput after it. "
        "*Unloaded p50* is one session alone, sequential. *CPU ms/call* is the CPU time each "
        "component spent during the loaded measurement divided by the calls answered "
        "(servers: all server processes together); *cores used* is all of it per second of "
        f"the measurement (at most {cores}). *Redis cmds/call* counts the commands the store "
        "ran per call (Redis's own command statistics). *Ceiling* is what those CPU costs "
        "allow if every server process had a core of its own and the clients ran elsewhere "
        "(a projection, not a measurement): server processes x 1000 / their CPU ms per call, "
        "bounded by nginx (one worker) and redis (one thread) at 1000 / theirs.",
        "",
        "Targets: (a) *1 instance* alone is the baseline of the first four rows; nginx is "
        "`deploy/nginx.conf` (round robin, no stickiness, access log on); each store is a "
        "real `redis-server` of its own (`--session-store redis://…`). (b) `--workers 1` is "
        "the baseline of `--workers 2 + redis` (two processes on one port through "
        "`SO_REUSEPORT`). *1 instance* and `--workers 1` are the same server (one process): "
        "the gap between them is the noise of the run.",
        "",
    ]
    for transport in args.transports:
        out += [f"## {TRANSPORTS[transport]}", "", *table(results, transport), ""]
    used = [r["cores_used"] for r in results]
    spread = max((max(r["every_round"]) / min(r["every_round"]) for r in results
                  if min(r["every_round"]) > 0), default=1.0)
    same = max((max(q, 1 / q) for t in args.transports
                if (q := ratio(results, t, "one", "workers-1")) > 0), default=1.0)
    base = [r for r in results if r["target"] == "one"]
    clients = statistics.mean(r["cpu_ms_per_call"]["clients"] / r["cpu_ms_per_call"]["servers"]
                              for r in base) if base else float("nan")
    out += [
        "## Reading the figures",
        "",
        f"This machine has **{cores} cores**, and the run shared them with other work: our "
        f"processes together got {min(used, default=0):.2f} to {max(used, default=0):.2f} "
        f"cores' worth of CPU during the measurements (*cores used*). In (a) three server "
        f"processes, nginx, redis-server and {args.clients} client processes share that, so "
        "three instances have no spare core to be faster with: each call now also crosses "
        "nginx and asks Redis, and that work comes out of the same cores. The throughput "
        "ratio of three instances to one measures that added cost, not the gain of scaling "
        "out; the same holds for `--workers 2` (two processes on cores that the clients and "
        "redis also need). The load generator is no exception: against one instance the "
        f"clients spent x{clients:.2f} the server's CPU per call, on the same cores.",
        "",
        "The throughput of one target varied by up to "
        f"x{spread:.1f} from one round to another, and two names for the same server "
        f"(*1 instance* and `--workers 1`) differed by up to x{same:.2f}: take the "
        "throughput ratios as rough. The CPU per call is steadier (it does not depend on "
        "how much of the machine the run was given); it and the ceiling column are the "
        "figures to carry to a machine with a core for each process.",
        "",
    ]
    for transport in args.transports:
        name = TRANSPORTS[transport].split(" (")[0]
        out.append(
            f"- {name}: three instances + redis behind nginx reached "
            f"x{ratio(results, transport, 'three-nginx-redis', 'one'):.2f} of one "
            f"instance's throughput (nginx alone x"
            f"{ratio(results, transport, 'one-nginx', 'one'):.2f}, nginx and the store on "
            f"one instance x{ratio(results, transport, 'one-nginx-redis', 'one'):.2f}); "
            f"`--workers 2` x{ratio(results, transport, 'workers-2', 'workers-1'):.2f} of one "
            "worker. With a core for each process, the CPU costs project three instances "
            f"to x{ratio(results, transport, 'three-nginx-redis', 'one', 'ceiling'):.2f} of "
            "one and two workers to "
            f"x{ratio(results, transport, 'workers-2', 'workers-1', 'ceiling'):.2f} of one.")
    out += [
        "",
        "Where the projection stops: a single nginx worker and a single-threaded redis each "
        "cap the cluster at 1000 / their CPU ms per call (nginx `worker_processes auto` lifts "
        "the first); past that, more instances add nothing. WebSocket does not touch the "
        "store (one connection, one instance), so it shows the scale-out without the "
        "store's cost, as far as the connections are spread.",
        "",
        "## Redis commands per call",
        "",
        "What the store ran for each call (best round), by command: the cost a shared "
        "session adds to every request.",
        "",
    ]
    for r in results:
        if r["redis_per_call"]:
            top = ", ".join(f"{name} {n:.2f}" for name, n in r["redis_per_call"].items()
                            if n >= 0.01)
            out.append(f"- {r['label']} / {r['transport']}: {top or 'none'}")
    out += [
        "",
        "## Left over after the run",
        "",
        "Once every client had closed its sessions (Streamable HTTP ones deleted): sessions "
        "the servers still count open (`mcp_connections`), keys left in each Redis by prefix "
        "(`mcp:i` are instance heartbeats, expected), growth of each server process's "
        "resident memory over the run, requests each process served (`mcp_requests_total`, "
        "which shows how nginx and the kernel spread them), and warning or error lines in "
        "the servers' logs (hex ids elided).",
        "",
    ]
    for check in checks:
        out.append(f"- {check['label']}: open sessions {check['open_sessions'] or 'none'}; "
                   + (f"redis keys {check.get('redis_keys') or 'none'}; "
                      if "redis_keys" in check else "")
                   + f"RSS growth MB {check['rss_growth_mb']}; "
                   f"requests served {check['requests']}; log lines: "
                   + ("; ".join(f"{n} x `{line}`" for line, n in check["log"].items())
                      or "none"))
    errors = [(r["label"], r["transport"], r["errors"]) for r in results if r["errors"]]
    out += ["", "## Errors seen by the clients (all rounds)", ""]
    out += [f"- {label} / {transport}: " + "; ".join(f"{n} x {e}" for e, n in errs.items())
            for label, transport, errs in errors] or ["None."]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=2000, help="calls per loaded measurement")
    p.add_argument("--concurrency", type=int, default=48, help="sessions in flight")
    p.add_argument("--clients", type=int, default=3, help="client processes")
    p.add_argument("--max-seconds", type=float, default=5.0,
                   help="a loaded measurement stops after this long")
    p.add_argument("--rounds", type=int, default=3, help="measurements of each target")
    p.add_argument("--budget", type=float, default=165.0,
                   help="seconds: no round starts that would end past it (the first always)")
    p.add_argument("--transports", nargs="+", choices=list(TRANSPORTS),
                   default=list(TRANSPORTS))
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--output", type=Path, default=REPORT, help="the Markdown report written")
    a = p.parse_args()
    a.concurrency = max(a.concurrency, a.clients)
    info = machine()
    info["load_before"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.monotonic()
    bench = Bench(a)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            asyncio.run(run(bench, Path(tmp)))
    finally:
        bench.close()
    info["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    seconds = time.monotonic() - started
    text = report(info, a, bench.results, bench.checks, seconds, bench.rounds_run)
    a.output.write_text(text)
    if a.json:
        print(json.dumps({"machine": info, "results": bench.results, "rounds": bench.rounds,
                          "leftovers": bench.checks}, indent=2))
    else:
        print(text)


if __name__ == "__main__":
    main()
