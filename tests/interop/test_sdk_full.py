"""The whole protocol between the official ``mcp`` SDK's client and our server, over every wire.

One behaviour suite, run by a parametrized fixture over five wires: Streamable HTTP in the
handshake era and in 2026-07-28, legacy HTTP+SSE, and stdio in both eras. The server is ours
with ``--profile conformance`` (the suite's fixtures) beside the default server's own prompts
(``explain_tool_call``, ``explain_error``) and template (``server://tools/{name}``). What
travels differently by era is tested as each era has it: ``resources/subscribe`` and
``logging/setLevel`` in the handshake era, ``subscriptions/listen`` and the per-request log
level in 2026-07-28; sampling, elicitation and roots are server-to-client requests in one and
``input_required`` rounds in the other, answered by the same SDK callbacks.

Our own client carries the same features over WebSocket, the one transport the SDK lacks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError, StdioServerParameters, types
from mcp.client.sse import sse_client
from mcp.client.subscriptions import PromptsListChanged, ResourceUpdated

from mcp_multi.client.answering import policy_handlers
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.protocol.jsonrpc import Notification

from ..conftest import StartServer

TIMEOUT = 10.0
WATCHED = "test://watched-resource"
DEMO_PROMPTS = ["explain_tool_call", "explain_error"]
FIXTURE_PROMPTS = ["test_simple_prompt", "test_prompt_with_arguments",
                   "test_prompt_with_embedded_resource", "test_prompt_with_image"]
TEMPLATES = ["server://tools/{name}", "test://template/{id}/data"]
LOG_LINES = ["Tool execution started", "Tool processing data", "Tool execution completed"]
MODERN = "2026-07-28"
# The SDK marks the handshake era's subscribe and setLevel deprecated (2026-07-28 removed
# them); this suite uses them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


@dataclass(frozen=True, slots=True)
class Wire:
    """One way for the SDK to reach our server: a transport and the era it speaks."""

    name: str
    transport: str  # http, sse, stdio
    mode: str  # the SDK's connect mode: legacy (handshake era) or auto (2026-07-28 here)

    @property
    def modern(self) -> bool:
        return self.mode != "legacy"


WIRES = [
    Wire("http-handshake", "http", "legacy"),
    Wire("http-2026", "http", "auto"),
    Wire("sse", "sse", "legacy"),
    Wire("stdio-handshake", "stdio", "legacy"),
    Wire("stdio-2026", "stdio", "auto"),
]


class Peer:
    """The SDK's callbacks and what reached them: questions answered as a person and a model
    would, log messages, and every notification the session surfaces."""

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.asked: list[str] = []
        self.logs: list[types.LoggingMessageNotificationParams] = []
        self.notifications: list[Any] = []
        self._arrived = asyncio.Event()

    async def sampling(self, context: Any, params: types.CreateMessageRequestParams
                       ) -> types.CreateMessageResult:
        self.asked.append("sampling")
        prompt = params.messages[0].content
        assert isinstance(prompt, types.TextContent)
        return types.CreateMessageResult(
            role="assistant", model="sdk-model", stop_reason="endTurn",
            content=types.TextContent(type="text", text=f"sampled [{prompt.text}]"))

    async def elicitation(self, context: Any, params: types.ElicitRequestParams
                          ) -> types.ElicitResult:
        """Accept: the fields' defaults where given, else a made-up value per field."""
        self.asked.append("elicitation")
        assert isinstance(params, types.ElicitRequestFormParams)
        fields = params.requested_schema["properties"]
        content = {name: field.get("default", f"my {name}") for name, field in fields.items()}
        return types.ElicitResult(action="accept", content=content)

    async def list_roots(self, context: Any) -> types.ListRootsResult:
        self.asked.append("roots")
        return types.ListRootsResult(roots=[types.Root(uri=path.as_uri(), name=path.name)
                                            for path in self.roots])

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)
        self._arrived.set()

    async def message(self, message: Any) -> None:
        self.notifications.append(message)
        self._arrived.set()

    def callbacks(self) -> dict[str, Any]:
        return {"sampling_callback": self.sampling, "elicitation_callback": self.elicitation,
                "list_roots_callback": self.list_roots, "logging_callback": self.logging,
                "message_handler": self.message}

    async def wait_until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not done():
                self._arrived.clear()
                await self._arrived.wait()

    def seen(self, kind: type) -> list[Any]:
        return [n for n in self.notifications if isinstance(n, kind)]


@pytest.fixture(params=WIRES, ids=[wire.name for wire in WIRES])
def wire(request: pytest.FixtureRequest) -> Wire:
    wire: Wire = request.param
    return wire


@pytest.fixture
def peer(tmp_path: Path) -> Peer:
    root = tmp_path.resolve() / "workspace"
    root.mkdir()
    return Peer([root])


Connect = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def sdk(wire: Wire, peer: Peer, start_mcp_server: StartServer, tmp_path: Path) -> Connect:
    """Opens the SDK's client on ``wire`` (options: more :class:`mcp.Client` arguments)."""
    return functools.partial(connect, wire, peer, start_mcp_server, tmp_path)


@contextlib.asynccontextmanager
async def connect(wire: Wire, peer: Peer, start_mcp_server: StartServer, tmp_path: Path,
                  **options: Any) -> AsyncIterator[Client]:
    """The SDK's client on ``wire`` to our server with the conformance fixtures (entered and
    left in the test's own task, as the SDK's cancel scopes need)."""
    server: Any
    if wire.transport == "stdio":
        server = StdioServerParameters(command=sys.executable, args=[
            "-m", "mcp_multi.server", "--stdio", "--profile", "conformance",
            "--root", str(tmp_path), "--log-level", "WARNING"])
    else:
        running = await start_mcp_server(name="sdk-full", profile="conformance")
        server = running.base_url + "/mcp"
        if wire.transport == "sse":
            server = sse_client(running.base_url + "/sse")
    async with Client(server, mode=wire.mode, read_timeout_seconds=TIMEOUT,  # type: ignore[arg-type]
                      **{**peer.callbacks(), **options}) as client:
        assert client.protocol_version == (MODERN if wire.modern else "2025-11-25")
        yield client


def text_of(result: Any) -> str:
    """The text of a one-block tool result, prompt message or resource read."""
    block = result.content if hasattr(result, "content") else result
    if isinstance(block, list):
        [block] = block
    if isinstance(block, types.TextResourceContents):
        return block.text
    assert isinstance(block, types.TextContent), block
    return block.text


# -- prompts, templates, completion -----------------------------------------------------------


async def test_prompts_list_and_get(sdk: Connect) -> None:
    async with sdk() as client:
        prompts = await client.list_prompts()
        names = [p.name for p in prompts.prompts]
        assert names[:2] == DEMO_PROMPTS and set(FIXTURE_PROMPTS) <= set(names)
        arguments = {p.name: [(a.name, a.required) for a in p.arguments or []]
                     for p in prompts.prompts}
        assert arguments["test_prompt_with_arguments"] == [("arg1", True), ("arg2", True)]
        assert arguments["explain_error"] == [("code", True), ("message", False)]

        simple = await client.get_prompt("test_simple_prompt")
        assert [(m.role, m.content) for m in simple.messages] == [
            ("user", types.TextContent(type="text", text="This is a simple prompt for testing."))]
        with_args = await client.get_prompt("test_prompt_with_arguments",
                                            {"arg1": "hello", "arg2": "world"})
        assert text_of(with_args.messages[0]) == "Prompt with arguments: arg1='hello', arg2='world'"
        embedded = await client.get_prompt("test_prompt_with_embedded_resource",
                                        {"resourceUri": "test://example-resource"})
        resource = embedded.messages[0].content
        assert isinstance(resource, types.EmbeddedResource)
        assert isinstance(resource.resource, types.TextResourceContents)
        assert str(resource.resource.uri) == "test://example-resource"
        assert resource.resource.text == "Embedded resource content for testing."
        image = (await client.get_prompt("test_prompt_with_image")).messages[0].content
        assert isinstance(image, types.ImageContent) and image.mime_type == "image/png"
        assert base64.b64decode(image.data).startswith(b"\x89PNG\r\n\x1a\n")

        # The default server's own prompts: one embeds a tool's listing, one explains a code.
        explained = await client.get_prompt("explain_tool_call", {"tool": "echo"})
        listing = explained.messages[0].content
        assert isinstance(listing, types.EmbeddedResource)
        assert str(listing.resource.uri) == "server://tools/echo"
        error = await client.get_prompt("explain_error", {"code": "-32602"})
        assert "JSON-RPC error -32602 (Invalid params)" in text_of(error.messages[0])

        with pytest.raises(MCPError) as missing:
            await client.get_prompt("test_prompt_with_arguments", {"arg1": "only one"})
        assert missing.value.code == -32602
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("no_such_prompt")
        assert unknown.value.code == -32602


async def test_resources_and_templates(sdk: Connect, wire: Wire) -> None:
    async with sdk() as client:
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == TEMPLATES
        data = await client.read_resource("test://template/123/data")
        [item] = data.contents
        assert isinstance(item, types.TextResourceContents) and item.mime_type == "application/json"
        assert json.loads(item.text) == {"id": "123", "templateTest": True,
                                         "data": "Data for ID: 123"}
        tool = await client.read_resource("server://tools/math_calc")
        [item] = tool.contents
        assert isinstance(item, types.TextResourceContents)
        assert json.loads(item.text)["name"] == "math_calc"

        listed = [str(r.uri) for r in (await client.list_resources()).resources]
        assert {"server://info", "test://static-text", "test://static-binary",
                WATCHED} <= set(listed)
        text = (await client.read_resource("test://static-text")).contents[0]
        assert isinstance(text, types.TextResourceContents)
        assert text.text == "This is the content of the static text resource."
        binary = (await client.read_resource("test://static-binary")).contents[0]
        assert isinstance(binary, types.BlobResourceContents) and binary.mime_type == "image/png"
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("server://tools/no_such_tool")
        # Resource not found: -32002 until 2026-07-28 made it -32602 (SEP-2164).
        assert unknown.value.code == (-32602 if wire.modern else -32002)
        assert unknown.value.error.data == {"uri": "server://tools/no_such_tool"}


async def test_completion(sdk: Connect) -> None:
    async with sdk() as client:
        assert client.server_capabilities.completions is not None
        prompt = types.PromptReference(type="ref/prompt", name="test_prompt_with_arguments")
        done = await client.complete(prompt, {"name": "arg1", "value": "par"})
        assert done.completion.values == ["paris", "park", "party"]
        explain = types.PromptReference(type="ref/prompt", name="explain_error")
        codes = await client.complete(explain, {"name": "code", "value": "-3260"})
        assert codes.completion.values == ["-32600", "-32601", "-32602", "-32603"]
        template = types.ResourceTemplateReference(type="ref/resource", uri="server://tools/{name}")
        tools = await client.complete(template, {"name": "name", "value": "ma"})
        assert tools.completion.values == ["math_calc"]
        ids = types.ResourceTemplateReference(type="ref/resource", uri="test://template/{id}/data")
        assert (await client.complete(ids, {"name": "id", "value": "12"})).completion.values == [
            "123", "124"]


# -- subscriptions ----------------------------------------------------------------------------


async def test_resource_updates_reach_subscribers_only(sdk: Connect, wire: Wire,
                                                       peer: Peer) -> None:
    async with sdk() as client:
        if wire.modern:  # 2026-07-28: a subscriptions/listen stream, no subscribe method
            async with client.listen(resource_subscriptions=[WATCHED],
                                     prompts_list_changed=True) as stream:
                assert stream.honored.prompts_list_changed
                await client.call_tool("test_touch_watched_resource", {})
                updated = await asyncio.wait_for(stream.__anext__(), TIMEOUT)
                assert isinstance(updated, ResourceUpdated) and str(updated.uri) == WATCHED
                await client.call_tool("test_trigger_prompt_change", {})
                changed = await asyncio.wait_for(stream.__anext__(), TIMEOUT)
                assert isinstance(changed, PromptsListChanged)
            return
        await client.subscribe_resource(WATCHED)
        touched = await client.call_tool("test_touch_watched_resource", {})
        assert text_of(touched).endswith("1 subscriber(s) told")
        await peer.wait_until(lambda: bool(peer.seen(types.ResourceUpdatedNotification)))
        [updated] = peer.seen(types.ResourceUpdatedNotification)
        assert str(updated.params.uri) == WATCHED
        watched = (await client.read_resource(WATCHED)).contents[0]
        assert isinstance(watched, types.TextResourceContents)
        assert watched.text == "Watched resource, version 1"

        await client.unsubscribe_resource(WATCHED)
        touched = await client.call_tool("test_touch_watched_resource", {})
        assert text_of(touched).endswith("0 subscriber(s) told")
        # A later notification on the same stream: no update came before it.
        await client.call_tool("test_trigger_prompt_change", {})
        await peer.wait_until(lambda: bool(peer.seen(types.PromptListChangedNotification)))
        assert len(peer.seen(types.ResourceUpdatedNotification)) == 1


# -- asking the client ------------------------------------------------------------------------


async def test_sampling_elicitation_and_roots_through_callbacks(sdk: Connect, peer: Peer
                                                                ) -> None:
    async with sdk() as client:
        sampled = await client.call_tool("test_sampling", {"prompt": "Capital of France?"})
        assert text_of(sampled) == "LLM response: sampled [Capital of France?]"
        assert not sampled.is_error

        elicited = await client.call_tool("test_elicitation", {"message": "Who are you?"})
        assert text_of(elicited) == ('User response: action=accept, '
                                     'content={"username":"my username","email":"my email"}')
        defaults = await client.call_tool("test_elicitation_sep1034_defaults", {})
        assert text_of(defaults) == (
            'Elicitation completed: action=accept, content={"name":"John Doe","age":30,'
            '"score":95.5,"status":"active","verified":true}')

        roots = await client.call_tool("test_list_roots", {})
        assert text_of(roots) == f"Roots: {peer.roots[0].as_uri()}"
        assert peer.asked == ["sampling", "elicitation", "elicitation", "roots"]


async def test_undeclared_sampling_is_refused_with_32021(
        wire: Wire, start_mcp_server: StartServer, tmp_path: Path) -> None:
    """An SDK client that declares no sampling gets -32021 naming the capability, at once."""
    quiet = Peer([])
    async with connect(wire, quiet, start_mcp_server, tmp_path,
                       sampling_callback=None) as client:
        with pytest.raises(MCPError) as refused:
            await client.call_tool("test_missing_capability", {})
        assert refused.value.code == -32021
        assert "sampling" in str(refused.value.error.data)
    assert quiet.asked == []


# -- logging and progress ---------------------------------------------------------------------


async def test_log_messages_at_the_level_asked(sdk: Connect, wire: Wire, peer: Peer) -> None:
    if wire.modern:  # the per-request level: only requests that ask for logs get them
        async with sdk(log_level="info") as client:
            await client.call_tool("test_tool_with_logging", {})
            await peer.wait_until(lambda: len(peer.logs) >= 3)
        async with sdk() as client:
            await client.call_tool("test_tool_with_logging", {})
            await client.call_tool("test_tool_with_logging", {}, meta={
                "io.modelcontextprotocol/logLevel": "info"})
            await peer.wait_until(lambda: len(peer.logs) >= 6)
    else:
        async with sdk() as client:
            await client.set_logging_level("info")
            await client.call_tool("test_tool_with_logging", {})
            await peer.wait_until(lambda: len(peer.logs) >= 3)
            await client.set_logging_level("error")
            await client.call_tool("test_tool_with_logging", {})
            await client.set_logging_level("debug")
            await client.call_tool("test_tool_with_logging", {})
            await peer.wait_until(lambda: len(peer.logs) >= 6)
    assert [(log.level, log.data) for log in peer.logs] == [
        ("info", line) for line in LOG_LINES * 2]


async def test_progress(sdk: Connect) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    async with sdk() as client:
        result = await client.call_tool("test_tool_with_progress", {},
                                        progress_callback=progress)
        assert text_of(result) == "Tool with progress executed successfully"
    # Our server says which tool it starts (no total), then the tool's own steps; progress
    # must increase, so the tool's own 0 of 100 is not sent again.
    assert seen == [(0, None, "Calling test_tool_with_progress"),
                    (50, 100, None), (100, 100, None)]


# -- our own client over WebSocket ------------------------------------------------------------


class Notes:
    """Our client's notifications, to wait on."""

    def __init__(self) -> None:
        self.seen: list[Notification] = []
        self._arrived = asyncio.Event()

    def __call__(self, server: str, note: Notification) -> None:
        self.seen.append(note)
        self._arrived.set()

    def of(self, method: str) -> list[dict[str, Any]]:
        return [n.params or {} for n in self.seen if n.method == method]

    async def wait_for(self, method: str, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.of(method)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.of(method)


async def test_our_client_over_websocket(start_mcp_server: StartServer, peer: Peer) -> None:
    server = await start_mcp_server(name="ws-full", profile="conformance")
    [workspace] = peer.roots
    root = workspace.as_uri()
    notes = Notes()
    handlers = policy_handlers(sampling="reply:over the socket", elicitation="defaults",
                               roots=[workspace])
    async with MultiServerMCPClient(timeout=TIMEOUT, handlers=handlers,
                                    on_notification=notes) as client:
        connection = await client.add("ws", f"ws://127.0.0.1:{server.port}/ws")
        assert connection.transport_kind == "websocket"

        def ask(method: str, params: dict[str, Any]) -> Any:
            return client.request("ws", method, params)

        prompts = await ask("prompts/list", {})
        assert [p["name"] for p in prompts["prompts"]][:2] == DEMO_PROMPTS
        got = await ask("prompts/get", {"name": "test_prompt_with_arguments",
                                        "arguments": {"arg1": "a", "arg2": "b"}})
        assert got["messages"][0]["content"]["text"] == "Prompt with arguments: arg1='a', arg2='b'"
        templates = await ask("resources/templates/list", {})
        assert [t["uriTemplate"] for t in templates["resourceTemplates"]] == TEMPLATES
        data = await ask("resources/read", {"uri": "test://template/7/data"})
        assert json.loads(data["contents"][0]["text"])["id"] == "7"
        done = await ask("completion/complete", {
            "ref": {"type": "ref/resource", "uri": "server://tools/{name}"},
            "argument": {"name": "name", "value": "ec"}})
        assert done["completion"]["values"] == ["echo"]

        await ask("resources/subscribe", {"uri": WATCHED})
        await client.call("ws", "test_touch_watched_resource", {})
        [updated] = await notes.wait_for("notifications/resources/updated", 1)
        assert updated == {"uri": WATCHED}
        await ask("resources/unsubscribe", {"uri": WATCHED})

        sampled = await client.call("ws", "test_sampling", {"prompt": "hi"})
        assert sampled["content"][0]["text"] == "LLM response: over the socket"
        defaults = await client.call("ws", "test_elicitation_sep1034_defaults", {})
        assert defaults["content"][0]["text"] == (
            'Elicitation completed: action=accept, content={"name":"John Doe","age":30,'
            '"score":95.5,"status":"active","verified":true}')
        roots = await client.call("ws", "test_list_roots", {})
        assert roots["content"][0]["text"] == f"Roots: {root}"

        await ask("logging/setLevel", {"level": "info"})
        await client.call("ws", "test_tool_with_logging", {})
        logs = await notes.wait_for("notifications/message", 3)
        assert [(log["level"], log["data"]) for log in logs] == [
            ("info", line) for line in LOG_LINES]

        await connection.call_tool("test_tool_with_progress", {}, meta={"progressToken": "p"})
        steps = await notes.wait_for("notifications/progress", 3)
        assert [(s["progressToken"], s["progress"], s.get("total")) for s in steps] == [
            ("p", 0, None), ("p", 50, 100), ("p", 100, 100)]
