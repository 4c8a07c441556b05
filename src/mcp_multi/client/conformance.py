"""``--mode conformance``: the one-shot client the official MCP conformance suite starts.

``conformance client --command "mcp-client --mode conformance" --scenario NAME`` runs the
command with the URL of the scenario's server appended, and ``MCP_CONFORMANCE_SCENARIO`` and
``MCP_CONFORMANCE_PROTOCOL_VERSION`` in its environment. The client scenarios we take part in
(``initialize``, ``tools_call``, ``sse-retry``, ``request-metadata``) ask the same of a client:
open a session the way it always does (the ``server/discover`` probe, the fallback to
``initialize``), list the tools, call each with the arguments its schema asks for, and leave
(ending the session). That is all this mode does, one line per step on stdout; the suite judges
the traffic, and the exit code says whether every step got an answer: a JSON-RPC error reply is
an answer (the step's line says ``error:`` and the run goes on), and so is an ``input_required``
result (``incomplete:``, naming what the server asked for), while no answer at all (the
connection failed, broke or timed out) is exit code 1. Text the server sent is shown escaped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from ..protocol.errors import InputRequired, JSONRPCError, MCPError
from ..protocol.text import for_display
from .checklist import sample_arguments
from .connection import FrameHook, MCPConnection
from .multi import MultiServerMCPClient
from .targets import ServerSpec

__all__ = ["run_conformance"]

logger = logging.getLogger(__name__)


async def run_conformance(
    spec: ServerSpec,
    *,
    timeout: float,
    protocol_version: str | None = None,
    headers: dict[str, str] | None = None,
    on_frame: FrameHook | None = None,
    write: Callable[[str], None],
) -> int:
    """Run the conformance client against one server; return the exit code (0: all answered).

    Args:
        spec: the scenario's server.
        timeout: seconds per request.
        protocol_version: speak only this version (``None``: probe, as always).
        headers: extra HTTP headers.
        on_frame: hook shown every JSON-RPC frame (``--trace``).
        write: where the step lines go (the command line prints them).
    """
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "(none)")
    write(f"conformance scenario {scenario} against {spec.url}")
    async with MultiServerMCPClient(timeout=timeout, on_frame=on_frame, headers=headers,
                                    protocol_version=protocol_version) as client:
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
            for tool in tools:
                await _call(connection, tool, write)
        except MCPError as exc:
            write(f"failed: {for_display(str(exc))}")
            return 1
        except Exception as exc:  # a surprise is a failed run in one line, not a traceback
            logger.debug("conformance run failed", exc_info=True)
            write(f"failed: {for_display(f'{type(exc).__name__}: {exc}')}")
            return 1
    write("done")
    return 0


async def _call(connection: MCPConnection, tool: dict[str, Any],
                write: Callable[[str], None]) -> None:
    """Call one tool with sample arguments; a JSON-RPC error reply is its answer."""
    name = for_display(str(tool["name"]))
    arguments = sample_arguments(tool)
    shown = for_display(repr(arguments))  # sample values may come from the server's schema
    try:
        result = await connection.call_tool(tool["name"], arguments)
    except JSONRPCError as exc:
        write(f"call {name} {shown}: error: {for_display(str(exc))}")
        return
    except InputRequired as exc:  # an answer too, one this client cannot follow up yet
        write(f"call {name} {shown}: incomplete: {for_display(str(exc))}")
        return
    texts = [str(c.get("text", "")) for c in result.get("content") or ()
             if isinstance(c, dict)]
    verdict = "error" if result.get("isError") else "ok"
    write(f"call {name} {shown}: {verdict}: {for_display(' '.join(texts))}")
