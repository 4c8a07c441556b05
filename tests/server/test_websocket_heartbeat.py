"""The WebSocket heartbeat (``websocket_heartbeat``): a silent peer is pinged, and dropped
when it stays silent; a peer that answers its pings keeps its session."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ..conftest import StartServer
from .wire import WebSocketPeer

HEARTBEAT = 0.4  # a look every 0.2 s


async def test_a_silent_peer_is_pinged_then_dropped(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(websocket_heartbeat=HEARTBEAT)
    async with aiohttp.ClientSession() as http:
        # autoping off: the pings reach us, and nothing answers them.
        ws = await http.ws_connect(server.base_url + "/ws", autoping=False)
        assert len(server.state.websocket_sessions) == 1
        first = await asyncio.wait_for(ws.receive(), 5)
        assert first.type == aiohttp.WSMsgType.PING
        # Still silent a look later: the connection is aborted, with no close frame.
        end = await asyncio.wait_for(ws.receive(), 5)
        assert end.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        async with asyncio.timeout(5):  # its session is freed as its handler ends
            while len(server.state.websocket_sessions):  # noqa: ASYNC110 - no event for this
                await asyncio.sleep(0.05)
        await ws.close()


async def test_a_peer_that_answers_its_pings_stays(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(websocket_heartbeat=HEARTBEAT)
    peer = await WebSocketPeer.connect(server.base_url)
    try:
        await peer.initialize()
        # Quiet for many looks; aiohttp's client answers each ping (it reads all the time).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(peer.ws.receive(), 6 * HEARTBEAT)
        assert not peer.ws.closed and len(server.state.websocket_sessions) == 1
        reply = await peer.request("tools/call", {"name": "echo",
                                                  "arguments": {"message": "alive"}}, id=2)
        assert reply["result"]["content"][0]["text"] == "Echo: alive"
    finally:
        await peer.close()


async def test_a_busy_peer_is_never_pinged(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(websocket_heartbeat=HEARTBEAT)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.base_url + "/ws", autoping=False)
        await ws.send_str('{"jsonrpc":"2.0","id":0,"method":"ping"}')
        loop = asyncio.get_running_loop()
        until = loop.time() + 5 * HEARTBEAT
        while loop.time() < until:  # a frame well within every look
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg.type  # no PING among the answers
            await asyncio.sleep(HEARTBEAT / 8)
            await ws.send_str('{"jsonrpc":"2.0","id":0,"method":"ping"}')
        await ws.close()


async def test_no_heartbeat_when_it_is_off(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(websocket_heartbeat=0)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.base_url + "/ws", autoping=False)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.receive(), 1.0)
        assert not ws.closed and len(server.state.websocket_sessions) == 1
        await ws.close()
