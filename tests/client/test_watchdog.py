"""The connection's request watchdog: one timer for every request's deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from mcp_multi.client.connection import MCPConnection
from mcp_multi.protocol.errors import RequestTimeout
from mcp_multi.transport import create_transport

from .scripted import NO_REPLY, ScriptedSession, StartScripted

TIMEOUT = 10.0


async def _silent(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
    return NO_REPLY


async def test_a_short_deadline_behind_a_long_one_fires_on_time(
        start_scripted: StartScripted) -> None:
    server = await start_scripted({"tools/call": _silent})
    async with MCPConnection("srv", create_transport("websocket", server.url("websocket")),
                             timeout=TIMEOUT) as conn:
        long = asyncio.create_task(conn.call_tool("echo", {"message": "long"}, timeout=30))
        await server.wait_method("tools/call")
        start = time.monotonic()
        with pytest.raises(RequestTimeout, match=r"no response within 0\.2s"):
            await conn.call_tool("echo", {"message": "short"}, timeout=0.2)
        assert time.monotonic() - start < 5
        assert not long.done()  # the long one still waits for its own deadline
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        await conn.ping()


async def test_deadlines_that_came_in_any_order_each_fire(
        start_scripted: StartScripted) -> None:
    server = await start_scripted({"tools/call": _silent})
    async with MCPConnection("srv", create_transport("websocket", server.url("websocket")),
                             timeout=TIMEOUT) as conn:
        limits = [0.6, 0.2, 0.4]
        calls = [asyncio.create_task(conn.call_tool("echo", {"message": str(limit)},
                                                    timeout=limit)) for limit in limits]
        async with asyncio.timeout(TIMEOUT):
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, RequestTimeout) for o in outcomes), outcomes
        assert [str(o).rsplit(" ", 1)[-1] for o in outcomes] == ["0.6s", "0.2s", "0.4s"]


async def test_a_caller_cancelling_is_not_a_timeout(start_scripted: StartScripted) -> None:
    server = await start_scripted({"tools/call": _silent})
    async with MCPConnection("srv", create_transport("websocket", server.url("websocket")),
                             timeout=TIMEOUT) as conn:
        with pytest.raises(TimeoutError):  # the caller's own timeout, not RequestTimeout
            async with asyncio.timeout(0.2):
                await conn.call_tool("echo", {"message": "x"}, timeout=5)
        cancelled = await server.wait_method("notifications/cancelled")
        assert cancelled["params"]["reason"] == "the client gave up"
        await conn.ping()
