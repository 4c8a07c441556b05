"""Asking the client (sampling, elicitation, roots) over real sockets.

Handshake era: a server-to-client request on the stream of each of the four transports,
answered by the raw peer. 2026-07-28 (Streamable HTTP, stateless): ``input_required`` results
and retries carrying ``inputResponses`` and ``requestState``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .wire import (
    TRANSPORTS,
    RawPeer,
    StdioPeer,
    StreamableHTTPPeer,
    connect,
    enveloped,
    mirrored_headers,
    stdio_args,
)

ALL_CAPS = {"sampling": {}, "elicitation": {"form": {}, "url": {}}, "roots": {}}
SAMPLED = {"role": "assistant", "content": {"type": "text", "text": "Paris"},
           "model": "test-model", "stopReason": "endTurn"}
ASK_TIMEOUT = 1.0


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(profile="conformance", ask_timeout=ASK_TIMEOUT, max_asks=2)


async def open_peer(transport: str, server: RunningServer,
                    capabilities: dict[str, Any] | None = None) -> RawPeer:
    """A handshake-era peer that declared ``capabilities`` (all three by default)."""
    if transport == "stdio":  # a twin of ``server``: the same profile and limits
        peer: RawPeer = await StdioPeer.spawn(*stdio_args(server), "--profile", "conformance",
                                              "--ask-timeout", str(ASK_TIMEOUT),
                                              "--max-asks", "2")
    else:
        peer = await connect(transport, server)
    reply = await peer.request("initialize", {
        "protocolVersion": "2025-11-25",
        "capabilities": ALL_CAPS if capabilities is None else capabilities,
        "clientInfo": {"name": "asking-test", "version": "0"}}, id=0)
    if isinstance(peer, StreamableHTTPPeer):
        peer.version = reply["result"]["protocolVersion"]
    await peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return peer


@pytest.fixture
async def peer(transport: str, server: RunningServer) -> AsyncIterator[RawPeer]:
    p = await open_peer(transport, server)
    yield p
    await p.close()


def call(name: str, arguments: dict[str, Any] | None = None, id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments or {}}}


async def next_request(peer: RawPeer) -> dict[str, Any]:
    """The next server-to-client request (notifications before it are skipped)."""
    while True:
        msg = await peer.recv()
        if "method" in msg and "id" in msg:
            return msg


def text_of(reply: dict[str, Any]) -> str:
    return str(reply["result"]["content"][0]["text"])


# ------------------------------------------------------------------ handshake era

async def test_sampling_round_trip(peer: RawPeer) -> None:
    await peer.send(call("test_sampling", {"prompt": "Capital of France?"}))
    asked = await next_request(peer)
    assert asked["method"] == "sampling/createMessage"
    assert asked["params"] == {"messages": [{"role": "user", "content": {
        "type": "text", "text": "Capital of France?"}}], "maxTokens": 100}
    await peer.send({"jsonrpc": "2.0", "id": asked["id"], "result": SAMPLED})
    reply = await peer.recv_id(1)
    assert text_of(reply) == "LLM response: Paris"


async def test_elicitation_and_roots_round_trips(peer: RawPeer) -> None:
    await peer.send(call("test_elicitation_sep1034_defaults"))
    asked = await next_request(peer)
    schema = asked["params"]["requestedSchema"]
    assert schema["properties"]["age"] == {"type": "integer", "description": "User age",
                                           "default": 30}
    await peer.send({"jsonrpc": "2.0", "id": asked["id"],
                     "result": {"action": "accept", "content": {"name": "Ada"}}})
    assert text_of(await peer.recv_id(1)) == (
        'Elicitation completed: action=accept, content={"name":"Ada"}')

    await peer.send(call("test_list_roots", id=2))
    asked = await next_request(peer)
    assert asked["method"] == "roots/list"
    await peer.send({"jsonrpc": "2.0", "id": asked["id"],
                     "result": {"roots": [{"uri": "file:///work", "name": "work"}]}})
    assert text_of(await peer.recv_id(2)) == "Roots: file:///work"


async def test_client_error_and_malformed_answers_fail_the_tool(peer: RawPeer) -> None:
    await peer.send(call("test_elicitation", {"message": "Who are you?"}))
    asked = await next_request(peer)
    await peer.send({"jsonrpc": "2.0", "id": asked["id"],
                     "error": {"code": -1, "message": "User rejected\nthe request"}})
    reply = await peer.recv_id(1)
    assert reply["result"]["isError"] is True
    assert "refused: User rejected\\nthe request (-1)" in text_of(reply)

    await peer.send(call("test_sampling", {"prompt": "p"}, id=2))
    asked = await next_request(peer)
    await peer.send({"jsonrpc": "2.0", "id": asked["id"], "result": {"text": "no role"}})
    reply = await peer.recv_id(2)
    assert reply["result"]["isError"] is True and "malformed" in text_of(reply)


async def test_undeclared_capability_is_refused(transport: str, server: RunningServer) -> None:
    peer = await open_peer(transport, server, {"elicitation": {}})
    try:
        reply = await peer.request("tools/call", call("test_sampling", {"prompt": "p"})["params"])
        assert reply["error"]["code"] == -32021
        assert reply["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}
        # Form elicitation is declared by {}; URL mode is not.
        reply = await peer.request("tools/call", call("test_url_elicitation")["params"], id=2)
        assert reply["error"]["data"] == {"requiredCapabilities": {"elicitation": {"url": {}}}}
        reply = await peer.request("tools/call", call("test_list_roots")["params"], id=3)
        assert reply["error"]["data"] == {"requiredCapabilities": {"roots": {}}}
    finally:
        await peer.close()


async def test_unknown_answers_are_dropped(peer: RawPeer) -> None:
    for bogus in ({"jsonrpc": "2.0", "id": 999, "result": {}},
                  {"jsonrpc": "2.0", "id": "nobody", "error": {"code": 1, "message": "x"}}):
        await peer.send(bogus)
    await peer.send(call("test_sampling", {"prompt": "p"}))
    asked = await next_request(peer)
    await peer.send({"jsonrpc": "2.0", "id": asked["id"] + 1000, "result": SAMPLED})
    await peer.send({"jsonrpc": "2.0", "id": asked["id"], "result": SAMPLED})
    assert text_of(await peer.recv_id(1)) == "LLM response: Paris"
    # A second answer to the same id answers nothing any more.
    await peer.send({"jsonrpc": "2.0", "id": asked["id"], "result": SAMPLED})
    assert (await peer.request("ping", id=2))["result"] == {}


async def test_timeout_fails_the_ask_and_tells_the_client(peer: RawPeer) -> None:
    await peer.send(call("test_sampling", {"prompt": "p"}))
    asked = await next_request(peer)
    seen: list[dict[str, Any]] = []
    while True:
        msg = await peer.recv()
        seen.append(msg)
        if msg.get("id") == 1:
            break
    assert {"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": asked["id"], "reason": "no answer in time"}} in seen
    assert seen[-1]["result"]["isError"] is True
    assert f"did not answer sampling/createMessage within {ASK_TIMEOUT:g} s" in text_of(
        seen[-1])
    # The late answer is dropped; the session lives on.
    await peer.send({"jsonrpc": "2.0", "id": asked["id"], "result": SAMPLED})
    assert (await peer.request("ping", id=2))["result"] == {}


async def test_cancelling_the_call_cancels_its_ask(peer: RawPeer) -> None:
    await peer.send(call("test_elicitation", {"message": "m"}, id="c1"))
    asked = await next_request(peer)
    await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": "c1"}})
    while True:
        msg = await peer.recv()
        if msg.get("method") == "notifications/cancelled":
            assert msg["params"] == {"requestId": asked["id"],
                                     "reason": "the request was cancelled"}
            break
    # The call is over: its id may be used again, and a late answer is dropped.
    await peer.send({"jsonrpc": "2.0", "id": asked["id"],
                     "result": {"action": "accept", "content": {}}})
    assert (await peer.reuse_id("c1"))["result"] == {}


async def test_outstanding_asks_are_capped_per_session(transport: str,
                                                       server: RunningServer) -> None:
    peer = await open_peer(transport, server)
    try:
        for n in (1, 2):  # max_asks=2
            await peer.send(call("test_list_roots", id=n))
        asks = [await next_request(peer), await next_request(peer)]
        reply = await peer.request("tools/call", call("test_list_roots")["params"], id=3)
        assert reply["result"]["isError"] is True
        assert "Too many requests to the client outstanding (limit 2)" in text_of(reply)
        for asked in asks:
            await peer.send({"jsonrpc": "2.0", "id": asked["id"], "result": {"roots": []}})
        assert text_of(await peer.recv_id(1)) == "Roots: (none)"
        assert text_of(await peer.recv_id(2)) == "Roots: (none)"
    finally:
        await peer.close()


async def test_ending_an_http_session_fails_its_asks(server: RunningServer) -> None:
    peer = await open_peer("http", server)
    assert isinstance(peer, StreamableHTTPPeer)
    await peer.send(call("test_sampling", {"prompt": "p"}))
    await next_request(peer)
    async with peer.http.delete(peer.url, headers=peer.headers()) as resp:
        assert resp.status == 200
    reply = await peer.recv_id(1)
    assert reply["error"]["code"] == -32800
    peer.session_id = None
    await peer.close()


async def test_http_answers_are_posted_and_accepted(server: RunningServer) -> None:
    """On Streamable HTTP the question rides the POST's SSE stream; the answer is a POST of
    its own (202), and one without the session id is refused."""
    peer = await open_peer("http", server)
    assert isinstance(peer, StreamableHTTPPeer)
    try:
        await peer.send(call("test_sampling", {"prompt": "p"}))
        asked = await next_request(peer)
        answer = orjson.dumps({"jsonrpc": "2.0", "id": asked["id"], "result": SAMPLED})
        headers = peer.headers()
        del headers["Mcp-Session-Id"]
        assert (await peer.post(answer, headers)).status == 400
        assert (await peer.post(answer)).status == 202
        assert text_of(await peer.recv_id(1)) == "LLM response: Paris"
        assert any(e.data and '"sampling/createMessage"' in e.data for e in peer.events)
    finally:
        await peer.close()


# ------------------------------------------------------------------ 2026-07-28

async def modern_call(peer: StreamableHTTPPeer, name: str, capabilities: dict[str, Any],
                      id: int = 1, **extra: Any) -> tuple[int, dict[str, Any]]:
    """One stateless tools/call: the HTTP status and the JSON-RPC reply."""
    body = {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": enveloped(
        {"name": name, "arguments": {}, **extra},
        **{"io.modelcontextprotocol/clientCapabilities": capabilities})}
    resp = await peer.post(orjson.dumps(body), peer.headers(body))
    return resp.status, orjson.loads(await resp.read())


@pytest.fixture
async def modern(server: RunningServer) -> AsyncIterator[StreamableHTTPPeer]:
    peer = await connect("http", server, modern=True)
    assert isinstance(peer, StreamableHTTPPeer)
    yield peer
    await peer.close()


async def test_modern_round_trip(modern: StreamableHTTPPeer) -> None:
    status, reply = await modern_call(modern, "test_input_required_result_elicitation", ALL_CAPS)
    result = reply["result"]
    assert status == 200 and result["resultType"] == "input_required"
    assert result["inputRequests"]["user_name"]["method"] == "elicitation/create"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-server"
    state = result["requestState"]
    status, reply = await modern_call(
        modern, "test_input_required_result_elicitation", ALL_CAPS, id=2, requestState=state,
        inputResponses={"user_name": {"action": "accept", "content": {"name": "Ada"}}})
    assert reply["result"]["resultType"] == "complete"
    assert text_of(reply) == "Hello, Ada!"


async def test_modern_multi_round_carries_earlier_answers(modern: StreamableHTTPPeer) -> None:
    tool = "test_input_required_result_multi_round"
    _, first = await modern_call(modern, tool, ALL_CAPS)
    assert list(first["result"]["inputRequests"]) == ["step1"]
    ada = {"action": "accept", "content": {"name": "Ada"}}
    _, second = await modern_call(modern, tool, ALL_CAPS, id=2, inputResponses={"step1": ada},
                                  requestState=first["result"]["requestState"])
    assert list(second["result"]["inputRequests"]) == ["step2"]
    state = second["result"]["requestState"]
    assert state != first["result"]["requestState"]
    # The state's answer wins over a different one sent again; unknown keys are ignored.
    bob = {"action": "accept", "content": {"name": "Bob"}}
    blue = {"action": "accept", "content": {"color": "blue"}}
    _, third = await modern_call(modern, tool, ALL_CAPS, id=3, requestState=state,
                                 inputResponses={"step1": bob, "step2": blue, "extra": {}})
    assert text_of(third) == "Ada likes blue"
    # Without the step2 answer the server asks for it again, not an error.
    _, again = await modern_call(modern, tool, ALL_CAPS, id=4, requestState=state,
                                 inputResponses={"wrong": blue})
    assert list(again["result"]["inputRequests"]) == ["step2"]


async def test_modern_several_inputs_in_one_round(modern: StreamableHTTPPeer) -> None:
    tool = "test_input_required_result_multiple_inputs"
    _, first = await modern_call(modern, tool, ALL_CAPS)
    requests = first["result"]["inputRequests"]
    assert {k: v["method"] for k, v in requests.items()} == {
        "user_name": "elicitation/create", "greeting": "sampling/createMessage",
        "client_roots": "roots/list"}
    answers = {"user_name": {"action": "accept", "content": {"name": "Ada"}},
               "greeting": {**SAMPLED, "content": {"type": "text", "text": "Hi"}},
               "client_roots": {"roots": [{"uri": "file:///r"}]}}
    # Given in two parts: the first retry is asked only the rest.
    _, partial = await modern_call(modern, tool, ALL_CAPS, id=2,
                                   requestState=first["result"]["requestState"],
                                   inputResponses={"user_name": answers["user_name"]})
    assert list(partial["result"]["inputRequests"]) == ["greeting", "client_roots"]
    _, done = await modern_call(modern, tool, ALL_CAPS, id=3,
                                requestState=partial["result"]["requestState"],
                                inputResponses={k: answers[k] for k in ("greeting",
                                                                        "client_roots")})
    assert text_of(done) == "Hi Ada (1 roots)"


async def test_modern_tampered_or_foreign_state_is_refused(modern: StreamableHTTPPeer) -> None:
    tool = "test_input_required_result_tampered_state"
    _, first = await modern_call(modern, tool, ALL_CAPS)
    state = first["result"]["requestState"]
    ok = {"confirm": {"action": "accept", "content": {"ok": True}}}
    status, reply = await modern_call(modern, tool, ALL_CAPS, id=2, inputResponses=ok,
                                      requestState=state + "-TAMPERED")
    assert status == 400 and reply["error"]["code"] == -32602
    assert "integrity" in reply["error"]["message"]
    # A genuine state presented on another request (here: other arguments) is refused too.
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": enveloped(
        {"name": tool, "arguments": {"other": 1}, "inputResponses": ok, "requestState": state},
        **{"io.modelcontextprotocol/clientCapabilities": ALL_CAPS})}
    resp = await modern.post(orjson.dumps(body), mirrored_headers(body) | {
        "Accept": "application/json, text/event-stream", "Content-Type": "application/json"})
    assert resp.status == 400
    assert "another request" in (await resp.json())["error"]["message"]
    status, reply = await modern_call(modern, tool, ALL_CAPS, id=4, inputResponses=ok,
                                      requestState=state)
    assert status == 200 and text_of(reply) == "Confirmed: True"


async def test_modern_bad_input_responses(modern: StreamableHTTPPeer) -> None:
    tool = "test_input_required_result_elicitation"
    for bad in (None, {"user_name": 12345}, {"user_name": {"action": "perhaps"}}):
        status, reply = await modern_call(modern, tool, ALL_CAPS, inputResponses=bad)
        assert status == 400 and reply["error"]["code"] == -32602, reply


async def test_modern_capabilities_come_from_the_envelope(modern: StreamableHTTPPeer) -> None:
    status, reply = await modern_call(modern, "test_missing_capability", {})
    assert status == 400
    assert reply["error"]["code"] == -32021
    assert reply["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}
    status, reply = await modern_call(modern, "test_url_elicitation", {"elicitation": {}})
    assert reply["error"]["data"] == {"requiredCapabilities": {"elicitation": {"url": {}}}}
    _, reply = await modern_call(modern, "test_url_elicitation", {"elicitation": {"url": {}}})
    assert reply["result"]["inputRequests"]["elicitation-1"]["params"]["mode"] == "url"
    _, reply = await modern_call(modern, "test_input_required_result_capabilities",
                                 {"sampling": {}})
    assert list(reply["result"]["inputRequests"]) == ["summary"]


async def test_modern_stream_sessions_use_input_required(server: RunningServer) -> None:
    """A WebSocket session serving 2026-07-28 asks the same way: never a request of its own."""
    peer = await connect("websocket", server)
    try:
        reply = await peer.request("tools/call", enveloped(
            {"name": "test_streaming_elicitation", "arguments": {}},
            **{"io.modelcontextprotocol/clientCapabilities": {"elicitation": {}}}))
        assert reply["result"]["resultType"] == "input_required"
        assert list(reply["result"]["inputRequests"]) == ["name"]
    finally:
        await peer.close()


async def test_asks_do_not_cross_sessions(server: RunningServer) -> None:
    """An answer sent on another session does not reach the one that asked."""
    asking = await open_peer("websocket", server)
    other = await open_peer("websocket", server)
    try:
        await asking.send(call("test_list_roots"))
        asked = await next_request(asking)
        await other.send({"jsonrpc": "2.0", "id": asked["id"], "result": {"roots": []}})
        assert (await other.request("ping", id=5))["result"] == {}
        await asking.send({"jsonrpc": "2.0", "id": asked["id"],
                           "result": {"roots": [{"uri": "file:///mine"}]}})
        assert text_of(await asking.recv_id(1)) == "Roots: file:///mine"
    finally:
        await asking.close()
        await other.close()


async def test_stdin_ending_fails_the_asks_at_once(server: RunningServer) -> None:
    """A stdio client that closes stdin can no longer answer: its asks fail now, and the
    server exits without waiting out its drain time for them."""
    peer = await open_peer("stdio", server)
    assert isinstance(peer, StdioPeer) and peer.proc.stdin is not None
    await peer.send(call("test_sampling", {"prompt": "p"}))
    await next_request(peer)
    started = asyncio.get_running_loop().time()
    peer.proc.stdin.close()
    reply = await peer.recv_id(1)
    assert reply["result"]["isError"] is True
    assert "stdin ended before the client answered" in text_of(reply)
    await peer.close()
    assert asyncio.get_running_loop().time() - started < ASK_TIMEOUT * 5


# ------------------------------------------------------------------ a request other than tools/call

PROMPT = "test_input_required_result_prompt"


async def test_a_prompt_asks_over_the_stream(peer: RawPeer) -> None:
    await peer.send({"jsonrpc": "2.0", "id": 1, "method": "prompts/get",
                     "params": {"name": PROMPT}})
    asked = await next_request(peer)
    assert asked["method"] == "elicitation/create"
    assert asked["params"]["requestedSchema"]["required"] == ["context"]
    await peer.send({"jsonrpc": "2.0", "id": asked["id"],
                     "result": {"action": "accept", "content": {"context": "maths"}}})
    reply = await peer.recv_id(1)
    assert reply["result"]["messages"][0]["content"]["text"] == (
        "Answer with this context in mind: maths")


async def test_a_prompt_answers_input_required(modern: StreamableHTTPPeer) -> None:
    async def get(id: int, **extra: Any) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": id, "method": "prompts/get", "params": enveloped(
            {"name": PROMPT, **extra},
            **{"io.modelcontextprotocol/clientCapabilities": ALL_CAPS})}
        resp = await modern.post(orjson.dumps(body), modern.headers(body))
        assert resp.status == 200
        reply: dict[str, Any] = orjson.loads(await resp.read())
        return reply["result"]

    first = await get(1)
    assert first["resultType"] == "input_required"
    assert list(first["inputRequests"]) == ["user_context"]
    done = await get(2, requestState=first["requestState"], inputResponses={
        "user_context": {"action": "accept", "content": {"context": "maths"}}})
    assert done["resultType"] == "complete"
    assert done["messages"][0]["content"]["text"].endswith("maths")
    # Without the capability the prompt is refused as a tool would be (-32021).
    body = {"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": enveloped(
        {"name": PROMPT}, **{"io.modelcontextprotocol/clientCapabilities": {}})}
    resp = await modern.post(orjson.dumps(body), modern.headers(body))
    assert orjson.loads(await resp.read())["error"]["code"] == -32021
