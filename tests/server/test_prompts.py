"""Prompts over every transport, in both eras: listing, getting with arguments (required ones
checked), embedded resources and images, and the capability that announces them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .wire import TRANSPORTS, RawPeer, connect

DEMO = ["explain_tool_call", "explain_error"]
FIXTURES = ["test_simple_prompt", "test_prompt_with_arguments",
            "test_prompt_with_embedded_resource", "test_prompt_with_image",
            "test_input_required_result_prompt"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(name="prompt-server", profile="conformance")


@pytest.fixture
async def peer(transport: str, server: RunningServer) -> AsyncIterator[RawPeer]:
    p = await connect(transport, server)
    await p.initialize()
    yield p
    await p.close()


@pytest.fixture
async def modern_peer(transport: str, server: RunningServer) -> AsyncIterator[RawPeer]:
    p = await connect(transport, server, modern=True)
    yield p
    await p.close()


async def test_capabilities_declare_prompts_and_completions(transport: str,
                                                            server: RunningServer) -> None:
    p = await connect(transport, server)
    try:
        caps = (await p.initialize())["result"]["capabilities"]
        assert caps["prompts"] == {"listChanged": True} and caps["completions"] == {}
        assert caps["resources"]["subscribe"] is True
    finally:
        await p.close()
    p = await connect(transport, server, modern=True)
    try:
        caps = (await p.modern_request("server/discover"))["result"]["capabilities"]
        assert caps["prompts"] == {"listChanged": True} and caps["completions"] == {}
        assert "subscribe" not in caps["resources"]
    finally:
        await p.close()


async def test_list_shows_ours_and_the_profiles(peer: RawPeer) -> None:
    prompts = (await peer.request("prompts/list"))["result"]["prompts"]
    assert [p["name"] for p in prompts] == DEMO + FIXTURES
    assert all(p["description"] for p in prompts)
    by_name = {p["name"]: p for p in prompts}
    assert by_name["explain_tool_call"]["arguments"] == [
        {"name": "tool", "description": "The tool's name", "required": True},
        {"name": "arguments", "description": "The call's arguments as a JSON object",
         "required": False}]


async def test_explain_tool_call_embeds_the_tool_and_checks_arguments(peer: RawPeer) -> None:
    reply = await peer.request("prompts/get", {"name": "explain_tool_call", "arguments": {
        "tool": "echo", "arguments": '{"message": 5}'}})
    messages = reply["result"]["messages"]
    resource = messages[0]["content"]["resource"]
    assert messages[0]["role"] == "user" and messages[0]["content"]["type"] == "resource"
    assert resource["uri"] == "server://tools/echo"
    assert orjson.loads(resource["text"])["inputSchema"]["required"] == ["message"]
    ask = messages[1]["content"]["text"]
    assert "`echo`" in ask and "message: 5 is not of type 'string'" in ask
    fine = await peer.request("prompts/get", {"name": "explain_tool_call", "arguments": {
        "tool": "echo", "arguments": '{"message": "hi"}'}})
    assert "satisfy the input schema" in fine["result"]["messages"][1]["content"]["text"]


@pytest.mark.parametrize("params, says", [
    ({"name": "explain_tool_call"}, "requires tool"),
    ({"name": "explain_tool_call", "arguments": {}}, "requires tool"),
    ({"name": "test_prompt_with_arguments", "arguments": {"arg1": "a"}}, "requires arg2"),
    ({"name": "nope"}, "unknown prompt 'nope'"),
    ({}, '"name" must be a string'),
    ({"name": "explain_error", "arguments": {"code": 1}}, "'code' must be a string"),
    ({"name": "explain_error", "arguments": {"code": "1", "colour": "red"}},
     "has no argument 'colour'"),
    ({"name": "explain_error", "arguments": ["-32602"]}, '"arguments" must be an object'),
    ({"name": "explain_tool_call", "arguments": {"tool": "nope"}}, "no tool 'nope'"),
    ({"name": "explain_tool_call", "arguments": {"tool": "echo", "arguments": "{"}},
     "is not JSON"),
    ({"name": "explain_tool_call", "arguments": {"tool": "echo", "arguments": "[]"}},
     "must be a JSON object"),
])
async def test_bad_gets_are_invalid_params(peer: RawPeer, params: dict[str, Any],
                                           says: str) -> None:
    error = (await peer.request("prompts/get", params))["error"]
    assert error["code"] == -32602 and says in error["message"], error
    assert (await peer.request("ping", id=2))["result"] == {}  # the session lives on


async def test_fixture_prompts(peer: RawPeer) -> None:
    simple = (await peer.request("prompts/get", {"name": "test_simple_prompt"}))["result"]
    assert simple["messages"] == [{"role": "user", "content": {
        "type": "text", "text": "This is a simple prompt for testing."}}]
    args = (await peer.request("prompts/get", {"name": "test_prompt_with_arguments",
                                               "arguments": {"arg1": "hello",
                                                             "arg2": "world"}}))["result"]
    assert args["messages"][0]["content"]["text"] == \
        "Prompt with arguments: arg1='hello', arg2='world'"
    emb = (await peer.request("prompts/get", {"name": "test_prompt_with_embedded_resource",
                                              "arguments": {"resourceUri": "test://x"}}))
    assert emb["result"]["messages"][0]["content"]["resource"]["uri"] == "test://x"
    image = (await peer.request("prompts/get", {"name": "test_prompt_with_image"}))["result"]
    content = image["messages"][0]["content"]
    assert content["type"] == "image" and content["mimeType"] == "image/png"
    assert content["data"].startswith("iVBORw0KGgo")  # a PNG's signature, base64


async def test_modern_prompts(modern_peer: RawPeer) -> None:
    listed = (await modern_peer.modern_request("prompts/list"))["result"]
    assert [p["name"] for p in listed["prompts"]] == DEMO + FIXTURES
    assert listed["resultType"] == "complete"
    assert listed["ttlMs"] == 300_000 and listed["cacheScope"] == "public"
    got = (await modern_peer.modern_request("prompts/get", {
        "name": "explain_error", "arguments": {"code": "-32602"}}, id=2))["result"]
    assert "Invalid params" in got["messages"][0]["content"]["text"]
    assert "ttlMs" not in got
    missing = await modern_peer.modern_request("prompts/get", {"name": "explain_error"}, id=3)
    assert missing["error"]["code"] == -32602


async def test_the_seed_server_keeps_its_tools_and_resources(mcp_server: RunningServer) -> None:
    """Our demo prompts and template join the seed's server without changing its lists."""
    p = await connect("websocket", mcp_server)
    try:
        await p.initialize()
        tools = (await p.request("tools/list"))["result"]
        assert [t["name"] for t in tools["tools"]] == [
            "echo", "get_time", "list_files", "run_command", "math_calc"]
        assert "nextCursor" not in tools
        resources = (await p.request("resources/list", id=2))["result"]
        assert resources == {"resources": mcp_server.state.dispatcher.resources.list_resources()}
        assert [r["uri"] for r in resources["resources"]] == ["server://info", "server://stats"]
        prompts = (await p.request("prompts/list", id=3))["result"]["prompts"]
        assert [q["name"] for q in prompts] == DEMO
    finally:
        await p.close()
