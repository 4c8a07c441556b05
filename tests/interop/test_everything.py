"""Our client against a server we did not write: ``@modelcontextprotocol/server-everything``.

The MCP project's reference server (TypeScript; installed by :mod:`.everything`) registers its
``trigger-sampling-request``, ``trigger-elicitation-request`` and ``get-roots-list`` tools only
for a client that declares those capabilities, and asks the client through them. Every test
runs over stdio and over Streamable HTTP; the library tests drive
:class:`~mcp_multi.client.multi.MultiServerMCPClient` in this event loop, the CLI tests run a
real ``mcp-client`` in test mode or as a shell fed through a pipe.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shlex
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcp_multi.client.answering import ClientHandlers, policy_handlers
from mcp_multi.client.connection import MCPConnection
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.protocol.errors import JSONRPCError
from mcp_multi.protocol.jsonrpc import Notification
from mcp_multi.transport import stdio_url

from ..client.test_shell import run_client as run_shell
from .everything import INSTALL_TIMEOUT, Everything, installed

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 20.0
CLI_TIMEOUT = 60.0
# The first test installs the server (Node and npm) when the cache is empty.
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)

SAMPLING = "trigger-sampling-request"
ELICITATION = "trigger-elicitation-request"
ROOTS = "get-roots-list"
URL_ELICITATION = "trigger-url-elicitation"
ASKING = (SAMPLING, ELICITATION, ROOTS)
PROMPTS = ["simple-prompt", "args-prompt", "completable-prompt", "resource-prompt"]
TEXT_TEMPLATE = "demo://resource/dynamic/text/{resourceId}"
BLOB_TEMPLATE = "demo://resource/dynamic/blob/{resourceId}"
DECLINED_FORM = "❌ User declined to provide the requested information."


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server is, as our client names it: a transport and a URL."""

    transport: str
    url: str

    def argument(self, name: str = "everything") -> str:
        """The ``mcp-client`` argument for it."""
        return f"{name}={self.url}"


@pytest.fixture(scope="session")
def everything() -> Everything:
    return installed()


@pytest.fixture(params=["stdio", "http"])
async def target(request: pytest.FixtureRequest, everything: Everything
                 ) -> AsyncIterator[Target]:
    if request.param == "stdio":
        yield Target("stdio", stdio_url(everything.argv("stdio")))
    else:
        async with everything.serve_http() as url:
            yield Target("http", url)


@contextlib.asynccontextmanager
async def connected(target: Target, handlers: ClientHandlers | None = None,
                    on_notification: Callable[[str, Notification], None] | None = None,
                    ) -> AsyncIterator[tuple[MultiServerMCPClient, MCPConnection]]:
    async with MultiServerMCPClient(timeout=TIMEOUT, handlers=handlers,
                                    on_notification=on_notification) as client:
        connection = await client.add("everything", target.url, target.transport)
        yield client, connection


def texts(result: dict[str, Any]) -> list[str]:
    return [str(c.get("text")) for c in result["content"] if c.get("type") == "text"]


def sampling_result(result: dict[str, Any]) -> dict[str, Any]:
    """The CreateMessageResult the sampling tool got back, from its report."""
    [text] = texts(result)
    head, _, body = text.partition("\n")
    assert head.startswith("LLM sampling result:"), text
    answer: dict[str, Any] = json.loads(body)
    return answer


def raw_elicitation_result(result: dict[str, Any]) -> dict[str, Any]:
    """The ElicitResult the elicitation tool got back, from its report."""
    raw = texts(result)[-1].strip()
    assert raw.startswith("Raw result:"), raw
    answer: dict[str, Any] = json.loads(raw[len("Raw result:"):])
    return answer


class Notifications:
    """Notifications as they arrive; a test waits for the one it needs, never sleeps."""

    def __init__(self) -> None:
        self.seen: list[Notification] = []
        self._changed = asyncio.Event()

    def __call__(self, server: str, note: Notification) -> None:
        self.seen.append(note)
        self._changed.set()

    async def wait_for(self, method: str, match: Callable[[dict[str, Any]], bool],
                       timeout: float = TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for note in self.seen:
                    if note.method == method and match(note.params or {}):
                        return note.params or {}
                self._changed.clear()
                await self._changed.wait()


# -- the library ------------------------------------------------------------------------------


async def test_without_capabilities_its_asking_tools_stay_hidden(target: Target) -> None:
    """No handlers, no capabilities: the reference server hides the tools that would ask."""
    async with connected(target) as (_, connection):
        assert connection.server is not None
        assert connection.server.server_name == "mcp-servers/everything"
        names = [tool["name"] for tool in await connection.list_tools(refresh=True)]
        assert {"echo", "get-sum", "trigger-long-running-operation"} <= set(names)
        assert not set(ASKING) & set(names)
        echo = await connection.call_tool("echo", {"message": "from mcp-multi"})
        assert texts(echo) == ["Echo: from mcp-multi"]


async def test_declared_capabilities_show_each_asking_tool_once(target: Target,
                                                                tmp_path: Path) -> None:
    async with connected(target, policy_handlers(roots=[tmp_path])) as (_, connection):
        names = [tool["name"] for tool in await connection.list_tools(refresh=True)]
        for tool in ASKING:
            assert names.count(tool) == 1, names


async def test_sampling_answered_with_a_fixed_reply(target: Target) -> None:
    handlers = policy_handlers(sampling="reply:Paris, of course.")
    async with connected(target, handlers) as (_, connection):
        result = await connection.call_tool(SAMPLING, {"prompt": "capital of France?",
                                                       "maxTokens": 20})
        assert not result.get("isError"), result
        assert sampling_result(result) == {
            "role": "assistant", "content": {"type": "text", "text": "Paris, of course."},
            "model": "mcp-multi-client", "stopReason": "endTurn"}


SAMPLING_COMMAND = """\
import json, sys
params = json.load(sys.stdin)
asked = params["messages"][0]["content"]["text"]
print(f"command saw {asked!r}, maxTokens {params['maxTokens']}, "
      f"system {params['systemPrompt']!r}")
"""


async def test_sampling_answered_by_a_command(target: Target, tmp_path: Path) -> None:
    """The command gets the server's params as JSON on stdin; what it prints is the reply."""
    script = tmp_path / "reply.py"
    script.write_text(SAMPLING_COMMAND)
    handlers = policy_handlers(sampling="command:" + shlex.join([sys.executable, str(script)]))
    async with connected(target, handlers) as (_, connection):
        result = await connection.call_tool(SAMPLING, {"prompt": "hello", "maxTokens": 7})
        reply = sampling_result(result)
        assert reply["content"] == {"type": "text", "text": (
            "command saw 'Resource trigger-sampling-request context: hello', maxTokens 7, "
            "system 'You are a helpful test server.'")}


async def test_sampling_declined_by_default(target: Target) -> None:
    """``decline`` still offers sampling (the tool is there) but refuses every request."""
    async with connected(target, policy_handlers()) as (_, connection):
        result = await connection.call_tool(SAMPLING, {"prompt": "anything"})
        assert result.get("isError") is True
        assert "declined" in " ".join(texts(result)).lower()


async def test_elicitation_declined(target: Target) -> None:
    async with connected(target, policy_handlers(elicitation="decline")) as (_, connection):
        result = await connection.call_tool(ELICITATION, {})
        assert texts(result)[0] == DECLINED_FORM
        assert raw_elicitation_result(result) == {"action": "decline"}


async def test_elicitation_defaults_decline_a_required_field_without_one(
        target: Target) -> None:
    """Its form requires ``name`` and gives it no default: accepting the defaults would send
    content its own schema refuses, so the ``defaults`` policy declines it."""
    async with connected(target, policy_handlers(elicitation="defaults")) as (_, connection):
        result = await connection.call_tool(ELICITATION, {})
        assert texts(result)[0] == DECLINED_FORM
        assert raw_elicitation_result(result) == {"action": "decline"}


async def test_url_elicitation_declined_by_the_policies(target: Target) -> None:
    """Nobody is there to open a page: URL mode is declined; its error path (-32042) reaches
    the caller with the URL to open."""
    async with connected(target, policy_handlers(elicitation="defaults")) as (_, connection):
        result = await connection.call_tool(URL_ELICITATION, {"url": "https://example.com/a"})
        assert texts(result)[0].startswith("❌ User declined to open the URL")
        assert raw_elicitation_result(result) == {"action": "decline"}
        with pytest.raises(JSONRPCError) as required:
            await connection.call_tool(URL_ELICITATION, {"url": "https://example.com/a",
                                                         "errorPath": True})
        assert required.value.code == -32042
        [elicitation] = required.value.data["elicitations"]
        assert elicitation["mode"] == "url" and elicitation["url"].startswith("https://")


async def test_roots_listed_synced_and_changed(target: Target, tmp_path: Path) -> None:
    first, second, third = (tmp_path / name for name in ("alpha", "beta", "gamma"))
    for directory in (first, second, third):
        directory.mkdir()
    notes = Notifications()
    handlers = policy_handlers(roots=[first, second])
    async with connected(target, handlers, notes) as (client, connection):
        result = await connection.call_tool(ROOTS, {})
        # The server asked for them (after the handshake, or for this call) and logged it.
        await notes.wait_for("notifications/message",
                             lambda p: "2 root(s) received" in str(p.get("data")))
        [text] = texts(result)
        assert text.startswith("Current MCP Roots (2 total):")
        assert f"1. alpha\n   URI: {first.as_uri()}" in text
        assert f"2. beta\n   URI: {second.as_uri()}" in text

        await client.set_roots([third])  # roots/list_changed: it asks again
        await notes.wait_for("notifications/message",
                             lambda p: "1 root(s) received" in str(p.get("data")))
        [text] = texts(await connection.call_tool(ROOTS, {}))
        assert text.startswith("Current MCP Roots (1 total):")
        assert f"1. gamma\n   URI: {third.as_uri()}" in text


async def test_resources_and_templates(target: Target) -> None:
    async with connected(target) as (client, _):
        listed = await client.request("everything", "resources/list", {})
        uris = [r["uri"] for r in listed["resources"]]
        document = "demo://resource/static/document/features.md"
        assert document in uris and all(u.startswith("demo://") for u in uris)
        read = await client.request("everything", "resources/read", {"uri": document})
        [content] = read["contents"]
        assert content["uri"] == document and content["mimeType"] == "text/markdown"
        assert content["text"].startswith("#")

        templates = await client.request("everything", "resources/templates/list", {})
        assert {t["uriTemplate"] for t in templates["resourceTemplates"]} == {
            TEXT_TEMPLATE, BLOB_TEMPLATE}
        text = await client.request("everything", "resources/read",
                                    {"uri": "demo://resource/dynamic/text/7"})
        assert text["contents"][0]["text"].startswith(
            "Resource 7: This is a plaintext resource created at ")
        blob = await client.request("everything", "resources/read",
                                    {"uri": "demo://resource/dynamic/blob/3"})
        assert base64.b64decode(blob["contents"][0]["blob"]).startswith(
            b"Resource 3: This is a base64 blob created at ")
        with pytest.raises(JSONRPCError):
            await client.request("everything", "resources/read",
                                 {"uri": "demo://resource/dynamic/text/0"})


async def test_prompts(target: Target) -> None:
    async with connected(target) as (client, _):
        listed = await client.request("everything", "prompts/list", {})
        assert [p["name"] for p in listed["prompts"]] == PROMPTS
        simple = await client.request("everything", "prompts/get", {"name": "simple-prompt"})
        assert simple["messages"] == [{"role": "user", "content": {
            "type": "text", "text": "This is a simple prompt without arguments."}}]
        args = await client.request("everything", "prompts/get", {
            "name": "args-prompt", "arguments": {"city": "Paris", "state": "Texas"}})
        assert args["messages"][0]["content"]["text"] == "What's weather in Paris, Texas?"
        embedded = await client.request("everything", "prompts/get", {
            "name": "resource-prompt", "arguments": {"resourceType": "Text", "resourceId": "2"}})
        resource = embedded["messages"][1]["content"]
        assert resource["type"] == "resource"
        assert resource["resource"]["uri"] == "demo://resource/dynamic/text/2"


async def test_completion(target: Target) -> None:
    async def complete(ref: dict[str, str], name: str, value: str,
                       context: dict[str, str] | None = None) -> list[str]:
        params: dict[str, Any] = {"ref": ref, "argument": {"name": name, "value": value}}
        if context is not None:
            params["context"] = {"arguments": context}
        result = await client.request("everything", "completion/complete", params)
        values: list[str] = result["completion"]["values"]
        return values

    async with connected(target) as (client, connection):
        assert connection.server is not None and connection.server.has_capability("completions")
        prompt = {"type": "ref/prompt", "name": "completable-prompt"}
        assert await complete(prompt, "department", "S") == ["Sales", "Support"]
        assert await complete(prompt, "name", "", {"department": "Engineering"}) == [
            "Alice", "Bob", "Charlie"]
        template = {"type": "ref/resource", "uri": TEXT_TEMPLATE}
        assert await complete(template, "resourceId", "42") == ["42"]
        assert await complete(template, "resourceId", "x") == []


async def test_subscription_updates_logging_and_progress(target: Target) -> None:
    notes = Notifications()
    async with connected(target, on_notification=notes) as (client, _):
        uri = "demo://resource/dynamic/text/1"
        await client.request("everything", "resources/subscribe", {"uri": uri})
        await client.request("everything", "logging/setLevel", {"level": "debug"})
        await client.call("everything", "toggle-subscriber-updates", {})
        await notes.wait_for("notifications/resources/updated", lambda p: p.get("uri") == uri)
        await client.call("everything", "toggle-simulated-logging", {})
        await notes.wait_for("notifications/message", lambda p: "-level message" in str(
            p.get("data")) or "level-message" in str(p.get("data")))

        await client.request("everything", "tools/call", {
            "name": "trigger-long-running-operation",
            "arguments": {"duration": 0.3, "steps": 3}, "_meta": {"progressToken": "op-1"}})
        steps = [n.params for n in notes.seen
                 if n.method == "notifications/progress" and n.params
                 and n.params.get("progressToken") == "op-1"]
        assert [(s["progress"], s["total"]) for s in steps] == [(1, 3), (2, 3), (3, 3)]


# -- the command line -------------------------------------------------------------------------


async def run_client(args: list[str], commands: str = "") -> tuple[int, str, str]:
    """Run ``python mcp_client.py ARGS`` with ``commands`` on a piped stdin (Node's server
    starts slower than ours: a longer limit)."""
    return await run_shell(args, commands, timeout=CLI_TIMEOUT)


def result_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("Result: ")]


async def test_shell_lists_the_asking_tools_and_runs_them(target: Target, tmp_path: Path
                                                          ) -> None:
    commands = f"""\
tools everything
call everything {SAMPLING} {{"prompt": "from the shell"}}
call everything {ELICITATION} {{}}
call everything {ROOTS} {{}}
quit
"""
    code, out, err = await run_client(
        [target.argument(), "--sampling", "reply:shell reply", "--elicitation", "decline",
         "--roots", str(tmp_path)], commands)
    assert code == 0, out + err
    listed = out.split("[everything]:", 1)[1]
    for tool in ASKING:
        assert listed.count(f"\n  {tool}: ") == 1, out
    sampled, elicited, rooted = result_lines(out)
    assert "'text': 'LLM sampling result:" in sampled and '"shell reply"' in sampled
    assert DECLINED_FORM in elicited
    assert "Current MCP Roots (1 total)" in rooted and tmp_path.as_uri() in rooted


async def test_shell_sampling_command_and_elicitation_defaults(target: Target,
                                                               tmp_path: Path) -> None:
    script = tmp_path / "reply.py"
    script.write_text(SAMPLING_COMMAND)
    commands = f"""\
call everything {SAMPLING} {{"prompt": "piped", "maxTokens": 3}}
call everything {ELICITATION} {{}}
quit
"""
    code, out, err = await run_client(
        [target.argument(), "--sampling",
         "command:" + shlex.join([sys.executable, str(script)]), "--elicitation", "defaults"],
        commands)
    assert code == 0, out + err
    sampled, elicited = result_lines(out)
    assert "command saw 'Resource trigger-sampling-request context: piped', maxTokens 3" in (
        sampled.replace("\\'", "'"))
    assert DECLINED_FORM in elicited


FEATURE_COMMANDS = """\
resources everything
templates everything
read everything demo://resource/dynamic/text/5
prompts everything
prompt everything args-prompt {"city": "Oslo"}
complete everything prompt:completable-prompt department S
complete everything resource:demo://resource/dynamic/text/{resourceId} resourceId 12
subscribe everything demo://resource/dynamic/text/1
loglevel everything debug
call everything toggle-subscriber-updates {}
call everything trigger-long-running-operation {"duration": 0.3, "steps": 3}
quit
"""


async def test_shell_feature_commands(target: Target) -> None:
    """The shell's resources, templates, read, prompts, prompt, complete, subscribe and
    loglevel against the reference server, with its notifications and progress shown."""
    code, out, err = await run_client([target.argument()], FEATURE_COMMANDS)
    assert code == 0, out + err
    assert "\n  demo://resource/static/document/features.md: features.md (text/markdown) - " in out
    assert f"  {TEXT_TEMPLATE}: Dynamic Text Resource (text/plain) - Plaintext" in out
    assert "    Resource 5: This is a plaintext resource created at " in out
    assert ("  args-prompt(city, state?): A prompt with two arguments, one required and one "
            "optional") in out.splitlines()
    assert "  user:\n    What's weather in Oslo?\n" in out
    assert "  Sales\n  Support\n  (2 shown of 2)\n" in out
    assert "  12\n  (1 shown of 1)\n" in out
    assert "[everything] subscribed to demo://resource/dynamic/text/1" in out
    assert "[everything] log level set to debug" in out
    assert "[everything] resource updated: demo://resource/dynamic/text/1" in out
    assert "Long running operation completed. Duration: 0.3 seconds, Steps: 3." in out
    # Progress goes to stderr as plain lines when piped.
    assert [line for line in err.splitlines() if "progress" in line] == [
        "[everything] progress 1/3", "[everything] progress 2/3", "[everything] progress 3/3"]


# Fail in test mode whatever the client does: the gzip tool fetches its default URL from the
# internet (refused here: loopback only), and the URL elicitation tool needs a real URL, which
# the checklist's sample arguments do not make from a schema's "format".
UNREACHABLE = {"call gzip-file-as-resource", "call trigger-url-elicitation"}


async def test_test_mode_over_both_transports(everything: Everything, tmp_path: Path) -> None:
    """One test-mode run checks the server over stdio and Streamable HTTP at once; the asking
    tools, prompts, templates and completion pass under the policies."""
    report = tmp_path / "report.json"
    async with everything.serve_http() as url:
        code, out, err = await run_client([
            f"http={url}", "stdio=" + stdio_url(everything.argv("stdio")), "--mode", "test",
            "--sampling", "reply:test mode", "--elicitation", "defaults",
            "--roots", str(tmp_path), "--report", str(report)])
    document = json.loads(report.read_text())
    status = {(r["server"], r["check"]): r["status"] for r in document["results"]}
    failed = {check for (_, check), verdict in status.items() if verdict == "FAIL"}
    assert "call gzip-file-as-resource" in failed and failed <= UNREACHABLE, out + err
    assert code == 1
    for server in ("http", "stdio"):
        for check in ("handshake", "tools/list", f"call {SAMPLING}", f"call {ELICITATION}",
                      f"call {ROOTS}", "resources/list", "resources/read",
                      "resources/templates/list", "prompts/list", "prompts/get",
                      "completion/complete", "removal"):
            assert status[(server, check)] == "PASS", (server, check, out)
