"""A hostile-peer sweep of the server's issue-9 surface: prompts, completions, templates,
subscriptions, cursors, asking the client (both eras), tasks and ``Mcp-Param-*`` headers.

Each test drives a real server over real loopback sockets with bounded counts and waits.
Tests marked *guard* prove a bound that already held when the sweep ran; the others each
proved a defect (they fail without the fix they name).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import aiohttp
import orjson
import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from ..server.wire import MCP_ACCEPT, connect, enveloped, mirrored_headers

EXT = "io.modelcontextprotocol/tasks"
CAPS = "io.modelcontextprotocol/clientCapabilities"
TASKS = {"extensions": {EXT: {}}}
ESC = "\x1b]0;pwned\x07\x1b[2J"


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        assert "Traceback" not in record.getMessage()


async def stateless(http: aiohttp.ClientSession, server: RunningServer, method: str,
                    params: dict[str, Any], *, caps: dict[str, Any] | None = None,
                    request_id: int = 1) -> tuple[int, dict[str, Any]]:
    """One 2026-07-28 request over Streamable HTTP (no session): its status and reply."""
    body = {"jsonrpc": "2.0", "id": request_id, "method": method,
            "params": enveloped(params, **{CAPS: caps if caps is not None else {}})}
    headers = {"Accept": MCP_ACCEPT, "Content-Type": "application/json",
               **mirrored_headers(body)}
    async with http.post(server.base_url + "/mcp", data=orjson.dumps(body),
                         headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read())


# ------------------------------------------------------------------ asking (2026-07-28)

@pytest.mark.parametrize("state", [
    "v1.\u00e9t\u00e9.mac",             # non-ASCII payload
    "v1.eyJhIjp7fX0.\u00e9" + "x" * 42,  # non-ASCII mac
    "v1..\u2028",
], ids=["payload", "mac", "separator"])
async def test_a_non_ascii_request_state_is_invalid_params_not_an_internal_error(
        start_mcp_server: StartServer, caplog: pytest.LogCaptureFixture, state: str) -> None:
    """Before: the HMAC of a non-ASCII payload raised UnicodeEncodeError, and comparing a
    non-ASCII mac raised TypeError: -32603 with a logged traceback for a forged state."""
    server = await start_mcp_server(profile="conformance")
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession() as http:
        _, reply = await stateless(
            http, server, "tools/call",
            {"name": "test_input_required_result_elicitation", "arguments": {},
             "requestState": state}, caps={"elicitation": {}})
    assert reply["error"]["code"] == -32602, reply
    assert "integrity" in reply["error"]["message"]
    no_traceback(caplog)


async def test_a_request_state_is_bound_to_its_tool_and_arguments(
        start_mcp_server: StartServer) -> None:
    """Guard: a state issued for one call, replayed on another tool or other arguments,
    is refused (-32602); a megabyte ``inputResponses`` entry is not echoed back."""
    server = await start_mcp_server(profile="conformance")
    caps = {"elicitation": {}, "sampling": {}}
    async with aiohttp.ClientSession() as http:
        _, first = await stateless(http, server, "tools/call", {
            "name": "test_input_required_result_multi_round", "arguments": {}}, caps=caps)
        state = first["result"]["requestState"]
        for name, arguments in [("test_input_required_result_request_state", {}),
                                ("test_input_required_result_multi_round", {"x": "1"})]:
            _, replayed = await stateless(http, server, "tools/call", {
                "name": name, "arguments": arguments, "requestState": state}, caps=caps)
            assert replayed["error"]["code"] in (-32602,), replayed
        key = next(iter(first["result"]["inputRequests"]))
        huge = {key: {"action": "accept", "content": {"name": "x" * 1_000_000}},
                "never-asked-" + "k" * 1000: {"junk": True}}
        _, reply = await stateless(http, server, "tools/call", {
            "name": "test_input_required_result_multi_round", "arguments": {},
            "inputResponses": huge, "requestState": state}, caps=caps)
    raw = orjson.dumps(reply)
    assert len(raw) < 300_000 or "error" in reply, len(raw)


# ------------------------------------------------------------------ asking (handshake era)

async def test_answers_to_ids_never_asked_and_to_another_sessions_ask_change_nothing(
        start_mcp_server: StartServer) -> None:
    """Guard: ask ids are per session, so session B answering id 1 cannot complete A's ask;
    A still gets its own question and its call ends with A's answer."""
    server = await start_mcp_server(profile="conformance")
    a, b = await connect("websocket", server), await connect("websocket", server)
    try:
        for peer in (a, b):
            await peer.request("initialize", {
                "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
                "clientInfo": {"name": "p", "version": "0"}}, id=0)
            await peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await a.send({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "test_elicitation", "arguments": {
                          "message": "ok?"}}})
        asked = await a.recv()
        assert asked["method"] == "elicitation/create"
        forged = {"jsonrpc": "2.0", "id": asked["id"],
                  "result": {"action": "accept", "content": {"forged": ESC}}}
        await b.send(forged)                                     # another session's ask
        await a.send({**forged, "id": 999_999})                  # an id never asked
        await a.send({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "decline"}})
        reply = await a.recv_id(7)
        assert "forged" not in orjson.dumps(reply).decode(), reply
        pong = await b.request("ping", id=5)
        assert pong["result"] == {}
    finally:
        await a.close()
        await b.close()


async def test_a_client_that_never_answers_holds_only_its_share_of_asks(
        start_mcp_server: StartServer) -> None:
    """Guard: past ``max_asks`` a session's further asks fail at once (the call is a tool
    error), never queued without bound."""
    server = await start_mcp_server(profile="conformance", max_asks=2, ask_timeout=30)
    peer = await connect("websocket", server)
    try:
        await peer.request("initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "p", "version": "0"}}, id=0)
        await peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for i in range(3):
            await peer.send({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                             "params": {"name": "test_elicitation",
                                        "arguments": {"message": "?"}}})
        async with asyncio.timeout(5):
            while True:
                msg = await peer.recv()
                if msg.get("id") in (10, 11, 12) and "method" not in msg:
                    break
        assert msg["result"]["isError"] is True
        assert "Too many requests to the client" in msg["result"]["content"][0]["text"]
    finally:
        await peer.close()


# ------------------------------------------------------------------ prompts, completion, cursors

async def test_prompts_get_with_hostile_names_and_arguments_is_a_clipped_error(
        start_mcp_server: StartServer) -> None:
    """Guard: an unknown prompt, a megabyte name, a thousand unknown arguments, an
    oversized value: each -32602 whose message stays short and escaped."""
    server = await start_mcp_server()
    peer = await connect("websocket", server)
    try:
        await peer.initialize()
        cases = [
            {"name": ESC + "p" * 1_000_000},
            {"name": "explain_error", "arguments": {f"a{i}" + ESC: "v" for i in range(1000)}},
            {"name": "explain_error", "arguments": {"code": "x" * 1_000_000}},
            {"name": "explain_error", "arguments": [1, 2]},
            {"name": ["not", "a", "string"]},
        ]
        for i, params in enumerate(cases, start=1):
            reply = await peer.request("prompts/get", params, id=i)
            error = reply["error"]
            assert error["code"] == -32602, reply
            assert len(orjson.dumps(error)) < 2000, len(orjson.dumps(error))
    finally:
        await peer.close()


async def test_completion_floods_and_huge_values_stay_cheap(
        start_mcp_server: StartServer) -> None:
    """Guard: a megabyte typed value is cut before completers see it, and 200 completions
    at once from one session are answered (the in-flight bound refuses the excess)."""
    server = await start_mcp_server()
    peer = await connect("websocket", server)
    try:
        await peer.initialize()
        big = {"ref": {"type": "ref/resource", "uri": "server://tools/{name}"},
               "argument": {"name": "name", "value": "e" * 1_000_000}}
        started = time.monotonic()
        reply = await peer.request("completion/complete", big, id=1)
        assert reply["result"]["completion"]["values"] == []
        frames = [{"jsonrpc": "2.0", "id": 100 + i, "method": "completion/complete",
                   "params": {"ref": {"type": "ref/prompt", "name": "explain_error"},
                              "argument": {"name": "code", "value": "-326"}}}
                  for i in range(200)]
        for frame in frames:
            await peer.send(frame)
        answered = 0
        while answered < 200:
            msg = await peer.recv()
            if "id" in msg:
                answered += 1
                assert "result" in msg or msg["error"]["code"] == -32600
        assert time.monotonic() - started < 3
    finally:
        await peer.close()


@pytest.mark.parametrize("cursor", [
    "x" * 1_000_000,
    base64.urlsafe_b64encode(b"prompts:1").decode().rstrip("="),   # another list's
    base64.urlsafe_b64encode(b"tools:99999999999999").decode(),
    base64.urlsafe_b64encode(b"tools:-1").decode(),
    "\u00e9\u00e9\u00e9",
    12345,
], ids=["huge", "other-list", "past-end", "negative", "non-ascii", "number"])
async def test_forged_cursors_are_invalid_params(start_mcp_server: StartServer,
                                                 cursor: Any) -> None:
    """Guard: a cursor we did not issue for that list is -32602, its data at most 100
    characters of it."""
    server = await start_mcp_server(page_size=1)
    peer = await connect("websocket", server)
    try:
        await peer.initialize()
        reply = await peer.request("tools/list", {"cursor": cursor}, id=1)
        assert reply["error"]["code"] == -32602
        assert len(orjson.dumps(reply)) < 1000
    finally:
        await peer.close()


# ------------------------------------------------------------------ templates, subscriptions

@pytest.mark.parametrize("uri", [
    "server://tools/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "server://tools/" + "%1b" * 10_000,
    "server://tools/%ZZ%",
    "server://tools/echo/extra",
    "server://tools/" + "x" * 1_000_000,
], ids=["traversal", "encoded-escapes", "bad-percent", "extra-segment", "huge"])
async def test_reading_through_the_tool_template_refuses_tricks(
        start_mcp_server: StartServer, uri: str) -> None:
    """Guard: percent-encoded tricks name no tool; the error is -32002 and short (the URI
    comes back once, in data, as the unknown-tool error does; control characters travel
    JSON-escaped, and the client escapes what it shows)."""
    server = await start_mcp_server()
    peer = await connect("websocket", server)
    try:
        await peer.initialize()
        reply = await peer.request("resources/read", {"uri": uri}, id=1)
        error = reply["error"]
        assert error["code"] == -32002, reply
        assert len(error["message"]) < 1000
    finally:
        await peer.close()


async def test_a_subscription_to_a_megabyte_uri_is_refused(
        start_mcp_server: StartServer) -> None:
    """Before: a template that matches any id (the conformance profile's
    ``test://template/{id}/data``) let one session watch 1000 URIs of 4 MB each, all kept
    for the life of the session. Now a URI to watch is at most ``MAX_WATCHED_URI``
    characters, on ``resources/subscribe`` and in a ``subscriptions/listen`` filter."""
    from mcp_multi.server.notifier import MAX_WATCHED_URI

    server = await start_mcp_server(profile="conformance")
    uri = "test://template/" + "i" * (MAX_WATCHED_URI + 1) + "/data"
    peer = await connect("websocket", server)
    try:
        await peer.initialize()
        reply = await peer.request("resources/subscribe", {"uri": uri}, id=1)
        assert reply["error"]["code"] == -32602, reply
        assert len(reply["error"]["message"]) < 500
        ok = await peer.request("resources/subscribe",
                                {"uri": "test://template/7/data"}, id=2)
        assert ok["result"] == {}
    finally:
        await peer.close()
    async with aiohttp.ClientSession() as http:
        _, reply = await stateless(http, server, "subscriptions/listen", {
            "notifications": {"resourceSubscriptions": [uri]}})
    assert reply["error"]["code"] == -32602, reply


async def test_subscription_floods_are_bounded_per_session(
        start_mcp_server: StartServer) -> None:
    """Guard: subscribing is for resources that exist, and a listen filter holds at most
    1000 URIs."""
    server = await start_mcp_server()
    peer = await connect("websocket", server)
    try:
        await peer.initialize()
        reply = await peer.request("resources/subscribe", {"uri": "nope://" + ESC}, id=1)
        assert reply["error"]["code"] == -32002
    finally:
        await peer.close()
    async with aiohttp.ClientSession() as http:
        _, reply = await stateless(http, server, "subscriptions/listen", {
            "notifications": {"resourceSubscriptions": [f"u{i}" for i in range(1001)]}})
        assert reply["error"]["code"] == -32602
        _, reply = await stateless(http, server, "subscriptions/listen", {
            "notifications": {"resourceSubscriptions": [1, 2]}})
        assert reply["error"]["code"] == -32602


# ------------------------------------------------------------------ tasks

def _other_address() -> aiohttp.TCPConnector:
    """A connector whose connections come from 127.0.0.2: another client address."""
    return aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))


async def test_one_address_with_many_sessions_cannot_take_every_task(
        start_mcp_server: StartServer) -> None:
    """Before: tasks were counted per session only, so one address opening sessions held
    the server's whole ``max_tasks`` and every other client was refused. Now an address
    holds at most its share (three quarters, as in the session tables)."""
    server = await start_mcp_server(profile="conformance", max_tasks_per_client=2,
                                    max_tasks=4)
    call = {"name": "slow_compute", "arguments": {"seconds": 30}}
    peers = [await connect("websocket", server) for _ in range(2)]
    try:
        outcomes = []
        for peer in peers:
            for i in range(2):
                reply = await peer.modern_request("tools/call", call, id=i + 1,
                                                  **{CAPS: TASKS})
                outcomes.append("result" in reply)
        assert outcomes.count(True) == 3, outcomes  # the fourth is another address's
        async with aiohttp.ClientSession(connector=_other_address()) as http:
            status, reply = await stateless(http, server, "tools/call", call, caps=TASKS)
        assert status == 200 and reply["result"]["resultType"] == "task", reply
    finally:
        for peer in peers:
            await peer.close()


async def test_tasks_update_and_cancel_with_junk_are_invalid_params(
        start_mcp_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    """Guard: forged, long (the id is mirrored in ``Mcp-Name``, so HTTP's header bound
    applies first) and non-string task ids, junk ``inputResponses`` and answers to
    keys never asked: -32602 or ignored, never a traceback; cancelling twice and racing a
    cancel with an update leave the task cancelled."""
    server = await start_mcp_server(profile="conformance")
    caplog.set_level(logging.DEBUG)
    async with aiohttp.ClientSession() as http:
        _, created = await stateless(http, server, "tools/call", {
            "name": "slow_compute", "arguments": {"seconds": 30}}, caps=TASKS)
        task_id = created["result"]["taskId"]
        for params in [{"taskId": "x" * 5000}, {"taskId": None}, {"taskId": "forged-id"},
                       {"taskId": task_id, "inputResponses": [1]},
                       {"taskId": task_id, "inputResponses": "junk"}]:
            _, reply = await stateless(http, server, "tasks/update", params, caps=TASKS)
            assert reply["error"]["code"] == -32602, reply
            assert len(orjson.dumps(reply)) < 1000
        _, reply = await stateless(http, server, "tasks/update", {
            "taskId": task_id, "inputResponses": {"never": {"a": 1}}}, caps=TASKS)
        assert "result" in reply
        replies = await asyncio.gather(*(
            stateless(http, server, method, {"taskId": task_id}, caps=TASKS, request_id=i)
            for i, method in enumerate(["tasks/cancel", "tasks/update", "tasks/cancel"])))
        assert all(r[0] in (200, 400) for r in replies)
        _, got = await stateless(http, server, "tasks/get", {"taskId": task_id}, caps=TASKS)
        assert got["result"]["status"] == "cancelled"
    no_traceback(caplog)


# ------------------------------------------------------------------ Mcp-Param-* headers

async def test_huge_and_many_param_headers_are_refused_cleanly(
        start_mcp_server: StartServer) -> None:
    """Guard: a tool call carrying 50 unknown ``Mcp-Param-*`` headers, a 6 KB one and a
    non-ASCII one gets an HTTP answer (a JSON-RPC error or a result), never a hang or 500."""
    server = await start_mcp_server(profile="conformance")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": enveloped({"name": "route_query", "arguments": {
                "region": "eu", "query": "q"}})}
    base = {"Accept": MCP_ACCEPT, "Content-Type": "application/json",
            **mirrored_headers(body)}
    variants = [
        {**base, **{f"Mcp-Param-X{i}": "v" * 100 for i in range(50)}},
        {**base, "Mcp-Param-Region": "e" * 6000},
        {**base, "Mcp-Param-Region": "=?base64?" + "!" * 100 + "?="},
    ]
    async with aiohttp.ClientSession() as http:
        for headers in variants:
            async with http.post(server.base_url + "/mcp", data=orjson.dumps(body),
                                 headers=headers) as resp:
                assert resp.status in (200, 400, 431), resp.status
                if resp.status != 431:
                    reply = orjson.loads(await resp.read())
                    assert "result" in reply or reply["error"]["code"] in (-32020, -32602)
        raw = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               "Content-Type: application/json\r\n"
               "Accept: application/json, text/event-stream\r\n"
               "Mcp-Param-Region: \xe9\xff\r\n").encode("latin-1")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            data = orjson.dumps(body)
            writer.write(raw + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
            await writer.drain()
            head = await asyncio.wait_for(reader.readline(), 5)
            assert head.split()[1] in (b"200", b"400"), head
        finally:
            writer.close()
