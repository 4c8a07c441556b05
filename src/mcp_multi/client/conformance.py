"""``--mode conformance``: the one-shot client the official MCP conformance suite starts.

``conformance client --command "mcp-client --mode conformance" --scenario NAME`` runs the
command with the URL of the scenario's server appended, and ``MCP_CONFORMANCE_SCENARIO``,
``MCP_CONFORMANCE_PROTOCOL_VERSION`` and (for some scenarios) ``MCP_CONFORMANCE_CONTEXT`` in
its environment. Every client scenario outside ``auth/`` asks the same of a client: open a
session the way it always does (the ``server/discover`` probe, the fallback to
``initialize``), list the tools, call them, answer what the server asks along the way
(elicitation with the form's defaults, sampling and roots by the command line's policies,
``input_required`` results by retrying), and leave (ending the session). The calls:

- the context's ``toolCalls`` when it names some (``http-custom-headers`` gives the exact
  arguments whose ``Mcp-Param-*`` headers it checks), in its order;
- otherwise each listed tool once, with the arguments its schema asks for, except that a
  tool asking for a ``schema`` to echo (``json-schema-2020-12-preservation``) is given the
  ``inputSchema`` of the other tool exactly as listed, so the suite sees what we kept of it.

One line per step on stdout; the suite judges the traffic, and the exit code says whether
every step got an answer: a JSON-RPC error reply is an answer (the step's line says
``error:`` and the run goes on), and so is an ``input_required`` result we could not satisfy
(``incomplete:``), while no answer at all (the connection failed, broke or timed out) is exit
code 1. Text the server sent is shown escaped.

The ``auth/`` scenarios put the server behind OAuth: every connection goes through an
:class:`~mcp_multi.client.auth.oauth.OAuthAuth` whose user agent is the
:class:`~mcp_multi.client.auth.agent.HeadlessAgent` (it follows the authorization URL
itself); the context's ``client_id`` and ``client_secret`` are pre-registered credentials,
and the suite's Client ID Metadata Document URL is offered (:data:`CLIENT_METADATA_URL`,
or the context's ``client_metadata_url``). A server that needs no authorization never
sees any of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import orjson

from ..protocol.errors import InputRequired, JSONRPCError, MCPError
from ..protocol.text import for_display
from .answering import ClientHandlers
from .auth.agent import HeadlessAgent
from .auth.oauth import OAuthAuth, OAuthSettings
from .checklist import sample_arguments
from .connection import FrameHook, MCPConnection
from .multi import MultiServerMCPClient
from .targets import ServerSpec

__all__ = ["CLIENT_METADATA_URL", "conformance_auth", "run_conformance"]

logger = logging.getLogger(__name__)

# The argument an echo tool of the schema-preservation scenario takes the schema in.
_ECHO_ARGUMENT = "schema"
# The Client ID Metadata Document the suite's authorization servers expect (auth/basic-cimd).
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


async def run_conformance(
    spec: ServerSpec,
    *,
    timeout: float,
    protocol_version: str | None = None,
    headers: dict[str, str] | None = None,
    on_frame: FrameHook | None = None,
    handlers: ClientHandlers | None = None,
    write: Callable[[str], None],
) -> int:
    """Run the conformance client against one server; return the exit code (0: all answered).

    Args:
        spec: the scenario's server.
        timeout: seconds per request.
        protocol_version: speak only this version (``None``: probe, as always).
        headers: extra HTTP headers.
        on_frame: hook shown every JSON-RPC frame (``--trace``).
        handlers: what answers the server's sampling, elicitation and roots requests.
        write: where the step lines go (the command line prints them).
    """
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "(none)")
    write(f"conformance scenario {scenario} against {spec.url}")
    async with MultiServerMCPClient(timeout=timeout, on_frame=on_frame, headers=headers,
                                    protocol_version=protocol_version,
                                    handlers=handlers, auth_for=conformance_auth) as client:
        try:
            connection = await client.add_spec(spec)
            server = connection.server
            assert server is not None
            write(f"connected: {for_display(repr(server.server_name))} "
                  f"{for_display(server.server_version)}, protocol "
                  f"{for_display(server.protocol_version)} ({connection.era} era)")
            try:
                tools = await connection.list_tools()
            except JSONRPCError as exc:  # an answer: the server has no tools to call
                write(f"tools: error: {for_display(str(exc))}")
                tools = []
            else:
                names = ", ".join(for_display(str(t["name"])) for t in tools)
                write(f"tools: {names or '(none)'}")
            for name, arguments in _planned_calls(tools):
                await _call(connection, name, arguments, write)
        except MCPError as exc:
            write(f"failed: {for_display(str(exc))}")
            return 1
        except Exception as exc:  # a surprise is a failed run in one line, not a traceback
            logger.debug("conformance run failed", exc_info=True)
            write(f"failed: {for_display(f'{type(exc).__name__}: {exc}')}")
            return 1
    write("done")
    return 0


def _context() -> dict[str, Any]:
    """``MCP_CONFORMANCE_CONTEXT`` as an object (empty when absent or unreadable)."""
    raw = os.environ.get("MCP_CONFORMANCE_CONTEXT")
    if not raw:
        return {}
    try:
        context = orjson.loads(raw)
    except orjson.JSONDecodeError:
        logger.warning("MCP_CONFORMANCE_CONTEXT is not JSON; ignoring it")
        return {}
    return context if isinstance(context, dict) else {}


def conformance_settings(context: dict[str, Any]) -> OAuthSettings:
    """The OAuth settings a scenario's context gives (module docstring)."""

    def text(name: str) -> str | None:
        value = context.get(name)
        return value if isinstance(value, str) and value else None

    return OAuthSettings(client_id=text("client_id"), client_secret=text("client_secret"),
                         client_metadata_url=text("client_metadata_url") or CLIENT_METADATA_URL)


def conformance_auth(spec: ServerSpec) -> OAuthAuth:
    """The authorization of the conformance client's connection to ``spec``."""
    return OAuthAuth(spec.url, conformance_settings(_context()), agent=HeadlessAgent())


def _context_calls() -> list[tuple[str, dict[str, Any]]] | None:
    """The ``toolCalls`` of ``MCP_CONFORMANCE_CONTEXT``, or ``None`` when it names none."""
    calls = _context().get("toolCalls")
    if not isinstance(calls, list):
        return None
    planned = [(call["name"], call.get("arguments") or {}) for call in calls
               if isinstance(call, dict) and isinstance(call.get("name"), str)
               and isinstance(call.get("arguments") or {}, dict)]
    return planned or None


def _planned_calls(tools: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """What to call, with which arguments (see the module docstring)."""
    named = _context_calls()
    if named is not None:
        return named
    return [(tool["name"], _echo_arguments(tool, tools) or sample_arguments(tool))
            for tool in tools]


def _echo_arguments(tool: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """For a tool whose one required argument is an object named ``schema`` while another
    tool is listed, that other tool's ``inputSchema``, exactly as the server sent it."""
    schema = tool.get("inputSchema")
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties")
    if (not isinstance(properties, dict) or schema.get("required") != [_ECHO_ARGUMENT]
            or not isinstance(properties.get(_ECHO_ARGUMENT), dict)
            or properties[_ECHO_ARGUMENT].get("type") != "object"):
        return None
    others = [t for t in tools if t is not tool and isinstance(t.get("inputSchema"), dict)]
    return {_ECHO_ARGUMENT: others[0]["inputSchema"]} if others else None


async def _call(connection: MCPConnection, tool_name: str, arguments: dict[str, Any],
                write: Callable[[str], None]) -> None:
    """Call one tool; a JSON-RPC error reply (or unmet input) is its answer."""
    name = for_display(str(tool_name))
    shown = for_display(repr(arguments))  # sample values may come from the server's schema
    try:
        result = await connection.call_tool(tool_name, arguments)
    except JSONRPCError as exc:
        write(f"call {name} {shown}: error: {for_display(str(exc))}")
        return
    except InputRequired as exc:  # an answer too, one this client could not satisfy
        write(f"call {name} {shown}: incomplete: {for_display(str(exc))}")
        return
    texts = [str(c.get("text", "")) for c in result.get("content") or ()
             if isinstance(c, dict)]
    verdict = "error" if result.get("isError") else "ok"
    write(f"call {name} {shown}: {verdict}: {for_display(' '.join(texts))}")
