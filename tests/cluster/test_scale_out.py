"""Issue 11's tested recipe: three instances sharing their sessions through a real Redis, behind
real nginx doing plain round robin, and clients of every kind that must not notice.

Each test proves that its requests landed on more than one instance (each instance's
``/metrics``, or nginx's access log for the legacy ``POST /message``, which the instance that
receives it hands to the one holding the stream), then breaks something: the stream a client
was reading, an instance, Redis itself, or the input.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import httpx2
import mcp_types as types
import orjson
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.message import ClientMessageMetadata

from mcp_multi.client.multi import MultiServerMCPClient

from ..interop.test_sdk_asking import Answers, exercise
from .harness import Cluster, landed_on

if TYPE_CHECKING:
    from ..redis_server import RedisProcess

HANDSHAKE = "2025-11-25"
CALLS = 30
JSON_HEADERS = {"Content-Type": "application/json",
                "Accept": "application/json, text/event-stream"}


def _text(result: types.CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, types.TextContent)
    return content.text


def _spread(landed: dict[str, int] | Any, at_least: int = 2) -> None:
    assert len([n for n in landed.values() if n > 0]) >= at_least, landed


# ---- raw Streamable HTTP, for what no client library does on purpose

async def _open_session(http: aiohttp.ClientSession, url: str) -> dict[str, str]:
    """``initialize`` + ``notifications/initialized`` at 2025-11-25; the session's headers."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                       "clientInfo": {"name": "cluster-test", "version": "1"}}}
    async with http.post(url, data=orjson.dumps(init), headers=JSON_HEADERS) as resp:
        assert resp.status == 200, await resp.text()
        headers = {"Mcp-Session-Id": resp.headers["Mcp-Session-Id"],
                   "MCP-Protocol-Version": HANDSHAKE}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    async with http.post(url, data=orjson.dumps(initialized),
                         headers={**JSON_HEADERS, **headers}) as resp:
        assert resp.status == 202, await resp.text()
    return headers


async def _echo(http: aiohttp.ClientSession, url: str, headers: dict[str, str],
                request_id: int) -> tuple[int, dict[str, Any]]:
    """One ``tools/call`` of echo in a session: the HTTP status and the JSON-RPC answer."""
    call = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": f"n{request_id}"}}}
    async with asyncio.timeout(10), http.post(url, data=orjson.dumps(call),
                                              headers={**JSON_HEADERS, **headers}) as resp:
        return resp.status, orjson.loads(await resp.read())


# ---- the official SDK's clients


async def test_sdk_sse_client_through_round_robin(cluster: Cluster) -> None:
    """The legacy stream stays on one instance; its POSTs land on all of them (each
    instance counts the POSTs it accepted, and nginx's log agrees)."""
    before = await cluster.metric("mcp_sse_posts_total")
    async with sse_client(f"{cluster.url}/sse") as (read, write), \
            ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.server_info.name.startswith("inst-")
        for n in range(CALLS):
            assert _text(await session.call_tool("echo", {"message": f"sse {n}"})) \
                == f"Echo: sse {n}"
    after = await cluster.metric("mcp_sse_posts_total")
    posted = {name: after[name] - before.get(name, 0) for name in after}
    assert sum(posted.values()) >= CALLS + 2, posted  # initialize, initialized, the calls
    _spread(posted, 3)
    _spread(cluster.served(r'"POST /message\?sessionId='), 3)


async def test_sdk_streamable_http_client_through_round_robin(cluster: Cluster) -> None:
    before = await cluster.requests()
    async with streamable_http_client(f"{cluster.url}/mcp") as (read, write), \
            ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.protocol_version == HANDSHAKE
        for n in range(CALLS):
            assert _text(await session.call_tool("echo", {"message": f"http {n}"})) \
                == f"Echo: http {n}"
    landed = landed_on(before, await cluster.requests())
    assert sum(landed.values()) >= CALLS + 1
    _spread(landed, 3)
    _spread(cluster.served(r'"POST /mcp '), 3)


@pytest.mark.parametrize("transport", ["sse", "http"])
async def test_sdk_answers_the_server_through_round_robin(cluster: Cluster,
                                                          transport: str) -> None:
    """Sampling, elicitation and roots asked by whichever instance serves the call; the SDK's
    answers land anywhere and reach the instance that asked."""
    answers = Answers()
    before = await cluster.requests()
    opened = (sse_client(f"{cluster.url}/sse") if transport == "sse"
              else streamable_http_client(f"{cluster.url}/mcp"))
    async with opened as (read, write), \
            ClientSession(read, write, **answers.callbacks()) as session:
        await session.initialize()
        for _ in range(2):
            answers.asked.clear()
            await exercise(session, answers)
    if transport == "http":
        _spread(landed_on(before, await cluster.requests()), 3)
    else:
        _spread(cluster.served(r'"POST /message\?sessionId='), 3)


# The conformance profile's tools that report progress over time: the arguments, the progress
# values the call reports, and the text of its result.
PROGRESSING = {
    "fast": ("test_tool_with_progress", {}, [0, 50, 100],
             "Tool with progress executed successfully"),
    "live": ("slow_compute", {"seconds": 2, "label": "resumed"}, [0],
             "Computed resumed in 2s"),
}


@pytest.mark.parametrize("case", sorted(PROGRESSING))
async def test_sdk_resumes_a_dropped_stream_on_another_instance(cluster: Cluster,
                                                                case: str) -> None:
    """The SDK's Streamable HTTP client loses a call's stream after its first progress event,
    and a second client resumes it with the last resumption token through nginx, on another
    instance: every later event arrives, in order, once ("fast": the call ended meanwhile and
    its events are replayed from the store; "live": the call still runs on the first
    instance and its answer follows through the store)."""
    tool, arguments, progress, text = PROGRESSING[case]
    session_ids: list[str] = []
    tokens: list[str] = []  # one per event with an id: the priming event, then each message
    got_first = anyio.Event()

    async def remember_session(response: httpx2.Response) -> None:
        if sid := response.headers.get("mcp-session-id"):
            session_ids.append(sid)

    async def on_token(token: str) -> None:
        tokens.append(token)
        if len(tokens) >= 2:
            got_first.set()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        pass  # asking for progress makes the server send it; the tokens count the events

    client = create_mcp_http_client()
    client.event_hooks = {"response": [remember_session]}
    request = types.CallToolRequest(params=types.CallToolRequestParams(
        name=tool, arguments=arguments))
    async with client, streamable_http_client(f"{cluster.url}/mcp", http_client=client,
                                              terminate_on_close=False) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        before = await cluster.metric("mcp_tool_calls_total")
        async with anyio.create_task_group() as tg:
            async def call() -> None:
                await session.send_request(
                    request, types.CallToolResult, progress_callback=on_progress,
                    metadata=ClientMessageMetadata(on_resumption_token_update=on_token))

            tg.start_soon(call)
            with anyio.fail_after(10):
                await got_first.wait()
            tg.cancel_scope.cancel()  # the stream breaks after its first event
    delivered = len(tokens) - 1  # the messages the first client got (not the priming event)
    assert 1 <= delivered <= len(progress), tokens
    ran_on = landed_on(before, await cluster.metric("mcp_tool_calls_total"))
    assert len(ran_on) == 1, ran_on
    await cluster.steer_past(next(iter(ran_on)))

    resumed_progress: list[float] = []

    async def on_notification(message: Any) -> None:
        if isinstance(message, types.ProgressNotification):
            resumed_progress.append(message.params.progress)

    headers = {"Mcp-Session-Id": session_ids[0], "MCP-Protocol-Version": HANDSHAKE}
    async with create_mcp_http_client(headers=headers) as client2, \
            streamable_http_client(f"{cluster.url}/mcp", http_client=client2) as (read, write), \
            ClientSession(read, write, message_handler=on_notification) as session2:
        with anyio.fail_after(15):
            result = await session2.send_request(
                request, types.CallToolResult,
                metadata=ClientMessageMetadata(resumption_token=tokens[-1]))
    assert _text(result) == text
    assert resumed_progress == progress[delivered:]
    # nginx logs the resumed GET once that stream has ended on both sides.
    resumed_on = await cluster.wait_served(r'"GET /mcp .* last_event_id=[^-]', 1)
    assert not set(resumed_on) & set(ran_on), (resumed_on, ran_on)


# ---- our own client, every transport


@pytest.mark.parametrize("era", [None, HANDSHAKE])
async def test_our_client_over_every_transport(cluster: Cluster, era: str | None) -> None:
    """WebSocket (one connection, one instance), legacy SSE and Streamable HTTP (in the era
    the client picks, and held to the handshake era's sessions) through nginx."""
    before = await cluster.requests()
    ws_url = cluster.url.replace("http://", "ws://") + "/ws"
    async with MultiServerMCPClient(timeout=10, protocol_version=era) as client:
        await client.add("ws", ws_url)
        await client.add("sse", f"{cluster.url}/sse", "sse")
        await client.add("http", f"{cluster.url}/mcp", "http")
        for n in range(10):
            for name in ("ws", "sse", "http"):
                result = await client.call(name, "echo", {"message": f"{name} {n}"})
                assert result["content"][0]["text"] == f"Echo: {name} {n}"
    _spread(landed_on(before, await cluster.requests()), 2)
    _spread(cluster.served(r'"POST /message\?sessionId='), 2)
    _spread(cluster.served(r'"POST /mcp '), 2)


# ---- an instance lost mid-session


async def test_http_session_survives_the_instance_that_created_it(cluster: Cluster) -> None:
    """Streamable HTTP: the instance that created the session is killed; the session goes on
    (its requests reach the others, which find it in the store)."""
    async with MultiServerMCPClient(timeout=10, protocol_version=HANDSHAKE) as client:
        await client.add("http", f"{cluster.url}/mcp", "http")
        created = cluster.served(r'"POST /mcp .* session=- ')  # initialize, the only one
        assert sum(created.values()) == 1, created
        for n in range(3):
            await client.call("http", "echo", {"message": f"before {n}"})
        victim = next(iter(created))
        await cluster.kill(int(victim.rpartition("-")[2]))
        after_kill = await cluster.requests()
        for n in range(10):
            result = await client.call("http", "echo", {"message": f"after {n}"})
            assert result["content"][0]["text"] == f"Echo: after {n}"
    landed = landed_on(after_kill, await cluster.requests())
    assert victim not in landed
    _spread(landed, 2)


async def test_sse_client_opens_a_new_session_when_its_instance_dies(cluster: Cluster) -> None:
    """Legacy SSE: the stream dies with its instance, so does that session; the client opens
    a new one (on another instance) and goes on."""
    with anyio.fail_after(30):
        async with sse_client(f"{cluster.url}/sse") as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            await session.call_tool("echo", {"message": "first"})
            # The stream is still open, so not in nginx's access log yet: ask the instances.
            holders = {name: n for name, n in
                       (await cluster.metric("mcp_connections", 'transport="sse"')).items() if n}
            assert list(holders.values()) == [1], holders
            holder = next(iter(holders))
            await cluster.kill(int(holder.rpartition("-")[2]))
            with pytest.raises(Exception):  # noqa: B017 - any failure, but a bounded one
                with anyio.fail_after(10):
                    await session.call_tool("echo", {"message": "lost"})
        async with sse_client(f"{cluster.url}/sse") as (read, write), \
                ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name != holder
            for n in range(5):
                assert _text(await session.call_tool("echo", {"message": f"again {n}"})) \
                    == f"Echo: again {n}"


# ---- Redis lost and back


async def test_redis_restart_clear_errors_then_recovery(cluster: Cluster,
                                                       redis: RedisProcess) -> None:
    """While Redis is down what needs it is answered 503 with a JSON-RPC error, at once;
    stateless 2026-07-28 requests and WebSocket sessions go on; once Redis is back (empty)
    new sessions work again and the old one is gone (404: the client opens a new one)."""
    url = f"{cluster.url}/mcp"
    ws_url = cluster.url.replace("http://", "ws://") + "/ws"
    async with aiohttp.ClientSession() as http, \
            MultiServerMCPClient(timeout=10) as ours:
        await ours.add("ws", ws_url)
        headers = await _open_session(http, url)
        assert (await _echo(http, url, headers, 1))[0] == 200

        await asyncio.to_thread(redis.stop)
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                           "clientInfo": {"name": "cluster-test", "version": "1"}}}
        for _ in range(3):  # one per instance
            async with asyncio.timeout(6), http.post(url, data=orjson.dumps(init),
                                                     headers=JSON_HEADERS) as resp:
                assert resp.status == 503, await resp.text()
                assert "error" in orjson.loads(await resp.read())
        for n in range(3):
            status, answer = await _echo(http, url, headers, 10 + n)
            assert status in (200, 503), answer
            assert ("result" in answer) if status == 200 else ("error" in answer)
        assert (await ours.call("ws", "echo", {"message": "no redis"}))["content"][0]["text"] \
            == "Echo: no redis"
        async with MultiServerMCPClient(timeout=10) as stateless:
            await stateless.add("http", url, "http")
            assert stateless.get("http").era == "modern"  # 2026-07-28
            await stateless.call("http", "echo", {"message": "stateless"})

        await asyncio.to_thread(redis.start)
        async with asyncio.timeout(15):  # the store reconnects within its backoff (<= 2 s)
            while True:
                try:
                    fresh = await _open_session(http, url)
                    break
                except AssertionError:
                    await asyncio.sleep(0.2)  # waiting for the instances' store clients
        for n in range(6):
            assert (await _echo(http, url, fresh, 20 + n))[0] == 200
        # The restarted Redis forgot the old session; an instance that read its record less
        # than a second before may serve it that long, then every instance answers 404.
        await asyncio.sleep(1.2)  # past every instance's last reading of it
        for n in range(3):
            assert (await _echo(http, url, headers, 31 + n))[0] == 404


# ---- bad input, answered alike by every instance


async def test_bad_session_ids_and_event_ids_through_nginx(cluster: Cluster) -> None:
    url = f"{cluster.url}/mcp"
    async with aiohttp.ClientSession() as http:
        headers = await _open_session(http, url)
        assert (await _echo(http, url, headers, 1))[0] == 200
        deleted = await _open_session(http, url)
        async with http.delete(url, headers=deleted) as resp:
            assert resp.status in (200, 202, 204)
        forged = {**headers, "Mcp-Session-Id": uuid.uuid4().hex}
        for n in range(3):  # one per instance
            for gone in (deleted, forged):
                status, answer = await _echo(http, url, gone, 10 + n)
                assert status == 404 and "error" in answer, (status, answer)

        def sse(last_event_id: str) -> dict[str, str]:
            return {**headers, "Accept": "text/event-stream", "Last-Event-ID": last_event_id}

        # A number past Python's int digit limit, one past 64 bits, an unknown stream, a
        # header of 7000 digits (under nginx's 8 KiB line, so the instance answers).
        for bad in ("0-" + "9" * 5000, "0-" + "1" * 40, "zz-1", "9" * 7000):
            for _ in range(3):  # one per instance
                async with asyncio.timeout(10), http.get(url, headers=sse(bad)) as resp:
                    assert resp.status == 400, (bad[:20], resp.status, await resp.text())
                    assert "Last-Event-ID" in orjson.loads(await resp.read())["error"]["message"]
