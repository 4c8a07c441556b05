"""Sessions shared through Redis: each request of one session goes to another instance.

Three real servers on loopback ports share a real redis-server; the tests speak raw HTTP to
a different instance for each message, as a round-robin load balancer would send them.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import aiohttp
import orjson

from mcp_multi.server.app import RunningServer

from ..test_tasks import Stateless, eventually
from ..wire import MCP_ACCEPT, TIMEOUT, StreamableHTTPPeer, connect, read_event
from .conftest import Trio

VERSION = "2025-11-25"


class RoundRobin(StreamableHTTPPeer):
    """A Streamable HTTP peer whose every message goes to the next instance in turn."""

    def __init__(self, http: aiohttp.ClientSession, servers: list[RunningServer]) -> None:
        super().__init__(http, servers[0].base_url + "/mcp")
        self.urls = [server.base_url + "/mcp" for server in servers]
        self.turn = 0

    def to(self, n: int) -> RoundRobin:
        """Send the next message to instance ``n`` (and go on in turn from there)."""
        self.turn = n
        self.url = self.urls[n % len(self.urls)]
        return self

    async def send(self, message: dict[str, Any] | bytes | str) -> None:
        self.to(self.turn)
        self.turn += 1
        await super().send(message)


def call(request_id: int, name: str, arguments: dict[str, Any] | None = None,
         **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments or {}, **params}}


async def test_any_instance_serves_the_next_request_of_a_session(start_trio: Trio) -> None:
    servers = await start_trio()
    async with aiohttp.ClientSession() as http:
        peer = RoundRobin(http, servers)
        await peer.initialize(VERSION)  # initialize on 0, notifications/initialized on 1
        for n in range(6):  # then every instance in turn
            await peer.send(call(n + 1, "echo", {"message": f"hi {n}"}))
            reply = await peer.recv()
            assert reply["id"] == n + 1
            assert reply["result"]["content"][0]["text"] == f"Echo: hi {n}"
        await peer.send({"jsonrpc": "2.0", "id": 10, "method": "logging/setLevel",
                         "params": {"level": "error"}})
        assert (await peer.recv())["result"] == {}
        served = [server.state.stats.requests for server in servers]
        assert all(n >= 2 for n in served), served
        # The level set through one instance holds on the others: no info log comes back.
        for n in range(3):
            await peer.to(n)._exchange(orjson.dumps(call(20 + n, "test_tool_with_logging")),
                                       None)
            reply = await peer.recv()
            assert reply["id"] == 20 + n, reply
        # DELETE through one instance ends the session on all of them: at once on its own,
        # on the others as its announcement comes (through redis, a process of its own: on a
        # starved machine that may be after the client's next round trip; a copy that missed
        # it would ask the store again within a second).
        async with http.delete(peer.urls[2], headers=peer.headers()) as resp:
            assert resp.status == 200
        assert not servers[2].state.http_sessions
        await eventually(lambda: not any(server.state.http_sessions for server in servers))
        for url in peer.urls:
            async with http.post(url, data=orjson.dumps(call(30, "echo", {"message": "x"})),
                                 headers=peer.headers()) as resp:
                assert resp.status == 404, resp.status
        assert all(len(server.state.http_sessions) == 0 for server in servers)


async def test_a_forged_session_id_is_unknown_everywhere(start_trio: Trio) -> None:
    servers = await start_trio(2)
    headers = {"Accept": MCP_ACCEPT, "Content-Type": "application/json",
               "Mcp-Session-Id": secrets.token_hex(16), "MCP-Protocol-Version": VERSION}
    async with aiohttp.ClientSession() as http:
        for server in servers:
            async with http.post(server.base_url + "/mcp", headers=headers,
                                 data=orjson.dumps(call(1, "echo", {"message": "x"}))) as resp:
                assert resp.status == 404
                assert (await resp.json())["error"]["code"] == -32600


async def test_legacy_sse_posts_reach_the_stream_through_any_instance(start_trio: Trio) -> None:
    servers = await start_trio()
    async with aiohttp.ClientSession() as http, \
            http.get(servers[0].base_url + "/sse") as stream:
        endpoint = await read_event(stream.content)
        assert endpoint is not None and endpoint.event == "endpoint"
        path = endpoint.data
        messages = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2024-11-05", "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            *(call(n, "echo", {"message": f"m{n}"}) for n in range(2, 8)),
        ]
        for n, message in enumerate(messages):
            url = servers[n % 3].base_url + path
            async with http.post(url, data=orjson.dumps(message)) as resp:
                assert resp.status == 202, resp.status
        replies = []
        while len(replies) < 7:
            event = await read_event(stream.content)
            assert event is not None
            replies.append(orjson.loads(event.data))
        assert replies[0]["id"] == 1 and "result" in replies[0]
        by_id = {reply["id"]: reply for reply in replies[1:]}
        assert {n: r["result"]["content"][0]["text"] for n, r in by_id.items()} == {
            n: f"Echo: m{n}" for n in range(2, 8)}
        # A session whose stream's instance stopped is gone: 404 wherever the POST goes.
        await servers[0].close()
    async with aiohttp.ClientSession() as http, http.post(servers[1].base_url + path,
                         data=orjson.dumps(call(9, "echo"))) as resp:
        assert resp.status == 404


async def test_an_answer_reaches_the_instance_that_asked(start_trio: Trio) -> None:
    servers = await start_trio()
    async with aiohttp.ClientSession() as http:
        peer = RoundRobin(http, servers)
        reply = await peer.to(0).request("initialize", {
            "protocolVersion": VERSION, "capabilities": {"sampling": {}},
            "clientInfo": {"name": "t", "version": "0"}}, id=0)
        peer.version = reply["result"]["protocolVersion"]
        await peer.to(1)._exchange(orjson.dumps(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}), None)
        body = orjson.dumps(call(1, "test_sampling", {"prompt": "hello"}))
        running = asyncio.create_task(peer.to(2)._exchange(body, None))
        asked = await peer.recv()
        assert asked["method"] == "sampling/createMessage"
        assert isinstance(asked["id"], str)
        answer = {"jsonrpc": "2.0", "id": asked["id"], "result": {
            "role": "assistant", "model": "m", "content": {"type": "text", "text": "sampled!"}}}
        async with http.post(peer.urls[0], data=orjson.dumps(answer),
                             headers=peer.headers()) as resp:
            assert resp.status == 202
        result = await peer.recv()
        assert result["id"] == 1
        assert "sampled!" in result["result"]["content"][0]["text"]
        await asyncio.wait_for(running, TIMEOUT)


async def test_a_stream_resumes_on_another_instance(start_trio: Trio) -> None:
    servers = await start_trio()
    async with aiohttp.ClientSession() as http:
        peer = RoundRobin(http, servers)
        await peer.initialize(VERSION)
        body = orjson.dumps(call(5, "test_tool_with_progress", _meta={"progressToken": "p"}))
        async with http.post(peer.urls[0], data=body, headers=peer.headers()) as resp:
            assert resp.content_type == "text/event-stream"
            priming = await read_event(resp.content)
            first = await read_event(resp.content)
            assert priming is not None and first is not None and first.data
            assert orjson.loads(first.data)["params"]["progress"] == 0
        # The connection is gone; the request runs on. Resume where we stopped, elsewhere.
        seen: list[dict[str, Any]] = []
        resume = {**peer.headers(), "Accept": "text/event-stream", "Last-Event-ID": first.id}
        async with http.get(peer.urls[1], headers=resume) as resp:
            assert resp.status == 200, await resp.text()
            while (event := await read_event(resp.content)) is not None:
                if event.data:
                    seen.append(orjson.loads(event.data))
        assert [m.get("params", {}).get("progress") for m in seen[:-1]] == [50, 100]
        assert seen[-1]["id"] == 5 and "result" in seen[-1]
        # An event id that names no stream, or far past it, is refused; nothing hangs.
        for bad in (f"{'9' * 4000}", "nope-1", f"{first.id.split('-')[0]}x-1",
                    f"0-{'9' * 5000}", "a b.c-1", "abcdefabcdef.1:2-3", f"{'ab' * 40}.1-1"):
            async with http.get(peer.urls[2], headers={**resume, "Last-Event-ID": bad}) as resp:
                assert resp.status == 400, (bad[:20], resp.status)


async def test_the_standalone_stream_hears_what_another_instance_sends(
        start_trio: Trio) -> None:
    servers = await start_trio()
    async with aiohttp.ClientSession() as http:
        peer = RoundRobin(http, servers)
        await peer.initialize(VERSION)
        await peer.to(1).request("resources/subscribe", {"uri": "test://watched-resource"},
                                 id=2)
        listen = {**peer.headers(), "Accept": "text/event-stream"}
        async with http.get(peer.urls[0], headers=listen) as stream:
            assert stream.status == 200
            # One delivering instance at a time, wherever the second GET goes.
            async with http.get(peer.urls[2], headers=listen) as second:
                assert second.status == 409
            reply = await peer.to(2).request("tools/call", {
                "name": "test_touch_watched_resource", "arguments": {}}, id=3)
            assert "1 subscriber" in reply["result"]["content"][0]["text"]
            while (event := await read_event(stream.content)) is not None and not event.data:
                pass
            assert event is not None
            assert orjson.loads(event.data) == {
                "jsonrpc": "2.0", "method": "notifications/resources/updated",
                "params": {"uri": "test://watched-resource"}}


async def test_a_lost_store_is_a_clear_503_and_the_servers_recover(
        start_trio: Trio, redis_server: Any) -> None:
    servers = await start_trio(3)
    async with aiohttp.ClientSession() as http:
        peer = RoundRobin(http, servers)
        await peer.initialize(VERSION)  # instances 0 and 1 have the session; 2 has not
        redis_server.stop()
        async with http.post(peer.urls[2], data=orjson.dumps(call(1, "echo", {"message": "x"})),
                             headers=peer.headers()) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            error = (await resp.json())["error"]
            assert error["code"] == -32603 and "session store" in error["message"]
        # What needs no store goes on: a 2026-07-28 request, and a WebSocket session.
        modern = StreamableHTTPPeer(http, peer.urls[0], modern=True)
        reply = await modern.modern_request("tools/call", {"name": "echo", "arguments": {
            "message": "still here"}}, id=2)
        assert reply["result"]["content"][0]["text"] == "Echo: still here"
        ws = await connect("websocket", servers[1])
        try:
            await ws.initialize()
            reply = await ws.request("tools/call", {"name": "echo", "arguments": {
                "message": "on a socket"}}, id=3)
            assert reply["result"]["content"][0]["text"] == "Echo: on a socket"
        finally:
            await ws.close()
        redis_server.restart()
        for _ in range(50):  # the store reconnects by itself
            async with http.post(peer.urls[0], data=orjson.dumps(call(3, "echo", {
                    "message": "back"})), headers=peer.headers()) as resp:
                if resp.status != 503:
                    break
            await asyncio.sleep(0.1)
        # Redis lost its data with the restart (no persistence): the session is unknown now.
        assert resp.status == 404
        fresh = RoundRobin(http, servers)
        await fresh.initialize(VERSION)
        await fresh.send(call(4, "echo", {"message": "again"}))
        assert (await fresh.recv())["result"]["content"][0]["text"] == "Echo: again"


async def test_a_task_is_polled_and_cancelled_through_any_instance(start_trio: Trio) -> None:
    servers = await start_trio()
    async with aiohttp.ClientSession() as http:
        clients = [Stateless(http, server.base_url + "/mcp") for server in servers]
        task_id = await clients[0].start("slow_compute", {"seconds": 0.3, "label": "L"})
        assert task_id.startswith(servers[0].state.store.instance + ".")
        done = await clients[1].wait(task_id)  # every poll through another instance
        assert done["status"] == "completed"
        assert "L" in orjson.dumps(done["result"]).decode()
        long = await clients[0].start("slow_compute", {"seconds": 30, "label": "long"})
        await clients[2].result("tasks/cancel", {"taskId": long})
        assert (await clients[1].wait(long))["status"] == "cancelled"
        # Unknown everywhere alike: a forged id naming a live instance, or a gone one.
        for forged in (f"{servers[0].state.store.instance}.{'A' * 43}", f"{'0' * 12}.x"):
            status, error = await clients[1].error("tasks/get", {"taskId": forged})
            assert status == 400
            assert error["code"] == -32602, (forged, error)
