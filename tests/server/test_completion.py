"""``completion/complete`` for prompt arguments and template variables, over every transport
and in both eras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer
from .wire import TRANSPORTS, RawPeer, connect


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server(start_mcp_server: StartServer) -> RunningServer:
    return await start_mcp_server(name="completion-server", profile="conformance")


@pytest.fixture
async def peer(transport: str, server: RunningServer) -> AsyncIterator[RawPeer]:
    p = await connect(transport, server)
    await p.initialize()
    yield p
    await p.close()


def prompt(name: str, argument: str, value: str) -> dict[str, Any]:
    return {"ref": {"type": "ref/prompt", "name": name},
            "argument": {"name": argument, "value": value}}


def template(uri: str, argument: str, value: str) -> dict[str, Any]:
    return {"ref": {"type": "ref/resource", "uri": uri},
            "argument": {"name": argument, "value": value}}


@pytest.mark.parametrize("params, values", [
    (prompt("explain_tool_call", "tool", "e"), ["echo"]),
    (prompt("explain_tool_call", "tool", "MA"), ["math_calc"]),
    (prompt("explain_tool_call", "tool", "test_tool_with_"), [
        "test_tool_with_logging", "test_tool_with_progress", "test_tool_with_task"]),
    (prompt("explain_error", "code", "-3202"), ["-32020", "-32021", "-32022"]),
    (prompt("explain_error", "message", "x"), []),  # an argument without a completer
    (prompt("test_prompt_with_arguments", "arg1", "par"), ["paris", "park", "party"]),
    (prompt("test_prompt_with_arguments", "arg1", "test"), []),
    (template("server://tools/{name}", "name", "get"), ["get_time"]),
    (template("test://template/{id}/data", "id", "12"), ["123", "124"]),
])
async def test_completes(peer: RawPeer, params: dict[str, Any], values: list[str]) -> None:
    completion = (await peer.request("completion/complete", params))["result"]["completion"]
    assert completion == {"values": values, "total": len(values), "hasMore": False}


@pytest.mark.parametrize("params, says", [
    (prompt("nope", "x", ""), "unknown prompt 'nope'"),
    (prompt("explain_error", "colour", ""), "has no argument 'colour'"),
    (template("server://nope/{x}", "x", ""), "no resource template server://nope/{x}"),
    (template("server://tools/{name}", "id", ""), "has no variable id"),
    ({"ref": {"type": "ref/tool", "name": "echo"}, "argument": {"name": "a", "value": ""}},
     '"ref.type" must be'),
    ({"ref": {"type": "ref/prompt", "name": "explain_error"}}, '"argument" must be'),
    ({"ref": "explain_error", "argument": {"name": "code", "value": ""}}, '"ref" must be'),
    ({**prompt("explain_error", "code", ""), "context": {"arguments": {"a": 1}}},
     '"context.arguments"'),
])
async def test_bad_requests_are_invalid_params(peer: RawPeer, params: dict[str, Any],
                                               says: str) -> None:
    error = (await peer.request("completion/complete", params))["error"]
    assert error["code"] == -32602 and says in error["message"], error


async def test_context_is_accepted(peer: RawPeer) -> None:
    params = {**prompt("test_prompt_with_arguments", "arg2", "w"),
              "context": {"arguments": {"arg1": "paris"}}}
    reply = await peer.request("completion/complete", params)
    assert reply["result"]["completion"]["values"] == []


async def test_modern_completion(transport: str, server: RunningServer) -> None:
    p = await connect(transport, server, modern=True)
    try:
        reply = await p.modern_request("completion/complete",
                                       prompt("explain_tool_call", "tool", "run"))
        assert reply["result"]["completion"]["values"] == ["run_command"]
        assert reply["result"]["resultType"] == "complete"
    finally:
        await p.close()
