"""HTTP-level safety: Origin and Host checks, the bearer token, CORS, health."""

from __future__ import annotations

import asyncio
import errno
import logging

import aiohttp
import pytest

from mcp_multi.server.settings import ServerSettings

from ..conftest import StartServer


async def _status(url: str, **headers: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status


async def test_foreign_origin_and_host_are_refused(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    sse = server.base_url + "/sse"
    assert await _status(sse, Origin="http://evil.example") == 403
    assert await _status(sse, Host="evil.example") == 403
    assert await _status(server.base_url + "/ws", Origin="http://evil.example") == 403
    async with aiohttp.ClientSession() as http, \
            http.get(sse, headers={"Origin": "http://localhost:5173"}) as resp:
        assert resp.status == 200
        assert (await resp.content.readline()).startswith(b"event: endpoint")


@pytest.mark.parametrize(("headers", "status", "says"), [
    ({"Origin": "http://evil.example"}, 403, "origin http://evil.example is not allowed"),
    ({"Host": "evil.example"}, 403, "host evil.example is not allowed"),
    ({}, 401, "bearer token is required"),
])
async def test_refusals_carry_a_json_rpc_error(start_mcp_server: StartServer,
                                               headers: dict[str, str], status: int,
                                               says: str) -> None:
    """A refused peer reads why in the same JSON-RPC error body as every other refusal."""
    server = await start_mcp_server(auth_token="s3cret")
    async with aiohttp.ClientSession() as http, \
            http.post(server.base_url + "/mcp", headers=headers, data=b"{}") as resp:
        assert resp.status == status
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["code"] == -32600 and says in body["error"]["message"]
    if status == 401:
        assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_allowed_origin_gets_cors_headers(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(allowed_origins=("https://inspector.example",))
    async with aiohttp.ClientSession() as http:
        async with http.options(server.base_url + "/message", headers={
            "Origin": "https://inspector.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "https://inspector.example"
        async with http.post(server.base_url + "/message?sessionId=nope",
                             headers={"Origin": "https://inspector.example"}) as resp:
            assert resp.status == 404
            assert resp.headers["Access-Control-Allow-Origin"] == "https://inspector.example"
        async with http.post(server.base_url + "/message?sessionId=nope",
                             headers={"Origin": "https://other.example"}) as resp:
            assert resp.status == 403


_MODERN_CALL = {
    "jsonrpc": "2.0", "id": 1, "method": "tools/call",
    "params": {"name": "echo", "arguments": {"message": "hi"}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}}}
_MODERN_HEADERS = {"Accept": "application/json, text/event-stream",
                   "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                   "Mcp-Name": "echo"}


async def test_every_post_keeps_its_cors_headers(start_mcp_server: StartServer) -> None:
    """The MCP POSTs after the first are served without the router (see RequestGuard),
    except where CORS wraps the routes: each answer still carries its CORS header."""
    server = await start_mcp_server(allowed_origins=("https://inspector.example",))
    headers = {**_MODERN_HEADERS, "Origin": "https://inspector.example"}
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.post(server.base_url + "/mcp", json=_MODERN_CALL,
                                 headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers["Access-Control-Allow-Origin"] == "https://inspector.example"
                assert "Echo: hi" in await resp.text()


async def test_a_post_expecting_100_continue_is_answered(start_mcp_server: StartServer) -> None:
    """A POST with ``Expect: 100-continue`` after others (whose route the guard keeps) still
    gets its 100 Continue and then its answer."""
    server = await start_mcp_server()
    async with aiohttp.ClientSession() as http:
        for expect in (False, False, True, False):
            async with asyncio.timeout(5), http.post(
                    server.base_url + "/mcp", json=_MODERN_CALL, headers=_MODERN_HEADERS,
                    expect100=expect) as resp:
                assert resp.status == 200
                assert "Echo: hi" in await resp.text()


async def test_bearer_token(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(auth_token="s3cret")
    sse = server.base_url + "/sse"
    assert await _status(sse) == 401
    assert await _status(sse, Authorization="Bearer wrong") == 401
    assert await _status(server.base_url + "/healthz") == 200
    async with aiohttp.ClientSession() as http, \
            http.get(sse, headers={"Authorization": "Bearer s3cret"}) as resp:
        assert resp.status == 200


async def test_message_endpoint_errors(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    async with aiohttp.ClientSession() as http:
        async with http.post(server.base_url + "/message", data=b"{}") as resp:
            assert resp.status == 400
        async with http.post(server.base_url + "/message?session_id=unknown", data=b"{}") as r:
            assert r.status == 404


async def test_sse_session_limit(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(max_sse_sessions=1)
    async with aiohttp.ClientSession() as http, http.get(server.base_url + "/sse") as first:
        assert first.status == 200
        await first.content.readline()
        async with http.get(server.base_url + "/sse") as second:
            assert second.status == 503


async def test_healthz(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(name="h", tools=("echo",))
    async with aiohttp.ClientSession() as http, http.get(server.base_url + "/healthz") as r:
        body = await r.json()
    assert body["status"] == "ok" and body["name"] == "h" and body["tools"] == ["echo"]


async def test_malformed_host_is_refused_not_a_crash(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    sse = server.base_url + "/sse"
    # A Host header yarl cannot parse used to raise inside the guard (500); one that hides
    # a foreign name behind a fragment or userinfo passed as loopback.
    assert await _status(sse, Host="127.0.0.1:80 evil") == 403
    assert await _status(sse, Host="evil.example#@localhost") == 403
    assert await _status(sse, Host="localhost:1@evil.example") == 403
    assert await _status(sse, Host="[::1") == 403
    async with aiohttp.ClientSession() as http, \
            http.get(sse, headers={"Host": f"[::1]:{server.port}"}) as resp:
        assert resp.status == 200


async def test_sse_client_that_stops_reading_loses_its_stream(
        start_mcp_server: StartServer) -> None:
    """POSTs never hang on a stalled reader; the stalled stream ends, memory stays bounded."""
    server = await start_mcp_server(max_message_size=16 * 1024, session_buffer_bytes=64 * 1024)
    payload = "x" * 10_000
    async with aiohttp.ClientSession() as http:
        stream = await http.get(server.base_url + "/sse")
        endpoint = (await stream.content.readline(), await stream.content.readline())[1]
        url = server.base_url + endpoint.decode().removeprefix("data: ").strip()
        stats = server.state.stats
        statuses = []
        init = {"protocolVersion": "2024-11-05", "capabilities": {},
                "clientInfo": {"name": "stalled", "version": "0"}}
        for i in range(2000):  # ~20 MB of answers the client never reads
            body = {"jsonrpc": "2.0", "id": i, "method": "initialize", "params": init} \
                if i == 0 else {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                "params": {"name": "echo", "arguments": {"message": payload}}}
            async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as r:
                statuses.append(r.status)
            if r.status == 404:
                break
        assert statuses[0] == 202 and statuses[-1] == 404  # the session was ended
        assert not server.state.sse_sessions and stats.connections == 0
        stream.close()


async def test_metrics_in_prometheus_text_format(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(name='odd "name"\\')
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.base_url + "/ws")
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "m", "version": "0"}}})
        await ws.receive_json(timeout=5)
        await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                            "params": {"name": "echo", "arguments": {"message": "x"}}})
        await ws.receive_json(timeout=5)
        await ws.send_json({"jsonrpc": "2.0", "id": 3, "method": "nope"})
        await ws.receive_json(timeout=5)
        async with http.get(server.base_url + "/metrics") as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            text = await resp.text()
        await ws.close()
    label = 'server="odd \\"name\\"\\\\"'
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.split()[1] in ("HELP", "TYPE")
            continue
        metric, value = line.rsplit(" ", 1)
        assert label in metric
        samples[metric.split("{")[0] + ("{ws}" if "websocket" in metric else "")] = \
            float(value)
    assert samples["mcp_connections{ws}"] == 1
    assert samples["mcp_sessions_total"] == 1
    assert samples["mcp_requests_total"] == 3
    assert samples["mcp_tool_calls_total"] == 1
    assert samples["mcp_errors_total"] == 1
    assert samples["process_resident_memory_bytes"] > 1e6


def test_only_real_loopback_hosts_count_as_loopback() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LocalHost"):
        assert ServerSettings(host=host).is_loopback, host
    # Names that merely look like loopback resolve wherever their owner likes.
    for host in ("127.evil.example", "127.0.0.1.nip.io", "localhost.evil.example",
                 "0.0.0.0", "::", "10.0.0.1", "128.0.0.1"):
        assert not ServerSettings(host=host).is_loopback, host


async def test_auth_token_guards_metrics_but_not_healthz(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(auth_token="s3cret")
    metrics = server.base_url + "/metrics"
    assert await _status(metrics) == 401
    assert await _status(metrics, Authorization="Bearer wrong") == 401
    assert await _status(metrics, Authorization="Bearer s3cret") == 200
    assert await _status(server.base_url + "/healthz") == 200
    # Without a token, both stay open as before.
    open_server = await start_mcp_server()
    assert await _status(open_server.base_url + "/metrics") == 200


async def test_failed_accepts_are_logged_a_few_lines_at_a_time(
        start_mcp_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    """asyncio reports each accept() that fails for want of descriptors with a traceback; a
    running server turns them into a few throttled lines and gives the loop back on close."""
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    server = await start_mcp_server()
    caplog.set_level(logging.INFO)
    for _ in range(100):
        loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                     "exception": OSError(errno.EMFILE, "Too many open files")})
    await server.close()
    lines = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(lines) == 2 and all(r.exc_info is None for r in lines), lines
    assert "99 more failed accepts" in lines[-1].getMessage()
    assert loop.get_exception_handler() is before
