"""Notifications no request asked for: ``resources/updated`` to the sessions that subscribed
(handshake era) or the listen streams that named the URI (2026-07-28), and
``prompts/list_changed`` to every session and to the listen streams that asked for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .wire import TIMEOUT, TRANSPORTS, RawPeer, StreamableHTTPPeer, connect, enveloped, read_event

WATCHED = "test://watched-resource"
UPDATED = {"jsonrpc": "2.0", "method": "notifications/resources/updated",
           "params": {"uri": WATCHED}}
PROMPTS_CHANGED = {"jsonrpc": "2.0", "method": "notifications/prompts/list_changed"}
SUB_ID = "io.modelcontextprotocol/subscriptionId"


@pytest.fixture
async def server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(name="subscription-server", profile="conformance")


async def call(peer: RawPeer, tool: str, id: int | str, modern: bool = False
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Call ``tool``; its reply, and the messages that came before it."""
    params = {"name": tool, "arguments": {}}
    await peer.send({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                     "params": enveloped(params) if modern else params})
    before = []
    while True:
        msg = await peer.recv()
        if msg.get("id") == id and "method" not in msg:
            return msg, before
        before.append(msg)


async def initialized(transport: str, server: RunningServer) -> RawPeer:
    peer = await connect(transport, server)
    await peer.initialize()
    return peer


@asynccontextmanager
async def get_stream(peer: StreamableHTTPPeer) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """The session's standalone stream (GET /mcp): where messages of no request arrive."""
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with peer.http.get(peer.url, headers={
            "Accept": "text/event-stream", "Mcp-Session-Id": peer.session_id or "",
            "MCP-Protocol-Version": peer.version or ""}) as resp:
        assert resp.status == 200

        async def pump() -> None:
            while (event := await read_event(resp.content)) is not None:
                if event.data:
                    await messages.put(orjson.loads(event.data))

        task = asyncio.create_task(pump())
        try:
            yield messages
        finally:
            task.cancel()


@pytest.mark.parametrize("subscriber, other", [("websocket", "sse"), ("sse", "websocket")])
async def test_updates_reach_subscribers_only(server: RunningServer, subscriber: str,
                                              other: str) -> None:
    a, b = await initialized(subscriber, server), await initialized(other, server)
    try:
        assert (await a.request("resources/subscribe", {"uri": WATCHED}))["result"] == {}
        reply, before = await call(b, "test_touch_watched_resource", 2)
        assert "1 subscriber(s) told" in reply["result"]["content"][0]["text"]
        assert before == []  # b did not subscribe
        assert await a.recv() == UPDATED
        assert (await a.request("resources/unsubscribe", {"uri": WATCHED}, id=3))["result"] == {}
        reply, before = await call(b, "test_touch_watched_resource", 4)
        assert "0 subscriber(s) told" in reply["result"]["content"][0]["text"]
        assert (await a.request("ping", id=5)) == {"jsonrpc": "2.0", "id": 5, "result": {}}
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("transport", ["websocket", "sse", "stdio"])
async def test_a_session_hears_its_own_subscription(server: RunningServer,
                                                    transport: str) -> None:
    peer = await initialized(transport, server)
    try:
        assert (await peer.request("resources/subscribe", {"uri": WATCHED}))["result"] == {}
        _reply, before = await call(peer, "test_touch_watched_resource", 2)
        assert before == [UPDATED]
        read = (await peer.request("resources/read", {"uri": WATCHED}, id=3))["result"]
        assert read["contents"][0]["text"] == "Watched resource, version 1"
    finally:
        await peer.close()


async def test_streamable_http_updates_arrive_on_the_session_stream(
        server: RunningServer) -> None:
    peer = await initialized("http", server)
    assert isinstance(peer, StreamableHTTPPeer)
    try:
        async with get_stream(peer) as stream:
            assert (await peer.request("resources/subscribe", {"uri": WATCHED}))["result"] == {}
            reply, before = await call(peer, "test_touch_watched_resource", 2)
            assert before == [] and "1 subscriber(s)" in reply["result"]["content"][0]["text"]
            assert await asyncio.wait_for(stream.get(), TIMEOUT) == UPDATED
    finally:
        await peer.close()


@pytest.mark.parametrize("params, code", [
    ({"uri": "test://nothing-here"}, -32002), ({}, -32602), ({"uri": 7}, -32602)])
async def test_subscribing_needs_a_resource(server: RunningServer, params: dict[str, Any],
                                            code: int) -> None:
    peer = await initialized("websocket", server)
    try:
        assert (await peer.request("resources/subscribe", params))["error"]["code"] == code
        # Unsubscribing from what one never watched is no error.
        assert (await peer.request("resources/unsubscribe", {"uri": "x://y"}, id=2))["result"] \
            == {}
    finally:
        await peer.close()


async def test_prompt_list_changes_reach_every_session(server: RunningServer) -> None:
    ws, sse, http = [await initialized(t, server) for t in ("websocket", "sse", "http")]
    assert isinstance(http, StreamableHTTPPeer)
    try:
        async with get_stream(http) as stream:
            reply, before = await call(ws, "test_trigger_prompt_change", 2)
            assert reply["result"]["content"][0]["text"] == "Added prompt test_dynamic_prompt"
            assert before == [PROMPTS_CHANGED]
            assert await sse.recv() == PROMPTS_CHANGED
            assert await asyncio.wait_for(stream.get(), TIMEOUT) == PROMPTS_CHANGED
            names = [p["name"] for p in (await sse.request("prompts/list", id=3))["result"]
                     ["prompts"]]
            assert names[-1] == "test_dynamic_prompt"
            reply, before = await call(sse, "test_trigger_prompt_change", 4)
            assert reply["result"]["content"][0]["text"] == "Removed prompt test_dynamic_prompt"
            assert before == [PROMPTS_CHANGED] and await ws.recv() == PROMPTS_CHANGED
            assert await asyncio.wait_for(stream.get(), TIMEOUT) == PROMPTS_CHANGED
    finally:
        for peer in (ws, sse, http):
            await peer.close()


async def test_closed_sessions_are_not_told(server: RunningServer) -> None:
    gone = await initialized("websocket", server)
    assert (await gone.request("resources/subscribe", {"uri": WATCHED}))["result"] == {}
    await gone.close()
    peer = await initialized("sse", server)
    try:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:  # the server notices the closed connection at its own pace
            reply, _ = await call(peer, "test_touch_watched_resource", 2)
            if "0 subscriber(s)" in reply["result"]["content"][0]["text"]:
                break
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_modern_listen_stream(server: RunningServer, transport: str) -> None:
    peer = await connect(transport, server, modern=True)
    try:
        await peer.send({"jsonrpc": "2.0", "id": "L", "method": "subscriptions/listen",
                         "params": enveloped({"notifications": {
                             "promptsListChanged": True, "toolsListChanged": True,
                             "resourcesListChanged": True,
                             "resourceSubscriptions": [WATCHED]}})})
        ack = await peer.recv()
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        # The resource list never changes without a policy, so only what can be sent is
        # honoured (an admin may change the tools).
        assert ack["params"] == {"_meta": {SUB_ID: "L"}, "notifications": {
            "toolsListChanged": True, "promptsListChanged": True,
            "resourceSubscriptions": [WATCHED]}}
        for tool, method, extra in [
                ("test_touch_watched_resource", "notifications/resources/updated",
                 {"uri": WATCHED}),
                ("test_trigger_prompt_change", "notifications/prompts/list_changed", {})]:
            await peer.send({"jsonrpc": "2.0", "id": tool, "method": "tools/call",
                             "params": enveloped({"name": tool, "arguments": {}})})
            seen: list[dict[str, Any]] = []
            while not (any(m.get("id") == tool for m in seen)
                       and any(m.get("method") == method for m in seen)):
                seen.append(await peer.recv())
            note = next(m for m in seen if m.get("method") == method)
            assert note["params"] == {**extra, "_meta": {SUB_ID: "L"}}
        if transport != "http":  # a stream transport ends a subscription by cancelling it
            await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                             "params": {"requestId": "L"}})
            assert (await peer.reuse_id("L", "server/discover", enveloped()))["result"]
    finally:
        await peer.close()


async def test_listen_honours_its_filter(server: RunningServer) -> None:
    listener = await connect("http", server, modern=True)
    caller = await connect("http", server, modern=True)
    try:
        await listener.send({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
                             "params": enveloped({"notifications": {
                                 "promptsListChanged": True}})})
        ack = await listener.recv()
        assert ack["params"]["notifications"] == {"promptsListChanged": True}
        await call(caller, "test_touch_watched_resource", 1, modern=True)
        await call(caller, "test_trigger_prompt_change", 2, modern=True)
        # What the filter left out never came before what it let in.
        assert await listener.recv() == {
            "jsonrpc": "2.0", "method": "notifications/prompts/list_changed",
            "params": {"_meta": {SUB_ID: 9}}}
        notifier = server.state.dispatcher.context.notifier
        assert notifier.listeners == 1
    finally:
        await listener.close()
        await caller.close()
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while notifier.listeners:  # the closed stream's listener is gone once the server sees it
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("notifications", [
    [], {"resourceSubscriptions": "x"}, {"resourceSubscriptions": [1]},
    {"resourceSubscriptions": ["u"] * 1001}])
async def test_a_bad_filter_is_invalid_params(server: RunningServer,
                                              notifications: Any) -> None:
    peer = await connect("websocket", server)
    try:
        reply = await peer.modern_request("subscriptions/listen",
                                          {"notifications": notifications})
        assert reply["error"]["code"] == -32602
    finally:
        await peer.close()


async def test_listen_hears_nothing_of_a_resource_the_policy_hides(
        start_mcp_server: StartServer, tmp_path: Path) -> None:
    """A hidden URI is acknowledged as asked, like one the server does not have, and its
    updates never reach the caller; what the caller may see still does."""
    policy = tmp_path / "policy.toml"
    policy.write_text('default_role = "guest"\n[roles.guest]\ntools = ["test_*"]\n'
                      'prompts = ["*"]\nresources = ["server://info"]\n')
    server = await start_mcp_server(profile="conformance", policy=policy)
    listener = await connect("http", server, modern=True)
    caller = await connect("http", server, modern=True)
    try:
        await listener.send({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
                             "params": enveloped({"notifications": {
                                 "promptsListChanged": True,
                                 "resourceSubscriptions": [WATCHED]}})})
        ack = await listener.recv()
        assert ack["params"]["notifications"] == {"promptsListChanged": True,
                                                  "resourceSubscriptions": [WATCHED]}
        await call(caller, "test_touch_watched_resource", 1, modern=True)
        await call(caller, "test_trigger_prompt_change", 2, modern=True)
        assert await listener.recv() == {
            "jsonrpc": "2.0", "method": "notifications/prompts/list_changed",
            "params": {"_meta": {SUB_ID: 9}}}
    finally:
        await listener.close()
        await caller.close()
