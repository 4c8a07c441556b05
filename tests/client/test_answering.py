"""The client answers what servers ask: sampling, elicitation, roots, ``input_required``.

The policies are checked on their own first (the sampling command is a real child process);
then our client answers a server of the official SDK over SSE, Streamable HTTP and stdio,
and a raw aiohttp WebSocket server, and retries scripted 2026-07-28 ``input_required``
results on a real socket.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web

from mcp_multi.client.answering import (
    ClientHandlers,
    Declined,
    answer_server_request,
    elicitation_defaults,
    policy_handlers,
    run_reply_command,
)
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.protocol.errors import InputRequired, InternalError, MethodNotFound
from mcp_multi.transport import stdio_url

from ..transport.http_script import Recorded, StartHTTPScript, json_reply
from .sdk_asking_server import FORM, build_asking_server
from .test_sdk_interop import serving


def _uri(path: Path) -> str:
    return path.resolve().as_uri()


# The SDK warns that sampling and roots are deprecated as of 2026-07-28; we test them anyway.
pytestmark = pytest.mark.filterwarnings("ignore:The .* capability is deprecated")
ASKING_STDIO_SERVER = Path(__file__).with_name("sdk_asking_server.py")
SEP1034 = {"type": "object", "required": [], "properties": {
    "name": {"type": "string", "default": "John Doe"},
    "age": {"type": "integer", "default": 30},
    "score": {"type": "number", "default": 95.5},
    "status": {"type": "string", "enum": ["active", "inactive"], "default": "active"},
    "verified": {"type": "boolean", "default": True}}}
SAMPLING = {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
            "maxTokens": 5}


# ------------------------------------------------------------------ policies

def test_defaults_accept_a_form_whose_defaults_fit() -> None:
    content = elicitation_defaults({"message": "m", "requestedSchema": SEP1034})
    assert content == {"name": "John Doe", "age": 30, "score": 95.5, "status": "active",
                       "verified": True}


@pytest.mark.parametrize("params", [
    {"requestedSchema": {"type": "object", "required": ["name"],
                         "properties": {"name": {"type": "string"}}}},
    {"requestedSchema": {"type": "object", "properties": {
        "status": {"type": "string", "enum": ["a", "b"], "default": "c"}}}},
    {"requestedSchema": {"type": "object", "properties": {
        "age": {"type": "integer", "minimum": 18, "default": 3}}}},
    {"requestedSchema": {"type": "object", "properties": {
        "age": {"type": "integer", "default": 1.5}}}},
    {"requestedSchema": {"type": "object", "properties": {
        "ok": {"type": "boolean", "default": "yes"}}}},
    {"mode": "url", "url": "https://example.com/login", "message": "Log in"},
    {"requestedSchema": "junk"},
], ids=["required-without-default", "enum", "minimum", "integer", "boolean", "url", "junk"])
def test_defaults_decline_what_they_cannot_fill(params: dict[str, Any]) -> None:
    assert elicitation_defaults(params) is None


async def test_policies_answer_as_told(tmp_path: Path) -> None:
    handlers = policy_handlers("reply:Paris", "defaults", [tmp_path])
    assert handlers.capabilities() == {"sampling": {}, "elicitation": {"form": {}, "url": {}},
                                       "roots": {"listChanged": True}}
    sampled = await answer_server_request(handlers, "s", "sampling/createMessage", SAMPLING)
    assert sampled["role"] == "assistant" and sampled["content"]["text"] == "Paris"
    elicited = await answer_server_request(handlers, "s", "elicitation/create",
                                           {"message": "m", "requestedSchema": FORM})
    assert elicited == {"action": "accept", "content": {"name": "Ada", "age": 36}}
    url = await answer_server_request(handlers, "s", "elicitation/create",
                                      {"mode": "url", "url": "https://x", "message": "m"})
    assert url == {"action": "decline"}
    roots = await answer_server_request(handlers, "s", "roots/list", {})
    assert roots == {"roots": [{"uri": _uri(tmp_path), "name": tmp_path.name}]}
    assert await answer_server_request(handlers, "s", "ping", None) == {}
    with pytest.raises(MethodNotFound):
        await answer_server_request(handlers, "s", "no/such", {})
    declining = policy_handlers()
    with pytest.raises(Declined) as refused:
        await answer_server_request(declining, "s", "sampling/createMessage", SAMPLING)
    assert refused.value.code == -1
    assert await answer_server_request(declining, "s", "roots/list", {}) == {"roots": []}
    with pytest.raises(MethodNotFound):
        await answer_server_request(ClientHandlers(), "s", "sampling/createMessage", SAMPLING)


@pytest.mark.parametrize(("sampling", "elicitation", "roots"), [
    ("maybe", "decline", []), ("reply", "decline", []), ("command:", "decline", []),
    ("decline", "accept", []), ("decline", "decline", ["/no/such/dir"]),
])
def test_bad_policies_are_refused(sampling: str, elicitation: str, roots: list[str]) -> None:
    with pytest.raises(ValueError, match=r"sampling|elicitation|roots"):
        policy_handlers(sampling, elicitation, roots)


async def test_a_failing_handler_is_an_internal_error() -> None:
    async def broken(server: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    async def wrong(server: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"text": "not a result"}

    async def slow(server: str, params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(30)
        return {}

    for handler in (broken, wrong):
        with pytest.raises(InternalError):
            await answer_server_request(ClientHandlers(sampling=handler), "s",
                                        "sampling/createMessage", SAMPLING)
    with pytest.raises(InternalError, match=r"within 0\.1s"):
        await answer_server_request(ClientHandlers(elicitation=slow, timeout=0.1), "s",
                                    "elicitation/create", {})


PYTHON = [sys.executable, "-c"]


async def test_the_sampling_command_gets_the_request_and_gives_the_reply() -> None:
    text = [*PYTHON, "import json,sys; p=json.load(sys.stdin); print('n=%d' % p['maxTokens'])"]
    handlers = policy_handlers("command:" + shlex.join(text))
    sampled = await answer_server_request(handlers, "s", "sampling/createMessage", SAMPLING)
    assert sampled["content"] == {"type": "text", "text": "n=5"}
    whole = [*PYTHON, "import json; print(json.dumps({'role': 'assistant', 'model': 'm', "
                      "'content': {'type': 'text', 'text': 'whole'}}))"]
    assert orjson.loads(await run_reply_command(whole, {}))["model"] == "m"


@pytest.mark.parametrize(("code", "match"), [
    ("import time; time.sleep(30)", r"ran over 0\.5s"),
    ("import sys; sys.stdout.write('x' * 5000)", "over 100 bytes"),
    ("import sys; sys.exit(3)", "exit code 3"),
])
async def test_a_sampling_command_is_bounded(code: str, match: str) -> None:
    with pytest.raises(InternalError, match=match):
        await run_reply_command([*PYTHON, code], {}, timeout=0.5, limit=100)


# ------------------------------------------------------------------ against real servers


@asynccontextmanager
async def asking_server(kind: str) -> AsyncIterator[str]:
    """The SDK asking server over ``kind``; yields the client's target for it."""
    if kind == "stdio":
        yield stdio_url([sys.executable, str(ASKING_STDIO_SERVER)])
        return
    server = build_asking_server()
    app = (server.streamable_http_app(host="127.0.0.1") if kind == "http"
           else server.sse_app(host="127.0.0.1"))
    async with serving(app) as port:
        yield f"http://127.0.0.1:{port}/{'mcp' if kind == 'http' else 'sse'}"


@pytest.mark.parametrize("kind", ["http", "sse", "stdio"])
async def test_the_sdk_servers_requests_are_answered(kind: str, tmp_path: Path) -> None:
    handlers = policy_handlers("reply:Paris", "defaults", [tmp_path])
    async with asking_server(kind) as target, MultiServerMCPClient(
            timeout=15, handlers=handlers, protocol_version="2025-11-25") as client:
        await client.add("sdk", target)
        said = await client.call("sdk", "ask_llm", {"prompt": "capital of France?"})
        assert said["content"][0]["text"] == "model said: Paris"
        form = await client.call("sdk", "ask_form", {})
        assert form["content"][0]["text"] == "accept [('age', 36), ('name', 'Ada')]"
        roots = await client.call("sdk", "ask_roots", {})
        assert roots["content"][0]["text"] == f"roots: {_uri(tmp_path)}"
        client.handlers = policy_handlers()  # swapped at run time: read at each request
        refused = await client.call("sdk", "ask_llm", {"prompt": "again?"})
        assert refused["content"][0]["text"].startswith("refused: -1 ")
        declined = await client.call("sdk", "ask_form", {})
        assert declined["content"][0]["text"] == "decline []"


async def _websocket_asker(request: web.Request) -> web.WebSocketResponse:
    """A raw WebSocket MCP server whose one tool call asks the client twice first."""
    ws = web.WebSocketResponse(protocols=("mcp",))
    await ws.prepare(request)
    answers: dict[Any, Any] = {}
    async for frame in ws:
        if frame.type != WSMsgType.TEXT:
            break
        message = orjson.loads(frame.data)
        method = message.get("method")
        if "id" in message and method is None:
            answers[message["id"]] = message
            if len(answers) == 4:  # the three answers, and the call to answer
                call_id = answers.pop("call")
                await ws.send_json({"jsonrpc": "2.0", "id": call_id, "result": {
                    "content": [{"type": "text", "text": orjson.dumps(answers).decode()}]}})
        elif method == "initialize":
            await ws.send_json({"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                "serverInfo": {"name": "ws-asker", "version": "1"},
                "echoedCapabilities": message["params"]["capabilities"]}})
        elif method == "tools/call":
            answers["call"] = message["id"]
            await ws.send_json({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage",
                                "params": SAMPLING})
            await ws.send_json({"jsonrpc": "2.0", "id": "s2", "method": "bogus/method"})
            await ws.send_json({"jsonrpc": "2.0", "id": "s3", "method": "ping"})
    return ws


async def test_a_websocket_servers_requests_are_answered() -> None:
    app = web.Application()
    app.router.add_get("/ws", _websocket_asker)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with MultiServerMCPClient(timeout=10,
                                        handlers=policy_handlers("reply:hello")) as client:
            await client.add("ws", f"127.0.0.1:{port}", "websocket")
            result = await client.call("ws", "anything", {})
    finally:
        await runner.cleanup()
    answers = orjson.loads(result["content"][0]["text"])
    assert answers["s1"]["result"]["content"]["text"] == "hello"
    assert answers["s2"]["error"]["code"] == -32601
    assert answers["s3"]["result"] == {}


# ------------------------------------------------------------------ 2026-07-28 input_required

DISCOVERED = {"resultType": "complete", "supportedVersions": ["2026-07-28"],
              "capabilities": {"tools": {}},
              "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "mrtr", "version": "1"}}}


def _ask(round_number: int) -> dict[str, Any]:
    if round_number == 0:
        return {"resultType": "input_required", "requestState": "state-1", "inputRequests": {
            "who": {"method": "elicitation/create",
                    "params": {"message": "Who?", "requestedSchema": FORM}},
            "llm": {"method": "sampling/createMessage", "params": SAMPLING}}}
    return {"resultType": "input_required",  # no requestState: the retry must carry none
            "inputRequests": {"where": {"method": "roots/list", "params": {}}}}


async def test_input_required_is_answered_and_retried_round_after_round(
        start_http_script: StartHTTPScript, tmp_path: Path) -> None:
    script = await start_http_script()
    rounds: list[Recorded] = []

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "server/discover":
            return json_reply(DISCOVERED, recorded)
        rounds.append(recorded)
        if len(rounds) <= 2:
            return json_reply(_ask(len(rounds) - 1), recorded)
        return json_reply({"resultType": "complete",
                           "content": [{"type": "text", "text": "done"}]}, recorded)

    script.post = post
    handlers = policy_handlers("reply:Paris", "defaults", [tmp_path])
    async with MultiServerMCPClient(timeout=10, handlers=handlers) as client:
        await client.add("s", script.url)
        result = await client.call("s", "book", {"city": "x"})
    assert result == {"content": [{"type": "text", "text": "done"}]}
    first, second, third = (r.body for r in rounds)
    assert len({first["id"], second["id"], third["id"]}) == 3
    assert "inputResponses" not in first["params"] and "requestState" not in first["params"]
    assert second["params"]["requestState"] == "state-1"
    assert second["params"]["arguments"] == {"city": "x"}
    assert second["params"]["inputResponses"]["who"] == {
        "action": "accept", "content": {"name": "Ada", "age": 36}}
    assert second["params"]["inputResponses"]["llm"]["content"]["text"] == "Paris"
    assert "requestState" not in third["params"]
    assert third["params"]["inputResponses"] == {
        "where": {"roots": [{"uri": _uri(tmp_path), "name": tmp_path.name}]}}
    capabilities = first["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]
    assert set(capabilities) == {"sampling", "elicitation", "roots", "extensions"}


async def test_a_server_that_keeps_asking_is_given_up_on(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.rpc_method == "server/discover":
            return json_reply(DISCOVERED, recorded)
        return json_reply(_ask(1), recorded)

    script.post = post
    async with MultiServerMCPClient(timeout=10, handlers=policy_handlers()) as client:
        await client.add("s", script.url)
        with pytest.raises(InputRequired, match=r"still needs input after 8 rounds "
                                                r"\(roots/list\)"):
            await client.call("s", "forever", {})
    assert len(script.of("POST", "tools/call")) == 9
