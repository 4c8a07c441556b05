"""The official ``mcp`` SDK's clients use our prompts, templates, completions and
subscriptions: over Streamable HTTP in both eras, over legacy SSE, and over stdio."""

from __future__ import annotations

import asyncio
import sys
import warnings
from pathlib import Path
from typing import Any

import orjson
import pytest
from mcp import Client, ClientSession, MCPError, StdioServerParameters, types
from mcp.client.sse import sse_client

from mcp_multi.server.app import RunningServer

from ..conftest import StartServer

WATCHED = "test://watched-resource"
TIMEOUT = 10.0


class Inbox:
    """The notifications an SDK client surfaces, to wait on."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def __call__(self, message: Any) -> None:
        await self.queue.put(message)

    async def next_of(self, kind: type) -> Any:
        while True:
            message = await asyncio.wait_for(self.queue.get(), TIMEOUT)
            if isinstance(message, kind):
                return message


async def _features(client: Client | ClientSession) -> None:
    prompts = await client.list_prompts()
    names = [p.name for p in prompts.prompts]
    assert names[:2] == ["explain_tool_call", "explain_error"]
    assert "test_prompt_with_arguments" in names
    got = await client.get_prompt("test_prompt_with_arguments",
                                  {"arg1": "hello", "arg2": "world"})
    assert got.messages[0].content.text == \
        "Prompt with arguments: arg1='hello', arg2='world'"  # type: ignore[union-attr]
    explained = await client.get_prompt("explain_tool_call", {"tool": "math_calc"})
    embedded = explained.messages[0].content
    assert isinstance(embedded, types.EmbeddedResource)
    assert str(embedded.resource.uri) == "server://tools/math_calc"
    with pytest.raises(MCPError) as missing:
        await client.get_prompt("test_prompt_with_arguments", {"arg1": "x"})
    assert missing.value.code == -32602
    templates = await client.list_resource_templates()
    assert [t.uri_template for t in templates.resource_templates] == [
        "server://tools/{name}", "test://template/{id}/data"]
    read = await client.read_resource("test://template/42/data")
    assert orjson.loads(read.contents[0].text)["id"] == "42"  # type: ignore[union-attr]
    done = await client.complete(types.PromptReference(type="ref/prompt",
                                                       name="test_prompt_with_arguments"),
                                 {"name": "arg1", "value": "pa"})
    assert done.completion.values == ["paris", "park", "party"]
    done = await client.complete(types.ResourceTemplateReference(
        type="ref/resource", uri="server://tools/{name}"), {"name": "name", "value": "ec"})
    assert done.completion.values == ["echo"]


async def _subscribe(client: Client | ClientSession, inbox: Inbox) -> None:
    """The handshake era's resources/subscribe, then an update told to this client."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK marks the handshake-era method deprecated
        await client.subscribe_resource(WATCHED)
    await client.call_tool("test_touch_watched_resource", {})
    updated = await inbox.next_of(types.ResourceUpdatedNotification)
    assert str(updated.params.uri) == WATCHED


async def test_streamable_http_handshake_era(start_mcp_server: StartServer) -> None:
    server: RunningServer = await start_mcp_server(profile="conformance")
    inbox = Inbox()
    async with Client(server.base_url + "/mcp", mode="legacy", message_handler=inbox) as client:
        assert client.server_capabilities.prompts is not None
        assert client.server_capabilities.completions is not None
        await _features(client)
        await _subscribe(client, inbox)
        await client.call_tool("test_trigger_prompt_change", {})
        await inbox.next_of(types.PromptListChangedNotification)


async def test_streamable_http_2026(start_mcp_server: StartServer) -> None:
    server: RunningServer = await start_mcp_server(profile="conformance")
    async with Client(server.base_url + "/mcp") as client:
        assert client.protocol_version == "2026-07-28"
        await _features(client)
        async with client.listen(prompts_list_changed=True,
                                 resource_subscriptions=[WATCHED]) as sub:
            assert sub.honored.prompts_list_changed
            await client.call_tool("test_touch_watched_resource", {})
            event = await asyncio.wait_for(sub.__anext__(), TIMEOUT)
            assert type(event).__name__ == "ResourceUpdated"
            await client.call_tool("test_trigger_prompt_change", {})
            event = await asyncio.wait_for(sub.__anext__(), TIMEOUT)
            assert type(event).__name__ == "PromptsListChanged"
        prompts = await client.list_prompts(cache_mode="refresh")
        assert "test_dynamic_prompt" in [p.name for p in prompts.prompts]


async def test_sse(start_mcp_server: StartServer) -> None:
    server: RunningServer = await start_mcp_server(profile="conformance")
    inbox = Inbox()
    async with sse_client(server.base_url + "/sse") as (read, write), \
            ClientSession(read, write, message_handler=inbox) as session:
        await session.initialize()
        await _features(session)
        await _subscribe(session, inbox)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio(mode: str, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_multi.server", "--stdio", "--profile", "conformance",
              "--root", str(tmp_path), "--log-level", "WARNING"],
    )
    async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
        await _features(client)
