"""Protocol revisions, eras and version negotiation: every version rule lives in this module.

There are two eras of MCP:

- the **handshake** era (2024-11-05 … 2025-11-25) negotiates once, in ``initialize``: the
  server answers the client's version when it supports it, else its own latest, and the client
  disconnects if it cannot speak the answer; the version then holds for the whole session;
- the **modern** era (2026-07-28) is stateless: there is no ``initialize``; every request
  carries its version in ``params._meta["io.modelcontextprotocol/protocolVersion"]`` and is
  accepted or refused on its own (``UnsupportedProtocolVersion``, -32022, lists ours).

How a server tells them apart (a dual-era server serves both):

- on Streamable HTTP, by the ``MCP-Protocol-Version`` header of each request
  (:func:`http_era`): absent or a handshake version is the handshake era, a modern version
  is the modern era, anything else is refused;
- on a stream transport (WebSocket, legacy SSE, stdio), the connection's first request
  decides once (:func:`opening_era`): a request carrying the modern ``_meta`` version key
  opens a modern connection, anything else (``initialize`` above all) a handshake one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from .errors import UnsupportedProtocolVersion
from .methods import INITIALIZE

__all__ = [
    "DEFAULT_HTTP_VERSION",
    "HANDSHAKE",
    "HANDSHAKE_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "LATEST_MODERN_VERSION",
    "MODERN",
    "MODERN_VERSIONS",
    "PROTOCOL_VERSION_META",
    "SUPPORTED_VERSIONS",
    "Era",
    "http_era",
    "is_handshake",
    "is_modern",
    "is_supported",
    "negotiate",
    "opening_era",
    "supports",
    "unsupported_version",
]

Era = Literal["handshake", "modern"]
HANDSHAKE: Era = "handshake"
MODERN: Era = "modern"

# Oldest first. The legacy HTTP+SSE transport belongs to the first.
HANDSHAKE_VERSIONS: tuple[str, ...] = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE_VERSION = HANDSHAKE_VERSIONS[-1]
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
LATEST_MODERN_VERSION = MODERN_VERSIONS[-1]
# Every revision we speak, oldest first.
SUPPORTED_VERSIONS: tuple[str, ...] = HANDSHAKE_VERSIONS + MODERN_VERSIONS
# Streamable HTTP: a request with no MCP-Protocol-Version header is taken as this revision.
DEFAULT_HTTP_VERSION = "2025-03-26"
# The ``_meta`` key that carries a modern request's version (its prefix is reserved to MCP,
# so handshake-era traffic never carries it).
PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"

_ORDER = {v: i for i, v in enumerate(SUPPORTED_VERSIONS)}

# Features by the first revision that has them (versions are compared by their place in
# SUPPORTED_VERSIONS, never as strings).
_FEATURES: dict[str, str] = {
    "batch": "2025-03-26",  # JSON-RPC batches (removed again in 2025-06-18)
    # Arguments that fail a tool's inputSchema: a tool result with isError (before: -32602).
    "input_validation_as_tool_error": "2025-11-25",
    "sse_priming": "2025-11-25",  # an empty event with an id (and retry) opens each SSE stream
}
# Features a later revision removed again, by the first revision without them.
_REMOVED: dict[str, str] = {
    "batch": "2025-06-18",
    "sse_priming": "2026-07-28",
}


def is_supported(version: str) -> bool:
    """Whether we speak ``version`` (either era)."""
    return version in _ORDER


def is_handshake(version: str) -> bool:
    return version in HANDSHAKE_VERSIONS


def is_modern(version: str) -> bool:
    return version in MODERN_VERSIONS


def negotiate(requested: object) -> str:
    """The version a server answers to an ``initialize`` asking for ``requested``."""
    if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS:
        return requested
    return LATEST_HANDSHAKE_VERSION


def supports(version: str, feature: str) -> bool:
    """Whether ``version`` has ``feature`` (a key of the table above); False if unknown."""
    place = _ORDER.get(version)
    if place is None:
        return False
    if place < _ORDER[_FEATURES[feature]]:
        return False
    removed = _REMOVED.get(feature)
    return removed is None or place < _ORDER[removed]


def opening_era(method: str, params: Mapping[str, Any] | None) -> Era:
    """The era a stream connection takes from its first request.

    Only the reserved version key is evidence of the modern era (handshake requests carry
    ``_meta`` too, for ``progressToken``); ``initialize`` is always the handshake.
    """
    if method == INITIALIZE or not params:
        return HANDSHAKE
    meta = params.get("_meta")
    if meta is None:  # the usual case: skip the ABC check (Python-level) on None
        return HANDSHAKE
    if isinstance(meta, (dict, Mapping)) and PROTOCOL_VERSION_META in meta:
        return MODERN
    return HANDSHAKE


def http_era(header: str | None) -> Era | None:
    """The era of a Streamable HTTP request by its ``MCP-Protocol-Version`` header.

    No header means the handshake era at :data:`DEFAULT_HTTP_VERSION`; ``None`` comes back for
    a version we do not speak (answer :func:`unsupported_version`, HTTP 400).
    """
    if header is None or header in HANDSHAKE_VERSIONS:
        return HANDSHAKE
    if header in MODERN_VERSIONS:
        return MODERN
    return None


def unsupported_version(
    requested: object, message: str = "Unsupported protocol version"
) -> UnsupportedProtocolVersion:
    """The -32022 error for ``requested``.

    ``data.supported`` lists the modern versions only, as ``server/discover`` does: they are
    the ones a client can put in ``_meta`` (the handshake versions are reached through
    ``initialize`` instead, as the official SDK also reasons).
    """
    data: dict[str, Any] = {"supported": list(reversed(MODERN_VERSIONS))}
    if isinstance(requested, str):
        data["requested"] = requested
    return UnsupportedProtocolVersion(message, data)
