"""Client overhead: our ``MCPConnection`` against the official SDK's ``ClientSession``.

Run by hand, or by ``benchmarks/run.py`` (never as a pass/fail test)::

    uv run python benchmarks/bench_client.py [--calls 400] [--rounds 7] [--json OUT]

Theory of operation: the script starts our server (``mcp_server.py --log-level WARNING``)
as a subprocess on a free loopback port, then, for each transport (Streamable HTTP,
WebSocket, legacy SSE), opens every client it compares at once and measures them in
alternating rounds: in each round every client makes ``--calls`` sequential
``tools/call echo`` and its rate is noted; the figure of a client is the median of its
rounds. Alternating rounds in one process against one server makes the ratio fair on a
busy machine (each client sees the same noise), where absolute rates would not be.

The clients, each over the same transport to the same server:

- ``ours``: :class:`~mcp_multi.client.connection.MCPConnection` as it comes (over
  Streamable HTTP it negotiates 2026-07-28, the stateless era);
- ``ours_2025``: the same at ``--protocol-version 2025-11-25``, the SDK's era (over
  WebSocket and SSE that is what ``ours`` speaks already, so only HTTP has it);
- ``sdk``: the official SDK's ``ClientSession`` over ``streamable_http_client`` or
  ``sse_client``. The SDK (2.x) has no WebSocket client any more, so over WebSocket its
  ``ClientSession`` runs over a small adapter here: aiohttp's WebSocket, one JSON-RPC
  message per text frame, decoded and encoded with the SDK's own message models as its
  transports do.

Each round also notes the process's CPU time per call (``*_cpu_us``): the client's own
cost, since the server runs in another process. On a machine shared with other work it is
steadier than the rates, whose wall time includes the server's turn and everyone else's.

After the sequential rounds ``ours`` also runs at concurrency 16 (calls/s, for
information: the SDK's session is not built to pipeline). ``--loop uvloop`` runs both
clients on uvloop instead of asyncio's loop. The result, printed and with ``--json OUT``
written as one object::

    {"http": {"ours_seq": X, "ours_2025_seq": X, "sdk_seq": X, "ours_cpu_us": X,
              "ours_2025_cpu_us": X, "sdk_cpu_us": X, "ratio": X, "ratio_2025": X,
              "ours_c16": X},
     "ws": {"ours_seq": X, "sdk_seq": X, "ours_cpu_us": X, "sdk_cpu_us": X, "ratio": X,
            "ours_c16": X},
     "sse": {...}, "calls": N, "rounds": R, "loop": "asyncio",
     "load_avg_1m": [before, after]}

On a machine whose cores are all busy the wall-clock ratios sink towards 1 (every call
waits for the server to get a core, whichever client sent it); ``load_avg_1m`` says how
busy it was, and the CPU figures still compare the clients.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mcp_multi.client.connection import MCPConnection  # noqa: E402
from mcp_multi.transport import create_transport  # noqa: E402

ARGS = {"message": "hi"}
Call = Callable[[], Awaitable[object]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def our_server() -> AsyncIterator[int]:
    """Our server in its own process on a free port; yields the port once it answers."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "mcp_server.py"), "--port", str(port),
        "--log-level", "WARNING",
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(400):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"our server did not start on port {port}")
        yield port
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# -- the clients ---------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def ours(kind: str, url: str, version: str | None = None) -> AsyncIterator[MCPConnection]:
    async with MCPConnection(f"ours-{kind}", create_transport(kind, url),
                             protocol_version=version) as connection:
        yield connection


@contextlib.asynccontextmanager
async def sdk_websocket(url: str) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's stream pair over an aiohttp WebSocket (see the module docstring)."""
    import anyio
    import mcp_types
    from mcp.shared._context_streams import create_context_streams
    from mcp.shared.message import SessionMessage

    incoming_writer, incoming = create_context_streams[Any](0)
    outgoing, outgoing_reader = create_context_streams[Any](0)
    adapter = mcp_types.jsonrpc_message_adapter
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(url, protocols=("mcp",)) as ws:

        async def read_frames() -> None:
            async with incoming_writer:
                async for frame in ws:
                    if frame.type is not aiohttp.WSMsgType.TEXT:
                        break
                    message = adapter.validate_json(frame.data, by_name=False)
                    await incoming_writer.send(SessionMessage(message))

        async def write_frames() -> None:
            async with outgoing_reader:
                async for item in outgoing_reader:
                    await ws.send_str(item.message.model_dump_json(
                        by_alias=True, exclude_unset=True))

        async with anyio.create_task_group() as group:
            group.start_soon(read_frames)
            group.start_soon(write_frames)
            try:
                yield incoming, outgoing
            finally:
                group.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def sdk(kind: str, url: str) -> AsyncIterator[Any]:
    from mcp import ClientSession
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    streams: contextlib.AbstractAsyncContextManager[Any]
    if kind == "http":
        streams = streamable_http_client(url)
    elif kind == "sse":
        streams = sse_client(url)
    else:
        streams = sdk_websocket(url)
    async with streams as pair, ClientSession(pair[0], pair[1]) as session:
        await session.initialize()
        yield session


# -- measuring -----------------------------------------------------------------------------

async def sequential_rate(call: Call, calls: int) -> float:
    return (await sequential(call, calls))[0]


async def sequential(call: Call, calls: int) -> tuple[float, float]:
    """``calls`` calls one after another: calls/s, and this process's CPU µs per call (the
    client's own cost, server apart: it runs in its own process)."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await call()
    return (calls / (time.perf_counter() - start),
            (time.process_time() - cpu) / calls * 1e6)


async def concurrent_rate(call: Call, calls: int, concurrency: int) -> float:
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start)


async def measure(kind: str, port: int, calls: int, rounds: int) -> dict[str, float]:
    url = {"http": f"http://127.0.0.1:{port}/mcp", "ws": f"ws://127.0.0.1:{port}/ws",
           "sse": f"http://127.0.0.1:{port}/sse"}[kind]
    transport = {"http": "http", "ws": "websocket", "sse": "sse"}[kind]
    async with contextlib.AsyncExitStack() as stack:
        mine = await stack.enter_async_context(ours(transport, url))
        clients: dict[str, Call] = {
            "ours": lambda: mine.call_tool("echo", ARGS)}
        if kind == "http":
            mine_2025 = await stack.enter_async_context(ours(transport, url, "2025-11-25"))
            clients["ours_2025"] = lambda: mine_2025.call_tool("echo", ARGS)
        theirs = await stack.enter_async_context(sdk(kind, url))
        clients["sdk"] = lambda: theirs.call_tool("echo", ARGS)
        for call in clients.values():  # warm up: connections, caches, the JIT-less rest
            await sequential_rate(call, max(calls // 10, 20))
        rates: dict[str, list[float]] = {name: [] for name in clients}
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(rounds):
            for name, call in clients.items():
                rate, cost = await sequential(call, calls)
                rates[name].append(rate)
                cpu[name].append(cost)
        figures = {f"{name}_seq": statistics.median(r) for name, r in rates.items()}
        figures.update({f"{name}_cpu_us": statistics.median(c) for name, c in cpu.items()})
        figures["ratio"] = figures["ours_seq"] / figures["sdk_seq"]
        if "ours_2025_seq" in figures:
            figures["ratio_2025"] = figures["ours_2025_seq"] / figures["sdk_seq"]
        figures["ours_c16"] = await concurrent_rate(clients["ours"], calls * 4, 16)
    return {key: round(value, 2) for key, value in figures.items()}


async def run(kinds: list[str], calls: int, rounds: int) -> dict[str, Any]:
    report: dict[str, Any] = {}
    load_before = os.getloadavg()[0]
    async with our_server() as port:
        for kind in kinds:
            report[kind] = await measure(kind, port, calls, rounds)
            print(f"{kind:5} " + "  ".join(f"{k} {v:g}" for k, v in report[kind].items()),
                  file=sys.stderr, flush=True)
    report["calls"], report["rounds"] = calls, rounds
    # The machine's load around the run: wall-clock rates, the ratios of them included, sink
    # towards 1 when the server waits for a core as long as it works.
    report["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="sequential calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median)")
    parser.add_argument("--transports", default="http,ws,sse",
                        help="comma-separated subset of http,ws,sse")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the event loop both clients run on (default: asyncio's own)")
    parser.add_argument("--json", metavar="OUT", help="write the figures to this file")
    args = parser.parse_args(argv)
    kinds = [k for k in args.transports.split(",") if k]
    if args.loop == "uvloop":
        import uvloop

        report = uvloop.run(run(kinds, args.calls, args.rounds))
    else:
        report = asyncio.run(run(kinds, args.calls, args.rounds))
    report["loop"] = args.loop
    text = json.dumps(report, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
