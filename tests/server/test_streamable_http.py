"""Streamable HTTP at /mcp, seen at the HTTP level: statuses, headers, sessions, SSE streams,
resumption, and the 2026-07-28 rules. (The shared behaviour suites cover the MCP level.)"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from mcp_multi.server.app import RunningServer
from mcp_multi.server.dispatcher import MAX_INFLIGHT

from ..conftest import StartServer
from .test_cli import ROOT, SHIM, running
from .wire import (
    MCP_ACCEPT,
    MODERN,
    REQUEST_CANCELLED,
    TIMEOUT,
    Event,
    enveloped,
    mirrored_headers,
    read_event,
)

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "http-test", "version": "0"}}}
JSON_HEADERS = {"Accept": MCP_ACCEPT, "Content-Type": "application/json"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def url(mcp_server: RunningServer) -> str:
    return mcp_server.base_url + "/mcp"


async def post(http: aiohttp.ClientSession, url: str, body: Any,
               **headers: str) -> tuple[aiohttp.ClientResponse, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(url, data=data, headers={**JSON_HEADERS, **headers}) as resp:
        raw = await resp.read()
        return resp, orjson.loads(raw) if raw and resp.content_type == "application/json" else raw


async def open_session(http: aiohttp.ClientSession, url: str,
                       version: str = "2025-11-25") -> dict[str, str]:
    """Initialize; the headers every later request of the session carries."""
    init = {**INIT, "params": {**INIT["params"], "protocolVersion": version}}
    resp, body = await post(http, url, init)
    assert resp.status == 200 and body["result"]["protocolVersion"] == version
    session_id = resp.headers["Mcp-Session-Id"]
    assert session_id.isascii() and session_id.isprintable() and " " not in session_id
    headers = {"Mcp-Session-Id": session_id, "MCP-Protocol-Version": version}
    resp, _ = await post(http, url, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                         **headers)
    assert resp.status == 202
    return headers


def call(id: int, name: str, arguments: dict[str, Any], token: str | None = None) -> dict:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}


async def events_until_response(resp: aiohttp.ClientResponse, id: int) -> list[Event]:
    events = []
    while (event := await read_event(resp.content)) is not None:
        events.append(event)
        if event.data and orjson.loads(event.data).get("id") == id:
            break
    return events


# ------------------------------------------------------------------ handshake era

async def test_session_lifecycle(http: aiohttp.ClientSession, url: str,
                                 mcp_server: RunningServer) -> None:
    headers = await open_session(http, url)
    resp, body = await post(http, url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                            **headers)
    assert resp.status == 200 and resp.content_type == "application/json"
    assert resp.headers["Mcp-Session-Id"] == headers["Mcp-Session-Id"]
    assert len(body["result"]["tools"]) == 5
    async with http.delete(url, headers=headers) as deleted:
        assert deleted.status == 200
    assert not mcp_server.state.http_sessions and mcp_server.state.stats.connections == 0
    resp, body = await post(http, url, {"jsonrpc": "2.0", "id": 3, "method": "ping"}, **headers)
    assert resp.status == 404 and body["error"]["code"] == -32600


async def test_session_id_is_required(http: aiohttp.ClientSession, url: str) -> None:
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    resp, body = await post(http, url, ping)
    assert resp.status == 400 and "Mcp-Session-Id" in body["error"]["message"]
    resp, _ = await post(http, url, ping, **{"Mcp-Session-Id": "no-such-session"})
    assert resp.status == 404
    async with http.get(url, headers={"Accept": "text/event-stream"}) as got:
        assert got.status == 400
    async with http.delete(url, headers={"Mcp-Session-Id": "no-such-session"}) as deleted:
        assert deleted.status == 404


async def test_media_types(http: aiohttp.ClientSession, url: str) -> None:
    resp, _ = await post(http, url, INIT, Accept="application/json")
    assert resp.status == 406
    resp, _ = await post(http, url, INIT, Accept="text/event-stream")
    assert resp.status == 406
    resp, _ = await post(http, url, INIT, Accept="*/*")
    assert resp.status == 200
    resp, _ = await post(http, url, INIT, **{"Content-Type": "text/plain"})
    assert resp.status == 415
    headers = await open_session(http, url)
    async with http.get(url, headers={**headers, "Accept": "application/json"}) as got:
        assert got.status == 406


@pytest.mark.parametrize("accept, status", [
    ("application/json;q=0, text/event-stream, */*", 406),  # q=0: JSON is NOT acceptable
    ("application/json, text/event-stream; q=0", 406),
    ("*/*;q=0, application/json;q=0.5, text/*;q=0.001", 200),
    ("application/*, text/event-stream;q=1.000", 200),
    ("application/json;q=2, text/event-stream", 406),  # no qvalue: the range is ignored
])
async def test_accept_weighs_q(http: aiohttp.ClientSession, url: str, accept: str,
                               status: int) -> None:
    resp, _ = await post(http, url, INIT, Accept=accept)
    assert resp.status == status


async def test_protocol_version_header(http: aiohttp.ClientSession, url: str) -> None:
    headers = await open_session(http, url)
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    resp, body = await post(http, url, ping, **{**headers, "MCP-Protocol-Version": "1999-01-01"})
    assert resp.status == 400 and body["error"]["code"] == -32022
    # Absent means 2025-03-26: still served.
    resp, body = await post(http, url, ping, **{"Mcp-Session-Id": headers["Mcp-Session-Id"]})
    assert resp.status == 200 and body["result"] == {}


async def test_notifications_get_202_without_body(http: aiohttp.ClientSession, url: str) -> None:
    headers = await open_session(http, url)
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}
    resp, body = await post(http, url, note, **headers)
    assert resp.status == 202 and body == b""


async def test_progress_turns_the_answer_into_a_stream(http: aiohttp.ClientSession,
                                                       url: str) -> None:
    headers = await open_session(http, url)
    body = orjson.dumps(call(5, "echo", {"message": "s"}, token="p1"))
    async with http.post(url, data=body, headers={**JSON_HEADERS, **headers}) as resp:
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        assert resp.headers["Mcp-Session-Id"] == headers["Mcp-Session-Id"]
        events = await events_until_response(resp, 5)
        assert await read_event(resp.content) is None  # the stream ends after the response
    priming, progress, final = events
    # 2025-11-25: a priming event (id, empty data, retry) opens the stream.
    assert priming.id and priming.data == "" and int(priming.retry) > 0
    assert orjson.loads(progress.data)["method"] == "notifications/progress"
    assert orjson.loads(final.data)["result"]["content"][0]["text"] == "Echo: s"
    ids = [e.id for e in events]
    assert len(set(ids)) == 3 and all(i.split("-")[0] == ids[0].split("-")[0] for i in ids)


async def test_older_clients_get_no_priming_event(http: aiohttp.ClientSession, url: str) -> None:
    headers = await open_session(http, url, "2025-06-18")
    body = orjson.dumps(call(5, "echo", {"message": "s"}, token="p1"))
    async with http.post(url, data=body, headers={**JSON_HEADERS, **headers}) as resp:
        events = await events_until_response(resp, 5)
    assert all(e.data for e in events) and all(e.id for e in events)


async def test_dropped_stream_resumes_with_last_event_id(http: aiohttp.ClientSession,
                                                         url: str) -> None:
    """A client that loses a call's stream does not cancel the call: it comes back with
    Last-Event-ID and gets the rest of that stream."""
    headers = await open_session(http, url)
    body = orjson.dumps(call(7, "run_command", {"command": "sleep 0.3; echo resumed"}, "p"))
    resp = await http.post(url, data=body, headers={**JSON_HEADERS, **headers})
    priming = await read_event(resp.content)
    progress = await read_event(resp.content)
    assert priming is not None and progress is not None and progress.data
    resp.close()  # the connection breaks mid-call
    get_headers = {**headers, "Accept": "text/event-stream", "Last-Event-ID": progress.id}
    async with http.get(url, headers=get_headers) as resumed:
        assert resumed.status == 200 and resumed.content_type == "text/event-stream"
        events = await events_until_response(resumed, 7)
    replies = [orjson.loads(e.data) for e in events if e.data]
    assert len(replies) == 1 and "resumed" in replies[0]["result"]["content"][0]["text"]
    # An id that is not ours, or long gone, cannot be resumed.
    bad = {**get_headers, "Last-Event-ID": "999-1"}
    async with http.get(url, headers=bad) as refused:
        assert refused.status == 400


async def test_concurrent_calls_of_one_session_each_get_their_answer(
        http: aiohttp.ClientSession) -> None:
    """More calls at once than a session retains finished streams: each POST still answers
    its own result (a stream retired as old before its POST read it was answered as an
    empty event stream: 169 of 2,000 calls at concurrency 32). The server runs in its own
    process, as in production: sharing the test's event loop hides the race."""
    async with running() as base:
        url = base + "/mcp"
        headers = await open_session(http, url)
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> tuple[int, Any]:
            async with gate:
                resp, body = await post(http, url, call(i, "echo", {"message": f"m{i}"}),
                                        **headers)
                return resp.status, body

        answers = await asyncio.gather(*(one(i) for i in range(100, 1100)))
    for i, (status, body) in zip(range(100, 1100), answers, strict=True):
        assert status == 200
        assert isinstance(body, dict), body
        assert body["id"] == i and body["result"]["content"][0]["text"] == f"Echo: m{i}"


async def test_answers_sent_as_json_log_no_warning(http: aiohttp.ClientSession, url: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A stream answered as plain JSON is forgotten on purpose: no "dropping undelivered
    events" warning per request (every JSON answer logged one)."""
    headers = await open_session(http, url)
    with caplog.at_level(logging.WARNING):
        for i in range(5):
            resp, body = await post(http, url, call(10 + i, "echo", {"message": "x"}), **headers)
            assert resp.status == 200 and body["id"] == 10 + i
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_get_stream(http: aiohttp.ClientSession, url: str) -> None:
    headers = await open_session(http, url)
    get_headers = {**headers, "Accept": "text/event-stream"}
    async with http.get(url, headers=get_headers) as stream:
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        priming = await read_event(stream.content)
        assert priming is not None and priming.id and priming.data == ""
        async with http.get(url, headers=get_headers) as second:
            assert second.status == 409  # one standalone stream per session
        async with http.delete(url, headers=headers):
            pass
        # Ending the session ends its stream.
        assert await read_event(stream.content) is None


async def test_cancelled_notification_ends_the_call(http: aiohttp.ClientSession,
                                                    url: str) -> None:
    headers = await open_session(http, url)
    body = orjson.dumps(call(11, "run_command", {"command": "sleep 30"}))
    pending = asyncio.ensure_future(post(http, url, body, **headers))
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled",
              "params": {"requestId": 11, "reason": "test"}}
    # The call may not have reached the server yet: cancel until it has been answered.
    while not pending.done():
        await post(http, url, cancel, **headers)
        await asyncio.wait([pending], timeout=0.05)
    resp, reply = pending.result()
    assert resp.status == 200 and reply["id"] == 11 and reply["error"]["code"] == -32800


async def test_batches_belong_to_2025_03_26(http: aiohttp.ClientSession, url: str) -> None:
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    old = await open_session(http, url, "2025-03-26")
    resp, body = await post(http, url, batch, **old)
    assert resp.status == 200 and [r["id"] for r in body] == [1, 2]
    new = await open_session(http, url)
    resp, body = await post(http, url, batch, **new)
    assert resp.status == 400 and body["error"]["code"] == -32600


async def test_batch_requests_count_as_in_flight(http: aiohttp.ClientSession, url: str) -> None:
    """A batch may not start more requests than a session may have running, nor reuse an
    id (it used to run every member at once: thousands of run_command processes)."""
    headers = await open_session(http, url, "2025-03-26")
    batch = [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(MAX_INFLIGHT + 1)]
    batch.append({"jsonrpc": "2.0", "id": 0, "method": "ping"})
    resp, body = await post(http, url, batch, **headers)
    assert resp.status == 200 and len(body) == MAX_INFLIGHT + 2
    answered = [r["id"] for r in body if "result" in r]
    refused = [r for r in body if "error" in r]
    assert sorted(answered) == list(range(MAX_INFLIGHT))
    assert [(r["id"], r["error"]["code"]) for r in refused] == [(MAX_INFLIGHT, -32600),
                                                                (0, -32600)]


async def test_session_limit(start_mcp_server: Any, http: aiohttp.ClientSession) -> None:
    server = await start_mcp_server(max_http_sessions=1)
    url = server.base_url + "/mcp"
    await open_session(http, url)
    resp, _ = await post(http, url, INIT)
    assert resp.status == 503


async def test_half_open_sessions_give_way(start_mcp_server: Any,
                                           http: aiohttp.ClientSession) -> None:
    """Bare initialize calls (no notifications/initialized) cannot fill the server."""
    server = await start_mcp_server(max_http_sessions=2, http_handshake_grace=0.0)
    url = server.base_url + "/mcp"
    full = (await open_session(http, url))["Mcp-Session-Id"]  # initialize + initialized
    for _ in range(5):
        resp, _ = await post(http, url, INIT)  # half-open, each displacing the last
        assert resp.status == 200
    assert len(server.state.http_sessions) == 2 and full in server.state.http_sessions


# ------------------------------------------------------------------ 2026-07-28

def modern_headers(body: dict, **override: str) -> dict[str, str]:
    return {**mirrored_headers(body), **override}


async def test_modern_request_is_stateless(http: aiohttp.ClientSession, url: str,
                                           mcp_server: RunningServer) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": enveloped()}
    resp, reply = await post(http, url, body, **modern_headers(body),
                             **{"Mcp-Session-Id": "ignored"})
    assert resp.status == 200 and resp.content_type == "application/json"
    assert "Mcp-Session-Id" not in resp.headers and not mcp_server.state.http_sessions
    assert reply["result"]["resultType"] == "complete"


@pytest.mark.parametrize("override, code", [
    ({"Mcp-Method": "tools/list"}, -32020),
    ({"Mcp-Name": "math_calc"}, -32020),
    ({"MCP-Protocol-Version": "2025-11-25"}, -32020),
])
async def test_modern_headers_must_match_the_body(http: aiohttp.ClientSession, url: str,
                                                  override: dict[str, str], code: int) -> None:
    body = {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": enveloped({"name": "echo", "arguments": {"message": "x"}})}
    headers = modern_headers(body, **override)
    if headers["MCP-Protocol-Version"] != MODERN:
        # A handshake-era header with a modern body: the handshake era refuses it.
        resp, reply = await post(http, url, body, **headers)
        assert resp.status == 400
        return
    resp, reply = await post(http, url, body, **headers)
    assert resp.status == 400 and reply["error"]["code"] == code and reply["id"] == 4


async def test_modern_missing_headers_and_base64_name(http: aiohttp.ClientSession,
                                                      url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": enveloped({"name": "echo", "arguments": {"message": "x"}})}
    headers = modern_headers(body)
    del headers["Mcp-Name"]
    resp, reply = await post(http, url, body, **headers)
    assert resp.status == 400 and reply["error"]["code"] == -32020
    encoded = "=?base64?" + base64.b64encode(b"echo").decode() + "?="
    resp, reply = await post(http, url, body, **modern_headers(body, **{"Mcp-Name": encoded}))
    assert resp.status == 200 and reply["result"]["content"][0]["text"] == "Echo: x"


async def test_modern_statuses(http: aiohttp.ClientSession, url: str) -> None:
    unknown = {"jsonrpc": "2.0", "id": 1, "method": "tools/dance", "params": enveloped()}
    resp, reply = await post(http, url, unknown, **modern_headers(unknown))
    assert resp.status == 404 and reply["error"]["code"] == -32601
    future = {"jsonrpc": "2.0", "id": 2, "method": "tools/list",
              "params": enveloped(version="2099-01-01")}
    resp, reply = await post(http, url, future, **modern_headers(future))
    assert resp.status == 400 and reply["error"]["data"]["supported"] == [MODERN]
    bare = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    resp, reply = await post(http, url, bare, **{"MCP-Protocol-Version": MODERN,
                                                 "Mcp-Method": "tools/list"})
    assert resp.status == 400 and reply["error"]["code"] == -32602
    resp, reply = await post(http, url, b"{oops", **{"MCP-Protocol-Version": MODERN})
    assert resp.status == 400 and reply["error"]["code"] == -32700
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    resp, _ = await post(http, url, note, **{"MCP-Protocol-Version": MODERN})
    assert resp.status == 202
    for method in ("GET", "DELETE"):
        async with http.request(method, url, headers={"MCP-Protocol-Version": MODERN,
                                                      "Accept": "text/event-stream"}) as r:
            assert r.status == 405 and r.headers["Allow"] == "POST"


def _serves_a_call(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and code.co_name == "_run" \
        and code.co_filename.endswith("streamable_http.py")


async def test_modern_closed_stream_cancels_the_call(http: aiohttp.ClientSession, url: str,
                                                     mcp_server: RunningServer) -> None:
    body = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": enveloped(
        {"name": "run_command", "arguments": {"command": "sleep 30"}}, progressToken="t")}
    stats = mcp_server.state.stats
    resp = await http.post(url, data=orjson.dumps(body),
                           headers={**JSON_HEADERS, **modern_headers(body)})
    assert resp.content_type == "text/event-stream"
    first = await read_event(resp.content)
    assert first is not None and not first.id  # 2026-07-28 streams are not resumable
    assert orjson.loads(first.data)["method"] == "notifications/progress"
    running = {t for t in asyncio.all_tasks() if _serves_a_call(t)}
    assert running and stats.calls_served == 1
    resp.close()
    done, _ = await asyncio.wait(running, timeout=TIMEOUT)
    assert done == running  # cancelled, not left to run for 30 s


# ------------------------------------------------------------------ shutdown

async def _post_and_read(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                         headers: dict[str, str]) -> tuple[int, str, list[Any]]:
    """Status, media type and every message of the answer (JSON or SSE events)."""
    async with http.post(url, data=orjson.dumps(body), headers=headers) as resp:
        if resp.content_type == "text/event-stream":
            events = []
            while (event := await read_event(resp.content)) is not None:
                events.append(event)
            return resp.status, resp.content_type, [orjson.loads(e.data) for e in events
                                                    if e.data]
        raw = await resp.read()
        return resp.status, resp.content_type, [orjson.loads(raw)] if raw else []


@pytest.mark.parametrize("version, progress", [("2025-11-25", False), ("2025-03-26", True),
                                               (MODERN, False), (MODERN, True)])
async def test_sigterm_answers_the_calls_it_cuts_off(version: str, progress: bool) -> None:
    """A call in flight when the server process gets SIGTERM gets its JSON-RPC error (as JSON
    or as the stream's last event), never a 200 with an empty body."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SHIM, "--port", "0", "--log-level", "INFO",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        listening = re.search(r" on (\S+):(\d+) ", line)
        assert listening, line
        url = f"http://{listening[1]}:{listening[2]}/mcp"
        async with aiohttp.ClientSession() as http:
            arguments = {"name": "run_command", "arguments": {"command": "sleep 5"}}
            if version == MODERN:
                params = enveloped(arguments, **({"progressToken": "p"} if progress else {}))
                headers = {**JSON_HEADERS, **mirrored_headers({"method": "tools/call",
                                                               "params": params})}
            else:
                headers = {**JSON_HEADERS, **await open_session(http, url, version)}
                params = call(7, **arguments, token="p" if progress else None)["params"]
            body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
            calling = asyncio.create_task(_post_and_read(http, url, body, headers))
            while b"run_command: 'sleep 5'" not in await asyncio.wait_for(
                    proc.stderr.readline(), TIMEOUT):
                continue  # the call is running once the tool logs it
            proc.send_signal(signal.SIGTERM)
            status, media, messages = await asyncio.wait_for(calling, TIMEOUT)
        assert status == 200 and media == ("text/event-stream" if progress
                                           else "application/json")
        assert messages and messages[-1]["id"] == 7
        error = messages[-1]["error"]
        assert error["code"] == REQUEST_CANCELLED and "shutting down" in error["message"]
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


# ------------------------------------------------------------------ browsers

async def test_origin_and_cors(start_mcp_server: Any, http: aiohttp.ClientSession) -> None:
    server = await start_mcp_server(allowed_origins=("https://inspector.example",))
    url = server.base_url + "/mcp"
    resp, _ = await post(http, url, INIT, Origin="http://evil.example")
    assert resp.status == 403
    async with http.options(url, headers={
        "Origin": "https://inspector.example",
        "Access-Control-Request-Method": "DELETE",
        "Access-Control-Request-Headers": "mcp-session-id, mcp-protocol-version",
    }) as preflight:
        assert preflight.status == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://inspector.example"
    resp, _ = await post(http, url, INIT, Origin="https://inspector.example")
    assert resp.status == 200
    exposed = resp.headers["Access-Control-Expose-Headers"].lower()
    assert "mcp-session-id" in exposed


async def test_stateless_requests_are_bounded(start_mcp_server: StartServer) -> None:
    """2026-07-28 requests have no session to count them: a server-wide limit does (503)."""
    server = await start_mcp_server(max_stateless_requests=2)
    url = server.base_url + "/mcp"

    def listen(i: int) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": i, "method": "subscriptions/listen",
                "params": enveloped({"notifications": {}})}

    async with aiohttp.ClientSession() as http:
        held = []
        for i in (1, 2):
            resp = await http.post(url, json=listen(i), headers={
                **mirrored_headers(listen(i)), "Accept": "application/json, text/event-stream"})
            assert resp.status == 200
            assert b"acknowledged" in await resp.content.readuntil(b"\n\n")
            held.append(resp)
        third = listen(3)
        async with http.post(url, json=third, headers={
                **mirrored_headers(third), "Accept": "application/json, text/event-stream"}) as r:
            assert r.status == 503
            assert "busy" in (await r.json())["error"]["message"]
        held[0].close()  # a closed stream cancels its request and frees its place
        ping = {"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": enveloped()}
        for _ in range(100):
            async with http.post(url, json=ping, headers={
                    **mirrored_headers(ping), "Accept": MCP_ACCEPT}) as r:
                if r.status == 200:
                    break
            await asyncio.sleep(0.02)
        assert r.status == 200
        held[1].close()
