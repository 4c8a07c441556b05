"""A WebSocket peer that sends and never reads (issue 8, defect 9), and WebSocket sessions
counted against a limit."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import orjson
import pytest

from ..conftest import StartServer
from ..server.wire import WebSocketPeer

MIB = 1024 * 1024
INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "attacker", "version": "0"}}}


def echo(i: int, size: int) -> str:
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": "x" * size}}}).decode()


async def flood(ws: aiohttp.ClientWebSocketResponse, count: int, size: int) -> int:
    """Send ``count`` echo requests, reading nothing; how many went out before it failed."""
    for i in range(1, count + 1):
        try:
            await ws.send_str(echo(i, size))
        except (aiohttp.ClientError, ConnectionError):
            return i - 1
    return count


def small_buffers(addr_info: Any) -> socket.socket:
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family, kind, proto)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 256 * 1024)
    return sock


async def test_a_peer_that_never_reads_is_throttled_then_closed(
        start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(
        max_message_size=2 * MIB, websocket_send_buffer=2 * MIB,
        websocket_total_buffer=8 * MIB, send_timeout=1.0)
    state = server.state
    count = 64  # 64 MiB of replies, were they all answered
    # Small client socket buffers: the kernel must not absorb the replies in its stead.
    connector = aiohttp.TCPConnector(socket_factory=small_buffers)
    async with aiohttp.ClientSession(connector=connector) as http:
        ws = await http.ws_connect(server.base_url + "/ws")
        await ws.send_str(orjson.dumps(INIT).decode())
        assert (await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.TEXT
        flooding = asyncio.create_task(flood(ws, count, MIB))
        # Another client is served meanwhile.
        other = await WebSocketPeer.connect(server.base_url)
        await other.initialize()
        reply = await other.request("tools/call", {"name": "echo",
                                                   "arguments": {"message": "hi"}}, id=2)
        assert reply["result"]["content"][0]["text"] == "Echo: hi"
        # The server stops reading the flooder, then closes it past the deadline: its
        # sending fails well before all 64 MiB went out.
        sent = await asyncio.wait_for(flooding, 8)
        assert sent < count
        assert state.stats.requests < count // 2  # only what was read before the pushback
        # Its waiting replies were bounded: the limit plus the frames already in progress.
        assert state.websocket_backlog_peak <= 2 * MIB + 3 * (MIB + 1024)
        assert len(state.websocket_sessions) == 1 and state.websocket_backlog == 0
        assert (await other.request("ping", id=3))["result"] == {}
        await other.close()
        await ws.close()


async def test_websocket_sessions_count_against_a_limit(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(max_websocket_sessions=2, max_sessions_per_client=2)
    url = server.base_url + "/ws"
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession() as http, \
            aiohttp.ClientSession(connector=connector) as newcomer:
        first = await http.ws_connect(url)
        second = await http.ws_connect(url)
        # Past its share, the same address is refused before the upgrade.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url)
        assert refused.value.status == 503
        # Another address gets in: the least recently used idle connection gives way (1013).
        third = await newcomer.ws_connect(url)
        msg = await asyncio.wait_for(first.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1013
        await third.send_str(orjson.dumps(INIT).decode())
        reply: dict[str, Any] = orjson.loads((await asyncio.wait_for(third.receive(), 5)).data)
        assert reply["result"]["serverInfo"]["name"]
        assert len(server.state.websocket_sessions) == 2
        for ws in (first, second, third):
            await ws.close()


async def test_pipelined_small_replies_come_in_order_each_its_own_frame(
        start_mcp_server: StartServer) -> None:
    # Replies of one read leave together (framed by the server itself): the client's frame
    # parser must still see each as one whole TEXT message, in the order asked, across
    # both short header forms (payloads under and over 125 bytes).
    server = await start_mcp_server()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.base_url + "/ws")
        await ws.send_str(orjson.dumps(INIT).decode())
        assert (await asyncio.wait_for(ws.receive(), 5)).type == aiohttp.WSMsgType.TEXT
        await ws.send_str('{"jsonrpc":"2.0","method":"notifications/initialized"}')
        sizes = [i * 7 for i in range(60)]  # 0 to 413 characters
        for i, size in enumerate(sizes, 1):
            await ws.send_str(echo(i, size))
        for i, size in enumerate(sizes, 1):
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type == aiohttp.WSMsgType.TEXT
            reply = orjson.loads(msg.data)
            assert reply["id"] == i
            assert reply["result"]["content"][0]["text"].endswith("x" * size)
        await ws.close()
