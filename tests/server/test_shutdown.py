"""A server that stops ends its streams cleanly and at once."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from ..conftest import StartServer


async def test_shutdown_closes_websocket_with_1001_and_ends_sse(
        start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.base_url + "/ws", protocols=("mcp",))
        sse = await http.get(server.base_url + "/sse")
        assert (await sse.content.readline()).startswith(b"event: endpoint")
        started = time.monotonic()
        closing = asyncio.create_task(server.close())
        msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
        rest = await asyncio.wait_for(sse.content.read(), 5)  # the stream ends, cleanly
        assert b"event:" not in rest
        await asyncio.wait_for(closing, 5)
        assert time.monotonic() - started < 2.0
        await ws.close()
        sse.close()
