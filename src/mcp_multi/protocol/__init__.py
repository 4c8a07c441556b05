"""The sans-I/O protocol core: JSON-RPC 2.0 messages, MCP methods, versions and errors.

Nothing in this package performs I/O or imports asyncio/aiohttp (ruff enforces it).
"""

from .errors import (
    ConnectionClosed,
    InternalError,
    InvalidParams,
    InvalidRequest,
    JSONRPCError,
    MCPError,
    MethodNotFound,
    ParseError,
    ProtocolError,
    RequestTimeout,
    TransportError,
)
from .jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    decode,
    decode_one,
    dumps,
    encode,
    error_response,
    loads,
    parse_message,
)
from .versions import LATEST_HANDSHAKE_VERSION, SUPPORTED_VERSIONS, negotiate

__all__ = [
    "LATEST_HANDSHAKE_VERSION",
    "SUPPORTED_VERSIONS",
    "ConnectionClosed",
    "ErrorResponse",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "JSONRPCError",
    "MCPError",
    "Message",
    "MethodNotFound",
    "Notification",
    "ParseError",
    "ProtocolError",
    "Request",
    "RequestId",
    "RequestTimeout",
    "Response",
    "TransportError",
    "decode",
    "decode_one",
    "dumps",
    "encode",
    "error_response",
    "loads",
    "negotiate",
    "parse_message",
]
