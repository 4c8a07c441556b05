"""Server overhead: ``tools/call echo`` round trips against ours and against baselines.

Run by hand or in CI as a report (never as a pass/fail test)::

    uv run python benchmarks/bench_server.py [--calls 2000] [--concurrency 32]

Each server runs in its own process on a free loopback port; one client (raw aiohttp, the
same for every server) measures sequential latency and concurrent throughput. Figures are
ratios against baselines measured in the same run:

- WebSocket: ours vs. the floor (raw aiohttp answering JSON-RPC with no MCP logic);
- legacy HTTP+SSE: ours vs. the official Python SDK's MCPServer over SSE;
- Streamable HTTP (handshake era, a session, JSON answers): ours vs. the SDK's MCPServer.

Resident memory of each server process after the run is reported the same way.

Issue 12's targets (the server against the floors under wrk, the client, the load mode,
memory of 10,000 SSE sessions) are measured by ``benchmarks/run.py``; this script remains
the quick look at all three transports from one client.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, *args, str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


async def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


INIT = {"protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"}}


def call(i: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": f"m{i}"}}}


class WSClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = orjson.loads(msg.data)
            fut = self.waiters.pop(data.get("id"), None)
            if fut is not None:
                fut.set_result(data)

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        fut = asyncio.get_running_loop().create_future()
        self.waiters[msg["id"]] = fut
        await self.ws.send_str(orjson.dumps(msg).decode())
        return await fut


class SSEClient:
    def __init__(self, http: aiohttp.ClientSession, stream: aiohttp.ClientResponse,
                 endpoint: str) -> None:
        self.http, self.stream, self.endpoint = http, stream, endpoint
        self.waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.stream.content:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data = orjson.loads(line[5:])
                fut = self.waiters.pop(data.get("id"), None)
                if fut is not None:
                    fut.set_result(data)

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        fut = asyncio.get_running_loop().create_future()
        self.waiters[msg["id"]] = fut
        async with self.http.post(self.endpoint, data=orjson.dumps(msg),
                                  headers={"Content-Type": "application/json"}) as resp:
            assert resp.status in (200, 202), resp.status
        return await fut


class HTTPClient:
    """Streamable HTTP, handshake era: one POST per request, JSON or SSE answers."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.headers = {"Accept": "application/json, text/event-stream",
                        "Content-Type": "application/json"}

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.url, data=orjson.dumps(msg),
                                  headers=self.headers) as resp:
            assert resp.status == 200, resp.status
            if "Mcp-Session-Id" in resp.headers:
                self.headers["Mcp-Session-Id"] = resp.headers["Mcp-Session-Id"]
                self.headers["MCP-Protocol-Version"] = INIT["protocolVersion"]
            body = await resp.read()
        if resp.content_type == "text/event-stream":
            datas = [line[5:] for line in body.splitlines() if line.startswith(b"data:")]
            body = next(d for d in reversed(datas) if d.strip())
        reply: dict[str, Any] = orjson.loads(body)
        if msg["method"] == "initialize":
            await self.http.post(self.url, data=orjson.dumps(
                {"jsonrpc": "2.0", "method": "notifications/initialized"}),
                headers=self.headers)
        return reply


async def open_sse(http: aiohttp.ClientSession, base: str) -> SSEClient:
    stream = await http.get(base + "/sse")
    async for raw in stream.content:
        if raw.startswith(b"data:"):
            endpoint = raw[5:].strip().decode()
            return SSEClient(http, stream, base + endpoint if endpoint.startswith("/")
                             else endpoint)
    raise RuntimeError("no endpoint event")


Request = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def measure(request: Request, calls: int, concurrency: int) -> dict[str, float]:
    await request({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT})
    for i in range(1, 50):  # warm-up
        await request(call(i))
    lat = []
    for i in range(1000, 1000 + calls):
        t = time.perf_counter()
        reply = await request(call(i))
        lat.append(time.perf_counter() - t)
        assert reply["result"]["content"][0]["text"] == f"Echo: m{i}", reply
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await request(call(i))

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(100_000, 100_000 + calls)))
    elapsed = time.perf_counter() - t
    return {"p50_ms": statistics.median(lat) * 1e3,
            "p99_ms": statistics.quantiles(lat, n=100)[98] * 1e3,
            "throughput": calls / elapsed}


async def run_target(kind: str, args: list[str], calls: int, conc: int) -> dict[str, float]:
    proc, port = start(args)
    try:
        await wait_listening(port)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            if kind == "ws":
                async with http.ws_connect(base + "/ws", protocols=("mcp",)) as ws:
                    result = await measure(WSClient(ws).request, calls, conc)
            elif kind == "http":
                result = await measure(HTTPClient(http, base + "/mcp").request, calls, conc)
            else:
                client = await open_sse(http, base)
                result = await measure(client.request, calls, conc)
                client.stream.close()
        result["rss_mb"] = psutil.Process(proc.pid).memory_info().rss / 2**20
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def row(name: str, r: dict[str, float], base: dict[str, float] | None) -> str:
    line = (f"{name:<30} p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms  "
            f"{r['throughput']:9.0f} calls/s  rss {r['rss_mb']:6.1f} MB")
    if base:
        line += (f"   | latency x{r['p50_ms'] / base['p50_ms']:.2f}"
                 f"  throughput x{r['throughput'] / base['throughput']:.2f}"
                 f"  rss x{r['rss_mb'] / base['rss_mb']:.2f}")
    return line


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    a = p.parse_args()
    ours = ["mcp_server.py", "--log-level", "WARNING", "--port"]
    floor = await run_target("ws", [str(HERE / "_peers.py"), "floor-ws"], a.calls, a.concurrency)
    ours_ws = await run_target("ws", ours, a.calls, a.concurrency)
    sdk_sse = await run_target("sse", [str(HERE / "_peers.py"), "sdk-sse"], a.calls,
                               a.concurrency)
    ours_sse = await run_target("sse", ours, a.calls, a.concurrency)
    sdk_http = await run_target("http", [str(HERE / "_peers.py"), "sdk-http"], a.calls,
                                a.concurrency)
    ours_http = await run_target("http", ours, a.calls, a.concurrency)
    print(f"tools/call echo, {a.calls} sequential + {a.calls} at concurrency {a.concurrency}")
    print(row("floor (raw aiohttp) ws", floor, None))
    print(row("ours ws", ours_ws, floor))
    print(row("official SDK sse", sdk_sse, None))
    print(row("ours sse", ours_sse, sdk_sse))
    print(row("official SDK streamable http", sdk_http, None))
    print(row("ours streamable http", ours_http, sdk_http))


if __name__ == "__main__":
    asyncio.run(main())
