"""Peers that make the server hold memory (issue 8, defect 9 carried to every transport): SSE
streams and Streamable HTTP clients that never read their big replies, and request bodies
trickled in a byte at a time.

Each test gives the server small bounds through its settings, proves that what it holds stays
within them, and that another client is served meanwhile. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from ..conftest import StartServer
from ..server.wire import SSEPeer, read_event

KIB = 1024
MIB = 1024 * KIB
TIMEOUT = 5.0
INIT_PARAMS = {"capabilities": {}, "clientInfo": {"name": "attacker", "version": "0"}}


def small_buffers(addr_info: Any) -> socket.socket:
    """A client socket whose kernel buffers cannot absorb the replies in the server's stead."""
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family, kind, proto)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 128 * KIB)
    return sock


def echo(i: int, size: int, **meta: Any) -> bytes:
    params: dict[str, Any] = {"name": "echo", "arguments": {"message": "x" * size}}
    if meta:
        params["_meta"] = meta
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params})


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for ``condition`` to hold, looking every few milliseconds, ``timeout`` at most."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the server's counters have no event
            await asyncio.sleep(0.01)


async def served_meanwhile(request: Callable[[], Awaitable[str]]) -> None:
    assert await asyncio.wait_for(request(), TIMEOUT) == "Echo: hi"


# ----------------------------------------------------------------- legacy SSE


async def test_sse_streams_not_read_are_bounded_server_wide(
        start_mcp_server: StartServer) -> None:
    """Six streams, each under its own bound, together over the server's: the ones holding
    the most are ended, what waits stays within the bound, and a reading client is served."""
    server = await start_mcp_server(max_message_size=512 * KIB, session_buffer_bytes=64 * MIB,
                                    sse_total_buffer=4 * MIB)
    state, url = server.state, server.base_url
    connector = aiohttp.TCPConnector(socket_factory=small_buffers, limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        streams, endpoints = [], []
        for _ in range(6):
            stream = await http.get(url + "/sse")
            endpoint = await asyncio.wait_for(read_event(stream.content), TIMEOUT)
            assert endpoint is not None and endpoint.event == "endpoint"
            streams.append(stream)
            endpoints.append(url + endpoint.data)

        async def flood(endpoint: str) -> None:
            """Initialize, then 32 echoes of 256 KiB (8 MiB), reading none of the replies."""
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": "2024-11-05", **INIT_PARAMS}}
            for i, body in enumerate([orjson.dumps(init),
                                      *(echo(n, 256 * KIB) for n in range(1, 33))]):
                async with http.post(endpoint, data=body,
                                     headers={"Content-Type": "application/json"}) as resp:
                    if resp.status == 404:  # its stream was ended
                        return
                    assert resp.status == 202, (i, resp.status)

        reader = await SSEPeer.connect(url)
        await reader.initialize("2024-11-05")
        await asyncio.wait_for(asyncio.gather(*(flood(e) for e in endpoints)), 4 * TIMEOUT)

        async def call() -> str:
            reply = await reader.request("tools/call", {"name": "echo",
                                                        "arguments": {"message": "hi"}}, id=9)
            return str(reply["result"]["content"][0]["text"])

        # Streams were ended though none passed its own 64 MiB: the server's bound did it.
        await until(lambda: len(state.sse_sessions) < 7)
        await served_meanwhile(call)
        # What waited stayed within the bound, give or take the one event being charged.
        assert state.sse_buffer.peak <= 4 * MIB + 257 * KIB
        for stream in streams:
            stream.close()
        await until(lambda: len(state.sse_sessions) == 1)
        await reader.close()
        await until(lambda: state.sse_buffer.used == 0)
