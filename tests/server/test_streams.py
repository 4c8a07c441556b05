"""Streamable HTTP response streams held in bytes: what a session sheds first, and that a
stream whose events were shed still ends and refuses a resume from before them."""

from __future__ import annotations

import asyncio

from mcp_multi.server.budget import ByteBudget
from mcp_multi.server.streams import HTTPSession


class Collected:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.chunks.append(data)


def reply(i: int, size: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": i, "result": {"text": "x" * size}}


async def test_a_session_sheds_delivered_events_before_undelivered_ones() -> None:
    session = HTTPSession(limit=256, max_bytes=5000)
    delivered, waiting = session.new_stream(), session.new_stream()
    delivered.finish(reply(1, 2000))
    await asyncio.wait_for(delivered.pump(Collected(), 0, 1.0), 1)
    waiting.finish(reply(2, 2000))
    session.new_stream().finish(reply(3, 2000))  # 6 KB held: one event must go
    assert delivered.gone(0) and not waiting.gone(0)
    assert session.held <= 5000


async def test_a_stream_whose_final_event_was_shed_still_ends() -> None:
    budget = ByteBudget(3000)
    session = HTTPSession(limit=256, budget=budget)
    shed = session.new_stream()
    shed.finish(reply(1, 2000))
    session.new_stream().finish(reply(2, 2000))  # over the server's budget: the oldest goes
    assert shed.gone(0) and budget.used == session.held <= 3000
    out = Collected()
    await asyncio.wait_for(shed.pump(out, 0, 10.0), 1)  # ends, though it has nothing to say
    assert out.chunks == []
    session.close()
    assert budget.used == 0


async def test_a_finished_stream_holds_its_reply_once() -> None:
    """A retained stream keeps its response as counted JSON, not a second time as a dict."""
    session = HTTPSession(limit=256)
    stream = session.new_stream()
    stream.finish(reply(1, 1000))
    assert stream.final == {"jsonrpc": "2.0", "id": 1}
    assert session.held > 1000
    failed = session.new_stream()
    error = {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "bad"}}
    failed.finish(error)
    assert failed.final == error  # what the status of a modern answer is read from
