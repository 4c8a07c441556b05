"""Memory of many legacy HTTP+SSE sessions: our server with 10,000 open, the SDK's with 1,000.

Run by hand as a report (never as a pass/fail test)::

    uv run python benchmarks/bench_sse_sessions.py [--sessions 10000] [--sdk-sessions 1000]
        [--processes 4] [--json OUT]

Theory of operation. The coordinator (this process) starts a server as a subprocess on a free
loopback port — ours (``python -m mcp_multi.server``) with ``--max-sessions`` and
``--max-sessions-per-client`` lifted above the count (every session comes from 127.0.0.1, one
client address) and ``--max-connections`` above the sockets the run needs, then the official
SDK's (``benchmarks/_peers.py sdk-sse``) — and reads its resident memory (psutil) once it
answers and is idle. It then starts ``--processes`` client processes (this script with
``--client``): one process cannot hold ten thousand sockets cheaply, and each raises its own
open-file limit to its hard limit. They talk to the coordinator in JSON lines on their
stdin and stdout, and go through three phases in step:

1. **open**: each opens its share of ``GET /sse`` streams (a bounded number of connects at a
   time) and waits for every stream's ``endpoint`` event;
2. **call**, once every stream of every process is open: each session POSTs ``initialize``,
   ``notifications/initialized`` and a ``tools/call echo`` naming the session, and waits for
   the two answers on its own stream; an answer counts only if it is the echo of that
   session's own message. POSTs travel over a small pool of keep-alive connections per
   process, so the server holds one socket per stream and a few more;
3. once every process has answered, the coordinator reads the server's resident memory with
   every stream still open, then tells the processes to close their streams.

A stream is read by an :class:`asyncio.Protocol` with an ``httptools`` parser and our SSE
parser, not by a task, so that the clients stay cheap. Every wait is bounded
(``--timeout``); a count that falls short is reported, never waited for forever.

The report (``--json OUT``, and a table on stdout) gives per server the sessions opened, the
ones answered, the resident memory with all open (``rss_mb``), while idle before
(``idle_rss_mb``), the largest seen during the run (``peak_rss_mb``), and what one session
costs: ``(rss_mb - idle_rss_mb) / sessions`` in KiB (``kb_per_session``), and the server's
CPU time per session to open its stream and to answer its calls (``open_cpu_ms_per_session``,
``call_cpu_ms_per_session``: on a busy machine these move less than durations do)::

    {"ours": {"sessions": n, "rss_mb": x, "kb_per_session": x, "answered": n, ...},
     "sdk": {"sessions": 1000, "rss_mb": x, "kb_per_session": x, "answered": n, ...}}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httptools

from mcp_multi.protocol.sse import SSEParser, resolve_endpoint

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
# Connects each client process has under way at once, and POSTs in flight.
CONNECTS_AT_ONCE = 64
CALLS_AT_ONCE = 32
POST_CONNECTIONS = 8
LEGACY_VERSION = "2024-11-05"


# ---------------------------------------------------------------- the client processes

class _Session(asyncio.Protocol):
    """One ``GET /sse`` stream: its HTTP response parsed by httptools, its body by our SSE
    parser; ``endpoint`` resolves when the endpoint event arrives, ``answers`` by id."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.parser = httptools.HttpResponseParser(self)
        self.sse = SSEParser()
        loop = asyncio.get_running_loop()
        self.endpoint: asyncio.Future[str] = loop.create_future()
        self.answers: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.transport: asyncio.Transport | None = None
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        path = self.url.split("/", 3)[3]
        transport.write(f"GET /{path} HTTP/1.1\r\nHost: {self.url.split('/')[2]}\r\n"
                        "Accept: text/event-stream\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # a malformed answer: this session fails, the run goes on
            self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the server closed the stream"))

    def _fail(self, exc: BaseException) -> None:
        futures: list[asyncio.Future[Any]] = [self.endpoint, *self.answers.values()]
        for future in futures:
            if not future.done():
                future.set_exception(exc)

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status != 200:
            self._fail(ConnectionError(f"GET /sse answered {self.status}"))

    def on_body(self, body: bytes) -> None:
        for event in self.sse.feed(body):
            if event.event == "endpoint":
                if not self.endpoint.done():
                    self.endpoint.set_result(resolve_endpoint(self.url, event.data))
            elif event.event == "message":
                message = json.loads(event.data)
                key = message.get("id") if isinstance(message, dict) else None
                future = self.answers.get(key) if isinstance(key, int) else None
                if future is not None and not future.done():
                    future.set_result(message)

    def expect(self, request_id: int) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.answers[request_id] = future
        return future

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _client(url: str, count: int, number: int, timeout: float) -> None:
    """A client process: open ``count`` streams, then make the calls, then close, each on
    the coordinator's word (a line on stdin), reporting each phase in a line on stdout."""
    import aiohttp

    _raise_nofile()
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(sys.stdin.fileno(), lambda: commands.put_nowait(sys.stdin.readline()))

    def report(**fields: Any) -> None:
        print(json.dumps(fields), flush=True)

    host, port = url.split("/")[2].rsplit(":", 1)
    sessions: list[_Session] = []
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def open_one() -> _Session | None:
        async with gate:
            try:
                _, session = await asyncio.wait_for(
                    loop.create_connection(lambda: _Session(url), host, int(port)), timeout)
                await asyncio.wait_for(session.endpoint, timeout)
            except (OSError, TimeoutError, ConnectionError, ValueError):
                return None
        return session

    await commands.get()  # "open"
    opened = await asyncio.gather(*(open_one() for _ in range(count)))
    sessions = [s for s in opened if s is not None]
    report(phase="open", opened=len(sessions))

    await commands.get()  # "call"
    connector = aiohttp.TCPConnector(limit=POST_CONNECTIONS)
    calls = asyncio.Semaphore(CALLS_AT_ONCE)
    failures: dict[str, int] = {}
    async with aiohttp.ClientSession(connector=connector) as http:

        async def post(endpoint: str, message: dict[str, Any]) -> None:
            async with http.post(endpoint, json=message) as response:
                await response.read()
                if response.status != 202:
                    raise ConnectionError(f"POST answered {response.status}")

        async def call_one(index: int, session: _Session) -> bool:
            text = f"session {number}-{index}"
            endpoint = session.endpoint.result()
            async with calls:
                try:
                    answer = session.expect(1)
                    await post(endpoint, {
                        "jsonrpc": "2.0", "id": 1, "method": "initialize",
                        "params": {"protocolVersion": LEGACY_VERSION, "capabilities": {},
                                   "clientInfo": {"name": "bench-sse", "version": "1"}}})
                    init = await asyncio.wait_for(answer, timeout)
                    if "result" not in init:
                        raise ValueError(f"initialize: {init.get('error')}")
                    await post(endpoint, {"jsonrpc": "2.0",
                                          "method": "notifications/initialized"})
                    answer = session.expect(2)
                    await post(endpoint, {
                        "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                        "params": {"name": "echo", "arguments": {"message": text}}})
                    echoed = await asyncio.wait_for(answer, timeout)
                except (OSError, TimeoutError, ConnectionError, ValueError,
                        aiohttp.ClientError) as exc:
                    kind = type(exc).__name__
                    failures[kind] = failures.get(kind, 0) + 1
                    return False
            content = echoed.get("result", {}).get("content") or [{}]
            ok = bool(content[0].get("text") == f"Echo: {text}")
            if not ok:
                failures["wrong answer"] = failures.get("wrong answer", 0) + 1
            return ok

        answered = await asyncio.gather(*(call_one(i, s) for i, s in enumerate(sessions)))
    still_open = sum(1 for s in sessions if s.transport is not None
                     and not s.transport.is_closing())
    report(phase="call", answered=sum(answered), still_open=still_open, failures=failures)

    await commands.get()  # "close"
    for session in sessions:
        session.close()
    report(phase="close")


# ---------------------------------------------------------------- the coordinator

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the server did not listen on {port} within {timeout:g} s")


class _Sampler:
    """The resident memory of one process, read now and the largest seen while it runs."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.peak = 0

    def rss(self) -> int:
        value = int(self.process.memory_info().rss)
        self.peak = max(self.peak, value)
        return value


def _cpu(sampler: _Sampler) -> float:
    times = sampler.process.cpu_times()
    return float(times.user + times.system)


def _send(clients: list[subprocess.Popen[str]], command: str) -> None:
    for client in clients:
        assert client.stdin is not None
        client.stdin.write(command + "\n")
        client.stdin.flush()


def _gather(clients: list[subprocess.Popen[str]], sampler: _Sampler, timeout: float
            ) -> list[dict[str, Any]]:
    """One report line from every client, sampling the server's memory meanwhile."""
    import selectors

    selector = selectors.DefaultSelector()
    for client in clients:
        assert client.stdout is not None
        selector.register(client.stdout, selectors.EVENT_READ, client)
    lines: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(lines) < len(clients) and time.monotonic() < deadline:
        sampler.rss()
        for key, _ in selector.select(0.25):
            client = key.data
            line = client.stdout.readline()
            selector.unregister(key.fileobj)
            lines[client.pid] = json.loads(line) if line else {"error": "exited"}
    selector.close()
    return [lines.get(c.pid, {"error": "timed out"}) for c in clients]


def measure(kind: str, sessions: int, processes: int, timeout: float,
            log: Callable[[str], None]) -> dict[str, Any]:
    """Open ``sessions`` SSE sessions on a fresh server of ``kind`` ("ours" or "sdk"), call
    through each, read the server's memory with all open; the figures."""
    port = _free_port()
    if kind == "ours":
        spare = sessions + 64
        command = [sys.executable, "-m", "mcp_multi.server", "--port", str(port),
                   "--log-level", "WARNING", "--max-sessions", str(spare),
                   "--max-sessions-per-client", str(spare),
                   "--max-connections", str(spare + processes * POST_CONNECTIONS + 64)]
        path = "/sse"
    else:
        command = [sys.executable, str(HERE / "_peers.py"), "sdk-sse", str(port)]
        path = "/sse"
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    clients: list[subprocess.Popen[str]] = []
    try:
        _wait_listening(port, server, 60)
        sampler = _Sampler(server.pid)
        time.sleep(1.0)
        idle = sampler.rss()
        url = f"http://{HOST}:{port}{path}"
        shares = [sessions // processes + (i < sessions % processes) for i in range(processes)]
        for number, share in enumerate(shares):
            clients.append(subprocess.Popen(
                [sys.executable, __file__, "--client", url, "--count", str(share),
                 "--number", str(number), "--timeout", str(timeout)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        started = time.monotonic()
        cpu = _cpu(sampler)
        _send(clients, "open")
        opened = _gather(clients, sampler, timeout * 4)
        open_count = sum(r.get("opened", 0) for r in opened)
        log(f"{kind}: {open_count} of {sessions} streams open in "
            f"{time.monotonic() - started:.1f} s")
        after_open = sampler.rss()
        open_cpu = _cpu(sampler) - cpu
        started = time.monotonic()
        cpu = _cpu(sampler)
        _send(clients, "call")
        called = _gather(clients, sampler, timeout * 8)
        call_cpu = _cpu(sampler) - cpu
        answered = sum(r.get("answered", 0) for r in called)
        still_open = sum(r.get("still_open", 0) for r in called)
        failures: dict[str, int] = {}
        for r in called:
            for name, n in (r.get("failures") or {}).items():
                failures[name] = failures.get(name, 0) + n
        log(f"{kind}: {answered} answered in {time.monotonic() - started:.1f} s, "
            f"{still_open} still open")
        time.sleep(1.0)  # what the calls left behind settles
        with_all_open = sampler.rss()
        _send(clients, "close")
        _gather(clients, sampler, timeout)
    finally:
        for client in clients:
            with contextlib.suppress(OSError):
                client.stdin.close()  # type: ignore[union-attr]
        for client in clients:
            try:
                client.wait(timeout)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
        server.terminate()
        try:
            _, errors = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, errors = server.communicate()
    warnings = [line for line in (errors or "").splitlines() if " WARNING " in line
                or " ERROR " in line]
    mib = 1024 * 1024
    return {
        "sessions": open_count,
        "asked": sessions,
        "answered": answered,
        "still_open": still_open,
        "failures": failures,
        "idle_rss_mb": round(idle / mib, 1),
        "rss_open_mb": round(after_open / mib, 1),
        "rss_mb": round(with_all_open / mib, 1),
        "peak_rss_mb": round(sampler.peak / mib, 1),
        "kb_per_session": round((with_all_open - idle) / 1024 / max(1, open_count), 2),
        # The server's CPU time (user + system) per session to open its stream, and to
        # answer its three messages: figures a busy machine disturbs less than durations.
        "open_cpu_ms_per_session": round(open_cpu * 1000 / max(1, open_count), 3),
        "call_cpu_ms_per_session": round(call_cpu * 1000 / max(1, answered), 3),
        "server_warnings": warnings[:10],
    }


def _table(results: dict[str, dict[str, Any]]) -> str:
    rows = ["| server | sessions | answered | idle MB | RSS all open MB | peak MB | KB/session "
            "| CPU ms/open | CPU ms/session's calls |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['sessions']} | {r['answered']} | {r['idle_rss_mb']} | "
                    f"{r['rss_mb']} | {r['peak_rss_mb']} | {r['kb_per_session']} | "
                    f"{r['open_cpu_ms_per_session']} | {r['call_cpu_ms_per_session']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000,
                        help="SSE sessions opened on our server (default 10000)")
    parser.add_argument("--sdk-sessions", type=int, default=1000,
                        help="SSE sessions opened on the SDK's server (default 1000; 0 skips)")
    parser.add_argument("--processes", type=int, default=4,
                        help="client processes sharing the sessions (default 4)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds one step of one session may take (default 60)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="write the figures to OUT as JSON")
    parser.add_argument("--client", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--number", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client is not None:
        asyncio.run(_client(args.client, args.count, args.number, args.timeout))
        return 0
    if args.sessions < 1 or args.sdk_sessions < 0 or args.processes < 1:
        parser.error("--sessions and --processes must be at least 1, --sdk-sessions 0 or more")

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    limit = _raise_nofile()
    log(f"open-file limit {limit}; {args.processes} client processes")
    results = {"ours": measure("ours", args.sessions, args.processes, args.timeout, log)}
    if args.sdk_sessions:
        results["sdk"] = measure("sdk", args.sdk_sessions, args.processes, args.timeout, log)
    results["machine"] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "platform": platform.platform(), "client_processes": args.processes,
    }
    print(_table({k: v for k, v in results.items() if k != "machine"}))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
