"""The official ``mcp`` SDK's client answers our server's questions (sampling, elicitation,
roots) through its callbacks: over Streamable HTTP and stdio in both eras (server-to-client
requests in the handshake era, ``input_required`` rounds in 2026-07-28), and over legacy SSE."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, ClientSession, StdioServerParameters, types
from mcp.client.sse import sse_client

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer


class Answers:
    """The SDK callbacks, answering as a person and a model would, and what they were asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def sampling(self, context: Any, params: types.CreateMessageRequestParams
                       ) -> types.CreateMessageResult:
        self.asked.append("sampling")
        return types.CreateMessageResult(
            role="assistant", model="test-model", stop_reason="endTurn",
            content=types.TextContent(type="text", text="Paris"))

    async def elicitation(self, context: Any, params: types.ElicitRequestParams
                          ) -> types.ElicitResult:
        self.asked.append("elicitation")
        properties = params.requested_schema["properties"]  # type: ignore[union-attr]
        content = {"username": "ada", "email": "ada@example.com"} if "email" in properties \
            else {"name": "Ada"}
        return types.ElicitResult(action="accept", content=content)

    async def roots(self, context: Any) -> types.ListRootsResult:
        self.asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri="file:///work", name="work")])

    def callbacks(self) -> dict[str, Any]:
        return {"sampling_callback": self.sampling, "elicitation_callback": self.elicitation,
                "list_roots_callback": self.roots}


def _text(result: Any) -> str:
    return str(result.content[0].text)


async def exercise(client: Client | ClientSession, answers: Answers) -> None:
    if isinstance(client, Client):  # the era changes how the questions travel, not the answers
        assert client.protocol_version in ("2025-11-25", "2026-07-28")
    sampled = await client.call_tool("test_sampling", {"prompt": "Capital of France?"})
    assert _text(sampled) == "LLM response: Paris" and not sampled.is_error
    elicited = await client.call_tool("test_elicitation", {"message": "Who are you?"})
    assert _text(elicited) == ('User response: action=accept, '
                               'content={"username":"ada","email":"ada@example.com"}')
    roots = await client.call_tool("test_list_roots", {})
    assert _text(roots) == "Roots: file:///work"
    several = await client.call_tool("test_input_required_result_multiple_inputs", {})
    assert _text(several) == "Paris Ada (1 roots)"
    assert answers.asked[:3] == ["sampling", "elicitation", "roots"]
    assert sorted(answers.asked[3:]) == ["elicitation", "roots", "sampling"]


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_streamable_http(start_mcp_server: StartServer, mode: str) -> None:
    server: RunningServer = await start_mcp_server(profile="conformance")
    answers = Answers()
    async with Client(server.base_url + "/mcp", mode=mode,  # type: ignore[arg-type]
                      **answers.callbacks()) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        await exercise(client, answers)


async def test_stdio(mode: str, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_multi.server", "--stdio", "--profile", "conformance",
              "--root", str(tmp_path), "--log-level", "WARNING"])
    answers = Answers()
    async with Client(params, mode=mode, **answers.callbacks()) as client:  # type: ignore[arg-type]
        await exercise(client, answers)


async def test_legacy_sse(start_mcp_server: StartServer) -> None:
    server: RunningServer = await start_mcp_server(profile="conformance")
    answers = Answers()
    async with sse_client(server.base_url + "/sse") as (read, write), \
            ClientSession(read, write, **answers.callbacks()) as session:
        await session.initialize()
        await exercise(session, answers)
