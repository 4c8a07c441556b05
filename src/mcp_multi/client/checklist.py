"""The seed's testing checklist, run against every connected server (``--mode test``).

Per server, in order: handshake, ping, tools listing, a sensible call of each tool, a call
of a disabled tool (found through ``server://info``; it must fail), an unknown tool (must
fail), bad arguments (must fail), resources list and read, resource templates, prompts
(list, and get the first one with its required arguments filled from completions or sample
values) and completions; then one broadcast over all servers and the removal of each. A
server that does not advertise prompts, templates or completions skips those checks.
Servers are checked concurrently; every check is timed.

A check passes, fails, or is skipped when the server lacks what it needs (an SDK server has
no ``server://info``). The run passes when no check failed. What a server said reaches a
:class:`CheckResult` escaped and clipped (:func:`~mcp_multi.protocol.text.for_display`), so
the table and the reports of :mod:`.reports` hold no control character a server sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import methods
from ..protocol.errors import JSONRPCError, MCPError, MethodNotFound
from ..protocol.text import for_display
from .connection import MCPConnection
from .multi import MultiServerMCPClient, ServerNotFound

logger = logging.getLogger(__name__)

__all__ = [
    "FAIL",
    "KNOWN_TOOLS",
    "PASS",
    "SKIP",
    "CheckResult",
    "TestReport",
    "run_checks",
    "sample_arguments",
]

KNOWN_TOOLS = ("echo", "get_time", "list_files", "run_command", "math_calc")
SAMPLE_ARGUMENTS: dict[str, dict[str, Any]] = {
    "echo": {"message": "mcp-client test"},
    "get_time": {},
    "list_files": {"path": "."},
    "run_command": {"command": "echo mcp-client-test"},
    "math_calc": {"expression": "2 + 2 * 3"},
}
EXPECTED_TEXT = {"echo": "mcp-client test", "math_calc": "8", "run_command": "mcp-client-test"}
UNKNOWN_TOOL = "mcp_client_test_no_such_tool"
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
SAMPLE_PROMPT_VALUE = "test"
_TEMPLATE_VARIABLE = re.compile(r"\{[+#./;?&]?([A-Za-z0-9_]+)")


class Skip(Exception):
    """The server lacks what the check needs; the message says what."""


class CheckFailed(Exception):
    """The server answered, but not as it should; the message says how."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    server: str
    check: str
    status: str
    seconds: float
    detail: str = ""


@dataclass(slots=True)
class TestReport:
    """Every check's result, in server order then check order."""

    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.count(FAIL) == 0


def sample_arguments(tool: dict[str, Any]) -> dict[str, Any]:
    """Arguments to call ``tool`` with: ours for the seed's tools, else from its schema."""
    name = tool.get("name")
    if isinstance(name, str) and name in SAMPLE_ARGUMENTS:
        return dict(SAMPLE_ARGUMENTS[name])
    schema = tool.get("inputSchema")
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    arguments: dict[str, Any] = {}
    for key in required if isinstance(required, list) else ():
        if not isinstance(key, str):  # a malformed schema: call with what can be named
            continue
        prop = properties.get(key)
        arguments[key] = _sample_value(prop if isinstance(prop, dict) else {})
    return arguments


def _sample_value(schema: dict[str, Any]) -> Any:
    if "default" in schema:
        return schema["default"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else "string"
    if kind in (None, "string") and schema.get("format") in _SAMPLE_FORMATS:
        return _SAMPLE_FORMATS[schema["format"]]
    minimum = schema.get("minimum")
    if kind in ("integer", "number") and isinstance(minimum, int | float) \
            and not isinstance(minimum, bool) and minimum > 1:
        return int(minimum) if kind == "integer" and minimum == int(minimum) else minimum
    return {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {},
            "null": None}.get(str(kind), "test")


# Strings a JSON Schema ``format`` asks for. The URL is on a reserved name (RFC 2606) that never
# resolves, so a tool that fetches what it is given reaches nothing.
_SAMPLE_FORMATS = {
    "uri": "https://mcp-client-test.invalid/",
    "url": "https://mcp-client-test.invalid/",
    "email": "mcp-client-test@example.invalid",
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _text_of(result: dict[str, Any]) -> str:
    content = result.get("content")
    if not isinstance(content, list):
        return ""
    return " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _expect_failure(connection: MCPConnection, tool: str, arguments: dict[str, Any],
                          must_say: str | None = None) -> str:
    """Call a tool that must fail (JSON-RPC error or ``isError``); return what it said."""
    try:
        result = await connection.call_tool(tool, arguments)
    except JSONRPCError as exc:
        said = str(exc)
    else:
        if not result.get("isError"):
            raise CheckFailed(f"{tool} succeeded: {_short(_text_of(result))}")
        said = _text_of(result)
    if must_say is not None and must_say not in said:
        raise CheckFailed(f"expected {must_say!r}, got {_short(said)}")
    return _short(said)


class _ServerChecks:
    """The checklist for one server; each method returns a detail or raises."""

    def __init__(self, connection: MCPConnection) -> None:
        self.connection = connection
        self.tools: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.templates: list[dict[str, Any]] = []
        self.prompts: list[dict[str, Any]] = []

    async def handshake(self) -> str:
        server = self.connection.server
        if server is None or not self.connection.is_open:
            raise CheckFailed("not connected")
        return (f"{server.server_name} {server.server_version}, protocol "
                f"{server.protocol_version}, {self.connection.transport_kind}").strip()

    async def ping(self) -> str:
        await self.connection.ping()
        return "pong"

    async def tools_list(self) -> str:
        self.tools = await self.connection.list_tools(refresh=True)
        for tool in self.tools:
            if not isinstance(tool.get("inputSchema"), dict):
                raise CheckFailed(f"tool {tool['name']} has no inputSchema")
        return f"{len(self.tools)} tools: {', '.join(t['name'] for t in self.tools)}"

    def tool_call(self, tool: dict[str, Any]) -> Callable[[], Awaitable[str]]:
        async def check() -> str:
            name = tool["name"]
            result = await self.connection.call_tool(name, sample_arguments(tool))
            text = _text_of(result)
            if not isinstance(result.get("content"), list):
                raise CheckFailed("result has no content list")
            if result.get("isError"):
                raise CheckFailed(f"isError: {_short(text)}")
            expected = EXPECTED_TEXT.get(name)
            if expected is not None and expected not in text:
                raise CheckFailed(f"expected {expected!r} in {_short(text)}")
            return _short(text)
        return check

    async def disabled_tool(self) -> str:
        try:
            result = await self.connection.request(methods.RESOURCES_READ,
                                                   {"uri": "server://info"})
            info = json.loads(result["contents"][0]["text"])
            enabled = info["tools"]
        except (MCPError, LookupError, TypeError, ValueError) as exc:
            raise Skip(f"no readable server://info ({exc})") from None
        disabled = [name for name in KNOWN_TOOLS if name not in enabled]
        if not disabled:
            raise Skip("every known tool is enabled")
        return await _expect_failure(self.connection, disabled[0],
                                     SAMPLE_ARGUMENTS[disabled[0]], "not enabled")

    async def unknown_tool(self) -> str:
        return await _expect_failure(self.connection, UNKNOWN_TOOL, {})

    async def bad_arguments(self) -> str:
        for tool in self.tools:
            schema = tool.get("inputSchema")
            if isinstance(schema, dict) and schema.get("required"):
                return f"{tool['name']} {{}}: " + await _expect_failure(
                    self.connection, tool["name"], {})
        raise Skip("no tool has required arguments")

    async def resources_list(self) -> str:
        server = self.connection.server
        if server is None or not server.has_capability("resources"):
            raise Skip("server has no resources capability")
        result = await self.connection.request(methods.RESOURCES_LIST)
        resources = result.get("resources")
        if not isinstance(resources, list):
            raise CheckFailed("result has no resources list")
        self.resources = [r for r in resources if isinstance(r, dict)]
        return f"{len(resources)} resources: " + ", ".join(
            str(r.get("uri")) for r in self.resources)

    async def resources_read(self) -> str:
        uris = [str(r.get("uri")) for r in self.resources]
        if not uris:
            raise Skip("no resources listed")
        uri = "server://info" if "server://info" in uris else uris[0]
        result = await self.connection.request(methods.RESOURCES_READ, {"uri": uri})
        contents = result.get("contents")
        if not isinstance(contents, list) or not contents:
            raise CheckFailed(f"{uri}: no contents")
        return f"{uri}: {len(contents)} content item(s)"


    def _offers(self, capability: str) -> bool:
        server = self.connection.server
        return server is not None and server.has_capability(capability)

    async def _listed(self, method: str, key: str) -> list[dict[str, Any]]:
        """The first page of a list (a check needs no more); -32601 is a skip."""
        try:
            result = await self.connection.request(method)
        except MethodNotFound:
            raise Skip(f"server does not answer {method}") from None
        items = result.get(key)
        if not isinstance(items, list):
            raise CheckFailed(f"result has no {key} list")
        return [item for item in items if isinstance(item, dict)]

    async def templates_list(self) -> str:
        if not self._offers("resources"):
            raise Skip("server has no resources capability")
        self.templates = await self._listed(methods.RESOURCES_TEMPLATES_LIST,
                                            "resourceTemplates")
        return f"{len(self.templates)} templates: " + ", ".join(
            str(t.get("uriTemplate")) for t in self.templates)

    async def prompts_list(self) -> str:
        if not self._offers("prompts"):
            raise Skip("server has no prompts capability")
        self.prompts = await self._listed(methods.PROMPTS_LIST, "prompts")
        return f"{len(self.prompts)} prompts: " + ", ".join(
            str(p.get("name")) for p in self.prompts)

    async def prompts_get(self) -> str:
        if not self.prompts:
            raise Skip("no prompts listed")
        prompt = self.prompts[0]
        name = str(prompt.get("name"))
        arguments: dict[str, str] = {}
        for argument in _prompt_arguments(prompt):
            if argument.get("required"):
                arguments[str(argument["name"])] = await self._sample_argument(
                    {"type": "ref/prompt", "name": name}, str(argument["name"]), arguments)
        params: dict[str, Any] = {"name": name}
        if arguments:
            params["arguments"] = arguments
        result = await self.connection.request(methods.PROMPTS_GET, params)
        messages = result.get("messages")
        if not isinstance(messages, list):
            raise CheckFailed(f"{name}: result has no messages list")
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        return f"{name}({shown}): {len(messages)} message(s)"

    async def _sample_argument(self, ref: dict[str, Any], argument: str,
                               context: dict[str, str]) -> str:
        """A value for a required argument: the server's first completion, else a sample."""
        if self._offers("completions"):
            params: dict[str, Any] = {"ref": ref, "argument": {"name": argument, "value": ""}}
            if context:
                params["context"] = {"arguments": dict(context)}
            try:
                result = await self.connection.request(methods.COMPLETION_COMPLETE, params)
                values = result["completion"]["values"]
                if values and isinstance(values[0], str):
                    return values[0]
            except (MCPError, LookupError, TypeError):
                pass  # the sample value serves; the completion check reports what failed
        return SAMPLE_PROMPT_VALUE

    async def completion(self) -> str:
        if not self._offers("completions"):
            raise Skip("server has no completions capability")
        target = self._completion_target()
        if target is None:
            raise Skip("no prompt argument or template variable to complete")
        ref, argument = target
        result = await self.connection.request(methods.COMPLETION_COMPLETE, {
            "ref": ref, "argument": {"name": argument, "value": ""}})
        completion = result.get("completion")
        values = completion.get("values") if isinstance(completion, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise CheckFailed("result has no completion values")
        what = ref.get("name") or ref.get("uri")
        return f"{what} {argument}: {len(values)} value(s)" + (
            f": {', '.join(values[:5])}" if values else "")

    def _completion_target(self) -> tuple[dict[str, Any], str] | None:
        for prompt in self.prompts:
            for argument in _prompt_arguments(prompt):
                return {"type": "ref/prompt", "name": str(prompt.get("name"))}, str(
                    argument["name"])
        for template in self.templates:
            uri = str(template.get("uriTemplate", ""))
            variable = _TEMPLATE_VARIABLE.search(uri)
            if variable:
                return {"type": "ref/resource", "uri": uri}, variable[1]
        return None


def _prompt_arguments(prompt: dict[str, Any]) -> list[dict[str, Any]]:
    arguments = prompt.get("arguments")
    return [a for a in arguments if isinstance(a, dict) and isinstance(a.get("name"), str)
            ] if isinstance(arguments, list) else []


async def _timed(server: str, check: str, run: Callable[[], Awaitable[str]]) -> CheckResult:
    start = time.perf_counter()
    try:
        detail = await run()
        status = PASS
    except Skip as exc:
        status, detail = SKIP, str(exc)
    except (CheckFailed, MCPError) as exc:
        status, detail = FAIL, str(exc)
    except Exception as exc:  # what a hostile server provokes fails its check, not the run
        logger.debug("%s: check %s failed", server, check, exc_info=True)
        status, detail = FAIL, f"{type(exc).__name__}: {exc}"
    return CheckResult(server, check, status, time.perf_counter() - start, for_display(detail))


async def _check_server(connection: MCPConnection) -> list[CheckResult]:
    checks = _ServerChecks(connection)
    name = connection.name
    handshake = await _timed(name, "handshake", checks.handshake)
    # The handshake ran when the client connected: report how long that took.
    results = [CheckResult(name, handshake.check, handshake.status,
                           connection.handshake_seconds or 0.0, handshake.detail)]
    if handshake.status != PASS:
        return results
    results.append(await _timed(name, "ping", checks.ping))
    results.append(await _timed(name, "tools/list", checks.tools_list))
    for tool in checks.tools:
        check = f"call {for_display(str(tool['name']), 200)}"
        results.append(await _timed(name, check, checks.tool_call(tool)))
    results.append(await _timed(name, "disabled tool", checks.disabled_tool))
    results.append(await _timed(name, "unknown tool", checks.unknown_tool))
    results.append(await _timed(name, "bad arguments", checks.bad_arguments))
    results.append(await _timed(name, "resources/list", checks.resources_list))
    results.append(await _timed(name, "resources/read", checks.resources_read))
    results.append(await _timed(name, "resources/templates/list", checks.templates_list))
    results.append(await _timed(name, "prompts/list", checks.prompts_list))
    results.append(await _timed(name, "prompts/get", checks.prompts_get))
    results.append(await _timed(name, "completion/complete", checks.completion))
    return results


async def _check_broadcast(client: MultiServerMCPClient) -> list[CheckResult]:
    """Broadcast ``echo``: servers that have it must answer, the others must refuse."""
    has_echo = {
        name: isinstance(tools, list) and any(t.get("name") == "echo" for t in tools)
        for name, tools in (await client.list_tools()).items()
    }
    broadcast = await client.broadcast("echo", {"message": "mcp-client broadcast"})
    results = []
    for outcome in broadcast.outcomes:
        if has_echo[outcome.server]:
            ok = outcome.result is not None and not outcome.result.get("isError")
            detail = _short(_text_of(outcome.result) if outcome.result else str(outcome.error))
        else:
            ok = outcome.result is None or bool(outcome.result.get("isError"))
            detail = "refused as expected (no echo): " + _short(
                str(outcome.error) if outcome.error else _text_of(outcome.result or {}))
        results.append(CheckResult(outcome.server, "broadcast", PASS if ok else FAIL,
                                   outcome.seconds, for_display(detail)))
    return results


async def _check_removal(client: MultiServerMCPClient, name: str) -> CheckResult:
    async def check() -> str:
        connection = client.get(name)
        await client.remove(name)
        if name in client.names or connection.is_open:
            raise CheckFailed("still connected after remove")
        try:
            await client.call(name, "echo", {"message": "gone"})
        except ServerNotFound:
            return "removed; calls now fail with Unknown server"
        raise CheckFailed("a call to the removed server did not fail")
    return await _timed(name, "removal", check)


async def run_checks(
    client: MultiServerMCPClient, connect_errors: dict[str, Exception] | None = None
) -> TestReport:
    """Run the checklist on every server of ``client`` (removing them all at the end).

    Args:
        client: the connected servers.
        connect_errors: servers that could not be connected; each fails its handshake.
    """
    start = time.perf_counter()
    report = TestReport()
    for name, error in (connect_errors or {}).items():
        report.results.append(CheckResult(name, "handshake", FAIL, 0.0, for_display(str(error))))
    per_server = await asyncio.gather(
        *(_check_server(c) for c in client.connections.values()))
    by_server: dict[str, list[CheckResult]] = {
        results[0].server: results for results in per_server}
    if len(client) > 0:
        for result in await _check_broadcast(client):
            by_server[result.server].append(result)
    for name in client.names:
        by_server[name].append(await _check_removal(client, name))
    for results in by_server.values():
        report.results.extend(results)
    report.seconds = time.perf_counter() - start
    return report


