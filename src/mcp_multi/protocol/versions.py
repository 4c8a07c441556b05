"""Protocol revisions and version negotiation: every version rule lives in this module.

The handshake era (2024-11-05 … 2025-11-25) negotiates in ``initialize``: the server answers
the client's version when it supports it, else its own latest, and the client disconnects if
it cannot speak the answer. The stateless revision (2026-07-28) is added here, not in the
transports, when it lands.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_HTTP_VERSION",
    "HANDSHAKE_VERSIONS",
    "LATEST_HANDSHAKE_VERSION",
    "SUPPORTED_VERSIONS",
    "is_supported",
    "negotiate",
    "supports",
]

# Oldest first. The legacy HTTP+SSE transport belongs to the first.
HANDSHAKE_VERSIONS: tuple[str, ...] = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE_VERSION = HANDSHAKE_VERSIONS[-1]
SUPPORTED_VERSIONS: tuple[str, ...] = HANDSHAKE_VERSIONS
# Streamable HTTP: a request with no MCP-Protocol-Version header is taken as this revision.
DEFAULT_HTTP_VERSION = "2025-03-26"

# Features by the first revision that has them.
_FEATURES: dict[str, str] = {
    "batch": "2025-03-26",  # JSON-RPC batches (removed again in 2025-06-18)
    "tool_annotations": "2025-03-26",
    "structured_content": "2025-06-18",
    "tool_title": "2025-06-18",
    "input_validation_as_tool_error": "2025-11-25",
}
_BATCH_REMOVED = "2025-06-18"


def is_supported(version: str) -> bool:
    return version in SUPPORTED_VERSIONS


def negotiate(requested: object) -> str:
    """The version a server answers to an ``initialize`` asking for ``requested``."""
    if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS:
        return requested
    return LATEST_HANDSHAKE_VERSION


def supports(version: str, feature: str) -> bool:
    """Whether a negotiated ``version`` has ``feature`` (a key of the table above)."""
    if feature == "batch":
        return _FEATURES["batch"] <= version < _BATCH_REMOVED
    return version >= _FEATURES[feature]
