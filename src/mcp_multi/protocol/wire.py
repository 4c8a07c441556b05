"""Names on the wire that both sides share: HTTP header names, media types, default paths.

Each is defined here once; the server's endpoints, the client's transports, the target parser
and the envelope's header mirroring all import them, so a name is never spelled twice.
"""

from __future__ import annotations

__all__ = [
    "ACCEPT_BOTH",
    "DEFAULT_PATHS",
    "JSON_TYPE",
    "LAST_EVENT_ID_HEADER",
    "METHOD_HEADER",
    "NAME_HEADER",
    "PATH_HTTP",
    "PATH_SSE",
    "PATH_SSE_MESSAGE",
    "PATH_WEBSOCKET",
    "SESSION_HEADER",
    "SSE_TYPE",
    "VERSION_HEADER",
    "WEBSOCKET_SUBPROTOCOL",
]

# Headers of Streamable HTTP (and of the 2026-07-28 mirroring of the body).
SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
LAST_EVENT_ID_HEADER = "Last-Event-ID"

# Media types.
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream"
ACCEPT_BOTH = f"{JSON_TYPE}, {SSE_TYPE}"

# The subprotocol that official SDKs ask for on a WebSocket upgrade.
WEBSOCKET_SUBPROTOCOL = "mcp"

# Default endpoint paths of each transport.
PATH_WEBSOCKET = "/ws"
PATH_SSE = "/sse"
PATH_SSE_MESSAGE = "/message"
PATH_HTTP = "/mcp"

# A transport's default path, by the transport's name (as ``--transport`` spells it).
DEFAULT_PATHS = {"websocket": PATH_WEBSOCKET, "sse": PATH_SSE, "http": PATH_HTTP}
