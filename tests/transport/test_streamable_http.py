"""The Streamable HTTP client transport against scripted endpoints: what it sends, what it
makes of every kind of answer, streams that break and resume, sessions that end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from mcp_multi.protocol.envelope import request_meta, with_envelope
from mcp_multi.protocol.errors import (
    HTTPStatusError,
    ProtocolError,
    RequestFailed,
    SessionExpired,
    TransportError,
)
from mcp_multi.transport import StreamableHTTPTransport
from mcp_multi.transport.http_streams import (
    DEFAULT_RETRY_MS,
    MAX_RETRY_MS,
    MIN_RETRY_MS,
    reconnect_delay,
)

from .http_script import (
    HTTPScript,
    Recorded,
    StartHTTPScript,
    event,
    json_reply,
    sse,
)

TIMEOUT = 10.0
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "t", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
SERVER_INFO = {"protocolVersion": "2025-11-25", "capabilities": {},
               "serverInfo": {"name": "scripted", "version": "0"}}


def call(request_id: int, name: str = "echo") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call",
            "params": {"name": name, "arguments": {}}}


def result(request_id: int, text: str = "ok") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id,
            "result": {"content": [{"type": "text", "text": text}]}}


async def receive(transport: StreamableHTTPTransport) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return orjson.loads(await transport.receive())


def with_session(session_id: str = "sess-1") -> Any:
    """A POST handler: initialize opens ``session_id``, notifications get 202, requests ok."""
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "initialize":
            return json_reply(SERVER_INFO, recorded, headers={"Mcp-Session-Id": session_id})
        if "id" not in recorded.body:
            return web.Response(status=202)
        return web.json_response(result(recorded.body["id"]))
    return post


@pytest.fixture
async def script(start_http_script: StartHTTPScript) -> HTTPScript:
    return await start_http_script()


@pytest.fixture
async def transport(script: HTTPScript) -> AsyncIterator[StreamableHTTPTransport]:
    transport = StreamableHTTPTransport(script.url, headers={"Authorization": "Bearer T"})
    await transport.connect()
    yield transport
    await transport.close()


async def open_session(transport: StreamableHTTPTransport) -> None:
    await transport.send(INITIALIZE)
    assert (await receive(transport))["result"]["serverInfo"]["name"] == "scripted"
    transport.negotiated("2025-11-25")
    await transport.send(INITIALIZED)


async def test_session_version_and_custom_headers(script: HTTPScript,
                                                  transport: StreamableHTTPTransport) -> None:
    script.post = with_session("abc")
    await open_session(transport)
    await transport.send(call(2))
    assert (await receive(transport))["id"] == 2
    await transport.close()
    init, note, request = script.of("POST")
    assert init.header("mcp-session-id") is None and init.header("mcp-protocol-version") is None
    assert "application/json" in (init.header("accept") or "")
    assert "text/event-stream" in (init.header("accept") or "")
    for later in (note, request):
        assert later.header("mcp-session-id") == "abc"
        assert later.header("mcp-protocol-version") == "2025-11-25"
        assert later.header("mcp-method") is None  # the mirror is 2026-07-28's
    assert len(script.of("GET")) == 1  # the GET stream was tried; 405 means none
    (delete,) = script.of("DELETE")
    assert delete.header("mcp-session-id") == "abc"
    assert all(r.header("authorization") == "Bearer T" for r in script.requests)


async def test_event_stream_answer_in_small_pieces(script: HTTPScript,
                                                   transport: StreamableHTTPTransport) -> None:
    progress = {"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": 1, "progress": 1}}

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return await sse(request, [b": a comment\n\n", event(event_id="p0", retry=10),
                                   event(progress), b"event: other\ndata: ignored\n\n",
                                   event(result(recorded.body["id"], "stream ✓"))])

    script.post = post
    await transport.send(call(5))
    assert await receive(transport) == progress
    assert await receive(transport) == result(5, "stream ✓")


async def test_get_stream_delivers_server_messages_and_reconnects_after_retry(
        script: HTTPScript, transport: StreamableHTTPTransport) -> None:
    script.post = with_session()
    changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}

    async def get(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if len(script.of("GET")) == 1:
            return await sse(request, [event(changed, event_id="g1", retry=150)])
        return await sse(request, [], end=False)  # the second stays open

    script.get = get
    await open_session(transport)
    assert await receive(transport) == changed
    first, second = script.of("GET")[0], await script.wait_for(
        lambda r: r.method == "GET" and r.header("last-event-id") == "g1")
    assert second.at - first.at >= 0.14  # the server's retry, honoured
    assert second.header("mcp-session-id") == "sess-1"


async def test_broken_request_stream_is_resumed_with_last_event_id(
        script: HTTPScript, transport: StreamableHTTPTransport) -> None:
    script.post = with_session()
    closed_at: list[float] = []

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.rpc_method != "tools/call":
            return await with_session()(request, recorded)
        response = await sse(request, [event(event_id="s1-0", retry=200)])
        closed_at.append(asyncio.get_running_loop().time())
        return response

    async def get(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.header("last-event-id") == "s1-0":
            return await sse(request, [event(result(7, "resumed"), event_id="s1-1")])
        return web.Response(status=405)

    script.post, script.get = post, get
    await open_session(transport)
    await transport.send(call(7))
    assert await receive(transport) == result(7, "resumed")
    resumed = script.of("GET")[-1]
    assert resumed.header("last-event-id") == "s1-0"
    assert resumed.at - closed_at[0] >= 0.19


async def test_a_stream_that_cannot_be_resumed_fails_only_its_request(
        script: HTTPScript, transport: StreamableHTTPTransport) -> None:
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.body["id"] == 3:  # no event id: nothing to resume from
            return await sse(request, [b": working\n\n"])
        return web.json_response(result(recorded.body["id"]))

    script.post = post
    await transport.send(call(3))
    with pytest.raises(RequestFailed, match="ended before the response") as failed:
        await receive(transport)
    assert failed.value.request_id == 3
    await transport.send(call(4))
    assert (await receive(transport))["id"] == 4


async def test_404_to_our_session_is_session_expired(script: HTTPScript,
                                                     transport: StreamableHTTPTransport) -> None:
    script.post = with_session("old")
    await open_session(transport)

    async def gone(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.rpc_method == "initialize":
            return await with_session("new")(request, recorded)
        return web.Response(status=404, text="no such session")

    script.post = gone
    with pytest.raises(SessionExpired, match="no longer knows our session"):
        await transport.send(call(2))
    assert transport.session_id is None
    posts = len(script.of("POST"))
    with pytest.raises(SessionExpired):  # nothing but initialize goes out until then
        await transport.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                              "params": {"requestId": 2}})
    assert len(script.of("POST")) == posts
    await transport.send(INITIALIZE)
    await receive(transport)
    assert transport.session_id == "new"
    assert script.of("POST", "initialize")[-1].header("mcp-session-id") is None


async def test_modern_requests_mirror_their_body_and_cancel_by_closing(
        script: HTTPScript, transport: StreamableHTTPTransport) -> None:
    closed = asyncio.Event()

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:  # never answers; the client's close is the cancellation
                await response.write(b": still working\n\n")
                await asyncio.sleep(0.02)
        except (ConnectionResetError, asyncio.CancelledError):
            closed.set()
            raise

    script.post = post
    transport.negotiated("2026-07-28")
    message = call(9, "wëather")
    message["params"] = with_envelope(message["params"],
                                      request_meta("t", "0", "2026-07-28"))
    await transport.send(message)
    (sent,) = script.of("POST")
    assert sent.header("mcp-protocol-version") == "2026-07-28"
    assert sent.header("mcp-method") == "tools/call"
    assert sent.header("mcp-name") == "=?base64?d8OrYXRoZXI=?="
    assert sent.header("mcp-session-id") is None
    await transport.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                          "params": {"requestId": 9, "reason": "timeout"}})
    async with asyncio.timeout(TIMEOUT):
        await closed.wait()
    assert len(script.of("POST")) == 1  # the notification itself was not sent
    await transport.close()
    assert not script.of("DELETE") and not script.of("GET")


async def test_error_statuses(script: HTTPScript, transport: StreamableHTTPTransport) -> None:
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        request_id = recorded.body["id"]
        if request_id == 1:  # a modern refusal: JSON-RPC error, no id, HTTP 400
            return web.json_response({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32022, "message": "Unsupported protocol version",
                "data": {"supported": ["2026-07-28"]}}}, status=400)
        if request_id == 2:
            return web.Response(status=500, text="kaboom")
        if request_id == 3:
            return web.Response(status=202)
        if request_id == 4:
            raise web.HTTPTemporaryRedirect("http://127.0.0.1:1/elsewhere")
        if request_id == 6:
            return web.Response(status=200, text="{not json", content_type="application/json")
        return web.Response(status=200, text="<html>", content_type="text/html")

    script.post = post
    await transport.send(call(1))
    assert (await receive(transport))["id"] == 1  # the error, addressed to our request
    with pytest.raises(HTTPStatusError, match="HTTP 500 Internal Server Error: kaboom") as exc:
        await transport.send(call(2))
    assert exc.value.status == 500
    with pytest.raises(ProtocolError, match="HTTP 202 and no response"):
        await transport.send(call(3))
    with pytest.raises(HTTPStatusError, match=r"redirects .* 'http://127\.0\.0\.1:1/elsewhere'"):
        await transport.send(call(4))
    with pytest.raises(ProtocolError, match="neither JSON nor an event stream"):
        await transport.send(call(5))
    # A JSON answer that is not JSON fails its request at once (not at its timeout).
    with pytest.raises(ProtocolError, match="a body that is not JSON"):
        await transport.send(call(6))


async def test_error_messages_are_one_line(script: HTTPScript,
                                           transport: StreamableHTTPTransport) -> None:
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.Response(status=400, text="Invalid header token:\n\n  b'Bad Name: v'\n")

    script.post = post
    with pytest.raises(HTTPStatusError) as exc:
        await transport.send(call(1))
    assert str(exc.value) == (f"POST {script.url} refused: HTTP 400 Bad Request: "
                              "Invalid header token: b'Bad Name: v'")


def modern_call(request_id: int, method: str = "tools/call") -> dict[str, Any]:
    message = call(request_id)
    message["method"] = method
    message["params"] = with_envelope(message["params"], request_meta("t", "0", "2026-07-28"))
    return message


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_cookies_the_server_sets_go_back_on_every_request(script: HTTPScript,
                                                                host: str) -> None:
    """A load balancer keeps a client on one server by a cookie (BIG-IP's names its pool),
    reached at its address or its name: every later POST, the GET stream and the DELETE
    carry it, with the caller's own Cookie header kept."""
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        response = await with_session("s")(request, recorded)
        if recorded.rpc_method == "initialize":
            response.set_cookie("BIGipServerpool_mcp", "1677787402.36895.0000", path="/")
            # A date has a comma: the two lines must not be joined, nor this one cut there.
            response.set_cookie("later", "x", path="/", expires="Wed, 21 Oct 2037 07:28:00 GMT")
        return response

    script.post = post
    url = f"http://{host}:{script.port}/mcp"
    transport = StreamableHTTPTransport(url, headers={"Cookie": "mine=1"})
    await transport.connect()
    try:
        await open_session(transport)
        await transport.send(call(2))
        assert (await receive(transport))["id"] == 2
    finally:
        await transport.close()
    init, *later = script.requests
    assert init.header("cookie") == "mine=1"
    assert sorted(r.method for r in later) == ["DELETE", "GET", "POST", "POST"]
    for request in later:
        cookies = {part.strip() for part in (request.header("cookie") or "").split(";")}
        assert cookies == {"mine=1", "BIGipServerpool_mcp=1677787402.36895.0000", "later=x"}, \
            request.method


async def test_a_header_that_would_break_its_line_never_goes_out(
        script: HTTPScript, transport: StreamableHTTPTransport) -> None:
    """A 2026-07-28 request mirrors its method into a header: one with a line break in it
    (a caller's, or a server's name that reached it) is refused before anything is sent,
    and the transport goes on."""
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        return web.json_response(result(recorded.body["id"]))

    script.post = post
    transport.negotiated("2026-07-28")
    for bad in ("tools/call\r\nX-Injected: 1", "tools/call\nX-Injected: 1", "a\0b"):
        with pytest.raises(TransportError, match="line break or a NUL"):
            await transport.send(modern_call(1, bad))
    assert not script.requests
    await transport.send(modern_call(2))
    assert (await receive(transport))["id"] == 2
    (sent,) = script.requests
    assert sent.header("x-injected") is None


async def test_a_json_answer_over_the_size_limit_fails_its_request(
        script: HTTPScript) -> None:
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        text = "x" * (2000 if recorded.body["id"] == 1 else 10)
        return web.json_response(result(recorded.body["id"], text))

    script.post = post
    transport = StreamableHTTPTransport(script.url, max_message_size=1000)
    await transport.connect()
    try:
        with pytest.raises(ProtocolError, match="sent a body over 1000 bytes"):
            await transport.send(call(1))
        await transport.send(call(2))  # the next request, on a new connection
        assert (await receive(transport))["id"] == 2
    finally:
        await transport.close()


def test_one_reconnection_delay_rule_for_every_stream() -> None:
    assert reconnect_delay(250) == 0.25  # the server's retry, honoured
    assert reconnect_delay(None) == DEFAULT_RETRY_MS / 1000
    # retry: 0 (or any tiny value) is the same floor everywhere, never a busy loop
    assert reconnect_delay(0) == reconnect_delay(1) == MIN_RETRY_MS / 1000
    # streams in a row that brought nothing: the wait doubles from the second on, capped
    assert [reconnect_delay(250, n) for n in range(4)] == [0.25, 0.25, 0.5, 1.0]
    assert reconnect_delay(None, 10_000) == MAX_RETRY_MS / 1000
