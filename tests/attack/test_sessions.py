"""One client filling the session tables (issue 8, defect 11) never locks the others out.

Loopback has many addresses: clients bound to 127.0.0.2, 127.0.0.3 … are other clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

from ..conftest import StartServer
from ..server.wire import MCP_ACCEPT

TIMEOUT = aiohttp.ClientTimeout(total=5)
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "attacker", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@asynccontextmanager
async def client(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client whose connections come from ``address``."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as http:
        yield http


async def post(http: aiohttp.ClientSession, url: str, body: Any,
               session_id: str | None = None) -> tuple[int, Any, str | None]:
    headers = {"Accept": MCP_ACCEPT, "Content-Type": "application/json"}
    if session_id is not None:
        headers["Mcp-Session-Id"] = session_id
    async with http.post(url, data=orjson.dumps(body), headers=headers) as resp:
        raw = await resp.read()
        return resp.status, orjson.loads(raw) if raw else None, resp.headers.get(
            "Mcp-Session-Id")


async def open_session(http: aiohttp.ClientSession, url: str) -> str:
    status, body, session_id = await post(http, url, INIT)
    assert status == 200 and session_id, (status, body)
    assert (await post(http, url, INITIALIZED, session_id))[0] == 202
    return session_id


async def test_full_http_table_admits_a_newcomer_and_the_lru_victim_comes_back(
        start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(max_http_sessions=20, max_sessions_per_client=20)
    url = server.base_url + "/mcp"
    async with client("127.0.0.1") as hog, client("127.0.0.2") as newcomer:
        held = [await open_session(hog, url) for _ in range(20)]
        for session_id in held[1:]:  # every session but the first was used since
            assert (await post(hog, url, PING, session_id))[0] == 200
        assert len(server.state.http_sessions) == 20
        fresh = await open_session(newcomer, url)  # full table: the LRU idle one gives way
        status, body, _ = await post(hog, url, PING, held[0])
        assert status == 404 and body["error"]["code"] == -32600
        assert [(await post(hog, url, PING, s))[0] for s in held[1:]] == [200] * 19
        # The victim initializes again; the least recently used is the newcomer's now.
        await open_session(hog, url)
        assert (await post(newcomer, url, PING, fresh))[0] == 404
        assert len(server.state.http_sessions) == 20


async def test_one_address_gets_only_its_share(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(max_http_sessions=20, max_sessions_per_client=5)
    url = server.base_url + "/mcp"
    async with client("127.0.0.1") as hog, client("127.0.0.2") as other:
        for _ in range(5):
            await open_session(hog, url)
        status, body, session_id = await post(hog, url, INIT)
        assert status == 503 and session_id is None
        assert body["error"]["code"] == -32600 and "share" in body["error"]["message"]
        for _ in range(5):
            await open_session(other, url)
    assert len(server.state.http_sessions) == 10


async def test_busy_sessions_are_not_evicted(start_mcp_server: StartServer) -> None:
    """A session whose stream is being delivered keeps its seat; the newcomer is refused."""
    server = await start_mcp_server(max_http_sessions=2, max_sessions_per_client=2)
    url = server.base_url + "/mcp"
    async with client("127.0.0.1") as owner, client("127.0.0.2") as newcomer:
        streams = []
        for _ in range(2):
            session_id = await open_session(owner, url)
            stream = await owner.get(url, headers={
                "Accept": "text/event-stream", "Mcp-Session-Id": session_id})
            assert stream.status == 200
            streams.append(stream)
        status, body, _ = await post(newcomer, url, INIT)
        assert status == 503 and "busy" in body["error"]["message"]
        streams[0].close()
        # Once the client drops its stream the session is idle again and gives way (the
        # server sees the drop a moment later: each retry is one round trip).
        async with asyncio.timeout(5):
            while (await post(newcomer, url, INIT))[0] != 200:
                continue
        for stream in streams:
            stream.close()


async def test_sse_streams_that_never_read_do_not_lock_out(
        start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(max_sse_sessions=10, max_sessions_per_client=10)
    url = server.base_url + "/sse"
    async with client("127.0.0.1") as hog, client("127.0.0.3") as newcomer:
        streams = [await hog.get(url) for _ in range(10)]  # opened, never read
        assert all(s.status == 200 for s in streams)
        assert len(server.state.sse_sessions) == 10
        async with newcomer.get(url) as fresh:
            assert fresh.status == 200
            assert (await fresh.content.readline()).startswith(b"event: endpoint")
            # The least recently used stream was ended: it reads to its end.
            first = await asyncio.wait_for(streams[0].content.read(), 5)
            assert first.startswith(b"event: endpoint")
            assert len(server.state.sse_sessions) == 10
        for stream in streams:
            stream.close()
