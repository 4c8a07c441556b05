"""The client side of the MCP lifecycle as plain functions: what to send, how to read answers.

Theory of operation: a client session (``client/connection.py``) owns the sockets, the
futures and the timeouts; it asks this module what the ``initialize`` request holds, whether
the server's answer is one it can work with, how to read a page of ``tools/list``, and what
to answer a request the server sends it. Nothing here awaits anything, so every rule is
unit-tested without an event loop.

The handshake (protocol 2024-11-05 to 2025-11-25): the client sends ``initialize`` with the
newest version it speaks; the server answers that version if it supports it, else its own
newest; the client goes on only if it speaks the answer, then sends
``notifications/initialized``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import methods
from .errors import MethodNotFound, ProtocolError
from .jsonrpc import RequestId
from .versions import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION

__all__ = [
    "CLIENT_NAME",
    "InitializeResult",
    "cancelled_params",
    "initialize_params",
    "parse_initialize_result",
    "parse_tools_page",
    "reply_to_server_request",
    "tool_call_params",
]

CLIENT_NAME = "mcp-multi-client"


def initialize_params(
    client_version: str,
    *,
    client_name: str = CLIENT_NAME,
    protocol_version: str = LATEST_HANDSHAKE_VERSION,
    capabilities: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``params`` of an ``initialize`` request.

    Args:
        client_version: our version, reported in ``clientInfo``.
        client_name: our name, reported in ``clientInfo``.
        protocol_version: the version we ask for (our newest by default).
        capabilities: client capabilities; none by default (no sampling, roots, elicitation).
    """
    return {
        "protocolVersion": protocol_version,
        "capabilities": dict(capabilities or {}),
        "clientInfo": {"name": client_name, "version": client_version},
    }


@dataclass(frozen=True, slots=True)
class InitializeResult:
    """What the server told us in its ``initialize`` result."""

    protocol_version: str
    server_name: str
    server_version: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    instructions: str | None = None

    def has_capability(self, name: str) -> bool:
        return name in self.capabilities


def parse_initialize_result(result: dict[str, Any]) -> InitializeResult:
    """Check an ``initialize`` result and read it.

    Raises:
        ProtocolError: a member is missing or malformed, or the server chose a protocol
            version we do not speak (the client must then disconnect).
    """
    version = result.get("protocolVersion")
    if not isinstance(version, str):
        raise ProtocolError("initialize result has no protocolVersion")
    if version not in HANDSHAKE_VERSIONS:
        # Only a handshake-era version can be the answer to initialize.
        raise ProtocolError(f"server chose protocol version {version!r}, which we do not speak")
    info = result.get("serverInfo")
    if not isinstance(info, dict):
        raise ProtocolError("initialize result has no serverInfo")
    capabilities = result.get("capabilities", {})
    if not isinstance(capabilities, dict):
        raise ProtocolError("initialize result capabilities is not an object")
    instructions = result.get("instructions")
    return InitializeResult(
        protocol_version=version,
        server_name=str(info.get("name", "")),
        server_version=str(info.get("version", "")),
        capabilities=capabilities,
        instructions=instructions if isinstance(instructions, str) else None,
    )


def parse_tools_page(result: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The tools of one ``tools/list`` page and the cursor of the next (``None`` at the end).

    Raises:
        ProtocolError: ``tools`` is not a list of objects with a string ``name``.
    """
    tools = result.get("tools")
    if not isinstance(tools, list):
        raise ProtocolError("tools/list result has no tools list")
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ProtocolError(f"tools/list result holds a malformed tool: {tool!r}")
    cursor = result.get("nextCursor")
    return tools, cursor if isinstance(cursor, str) and cursor else None


def tool_call_params(name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``params`` of a ``tools/call`` request."""
    return {"name": name, "arguments": arguments if arguments is not None else {}}


def cancelled_params(request_id: RequestId, reason: str) -> dict[str, Any]:
    """The ``params`` of ``notifications/cancelled`` for a request we gave up on."""
    return {"requestId": request_id, "reason": reason}


def reply_to_server_request(method: str) -> dict[str, Any]:
    """The result a client without capabilities answers to a request from the server.

    ``ping`` is answered with an empty result, as every MCP peer must.

    Raises:
        MethodNotFound: any other method (we declare no sampling, roots or elicitation).
    """
    if method == methods.PING:
        return {}
    raise MethodNotFound(f"Method not found: {method}")
