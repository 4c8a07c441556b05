"""``--mode conformance``: the one-shot client the official MCP conformance suite starts.

``conformance client --command "mcp-client --mode conformance" --scenario NAME`` runs the
command with the URL of the scenario's server appended, and ``MCP_CONFORMANCE_SCENARIO`` and
``MCP_CONFORMANCE_PROTOCOL_VERSION`` in its environment. The client scenarios we take part in
(``initialize``, ``tools_call``, ``sse-retry``, ``request-metadata``) ask the same of a client:
open a session the way it always does (the ``server/discover`` probe, the fallback to
``initialize``), list the tools, call each with the arguments its schema asks for, and leave
(ending the session). That is all this mode does, one line per step on stdout; the suite judges
the traffic, and the exit code says whether every step got an answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..protocol.errors import MCPError
from .connection import FrameHook
from .multi import MultiServerMCPClient
from .targets import ServerSpec
from .testmode import sample_arguments

__all__ = ["run_conformance"]


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
            write(f"connected: {server.server_name!r} {server.server_version}, protocol "
                  f"{server.protocol_version} ({connection.era} era)")
            tools = await connection.list_tools()
            write(f"tools: {', '.join(t['name'] for t in tools) or '(none)'}")
            for tool in tools:
                arguments = sample_arguments(tool)
                result = await connection.call_tool(tool["name"], arguments)
                texts = [str(c.get("text", "")) for c in result.get("content") or ()
                         if isinstance(c, dict)]
                verdict = "error" if result.get("isError") else "ok"
                write(f"call {tool['name']} {arguments}: {verdict}: {' '.join(texts)}")
        except MCPError as exc:
            write(f"failed: {exc}")
            return 1
    write("done")
    return 0
