"""The one exception tree of mcp-multi-server.

::

    MCPError                      root of everything we raise
    ├── JSONRPCError              an error that travels on the wire (code, message, data)
    │   ├── ParseError            -32700 the bytes are not JSON
    │   ├── InvalidRequest        -32600 JSON, but not a JSON-RPC 2.0 request
    │   ├── MethodNotFound        -32601
    │   ├── InvalidParams         -32602
    │   ├── InternalError         -32603
    │   ├── ResourceNotFound      -32002 unknown resource URI (handshake era; 2026-07-28: -32602)
    │   ├── RequestCancelled      -32800 the request was cancelled before it could answer
    │   ├── HeaderMismatch        -32020 HTTP headers disagree with the body (2026-07-28)
    │   ├── MissingRequiredClientCapability  -32021 (2026-07-28)
    │   └── UnsupportedProtocolVersion       -32022 ``data.supported`` lists ours (2026-07-28)
    ├── ProtocolError             the peer broke the MCP/JSON-RPC rules (bad frame, bad state)
    ├── InputRequired             a result asks for input (sampling, elicitation, roots) that
    │                             this client cannot give yet (2026-07-28 input_required)
    └── TransportError            moving bytes failed
        ├── ConnectionClosed      the connection went away; pending requests fail with it
        │   └── SessionExpired    the server forgot our session (HTTP 404): initialize again
        ├── HTTPStatusError       an HTTP error status without a JSON-RPC answer in its body
        │   └── AuthorizationRequired  401/403: credentials wanted (``challenge`` says how)
        ├── RequestFailed         one request's answer can no longer come (its stream broke)
        └── RequestTimeout        no answer within the request's timeout

A :class:`JSONRPCError` received from a peer is raised again on our side with the same code,
so callers can catch ``MethodNotFound`` whether we or the server detected it. Every code we
send or read is named here; nothing else in the package spells a code as a number.

An error raised while a message is read carries the id of the request it answers in
``request_id`` (``None`` when no valid id could be read), so whoever answers it addresses
the error response without looking into ``data``.
"""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = [
    "HEADER_MISMATCH",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "MISSING_REQUIRED_CLIENT_CAPABILITY",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
    "RESOURCE_NOT_FOUND",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "AuthorizationRequired",
    "ConnectionClosed",
    "HTTPStatusError",
    "HeaderMismatch",
    "InputRequired",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "JSONRPCError",
    "MCPError",
    "MethodNotFound",
    "MissingRequiredClientCapability",
    "ParseError",
    "ProtocolError",
    "RequestCancelled",
    "RequestFailed",
    "RequestTimeout",
    "ResourceNotFound",
    "SessionExpired",
    "TransportError",
    "UnsupportedProtocolVersion",
]

_RequestId: TypeAlias = str | int  # as in jsonrpc, which imports this module

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# MCP's code for an unknown resource URI (handshake-era revisions; 2026-07-28 uses -32602).
RESOURCE_NOT_FOUND = -32002
# What answers a request cancelled before it could (LSP's RequestCancelled; the official SDK
# ends a cancelled Streamable HTTP request's stream with it).
REQUEST_CANCELLED = -32800
# Codes the 2026-07-28 revision defines in the range it reserves (-32020 … -32099).
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022


class MCPError(Exception):
    """Root of every exception this package raises."""


class JSONRPCError(MCPError):
    """A JSON-RPC error object: ``code``, ``message`` and optional ``data``.

    Attributes:
        request_id: the id of the request this error answers, when the error was raised
            while reading that request (never sent inside ``data``); ``None`` otherwise.
    """

    code: int = INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None, *, code: int | None = None,
                 request_id: _RequestId | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.request_id = request_id
        if code is not None:
            self.code = code

    def to_error(self) -> dict[str, Any]:
        """The ``error`` member of a JSON-RPC response."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    @classmethod
    def from_error(cls, error: Any) -> JSONRPCError:
        """Build the matching subclass from a received ``error`` member."""
        if not isinstance(error, dict):
            return InternalError(f"malformed error object: {error!r}")
        code = error.get("code")
        message = str(error.get("message", ""))
        data = error.get("data")
        if not isinstance(code, int):
            return InternalError(message or "malformed error object", data)
        klass = _BY_CODE.get(code, JSONRPCError)
        return klass(message, data, code=code)

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


class ParseError(JSONRPCError):
    code = PARSE_ERROR


class InvalidRequest(JSONRPCError):
    code = INVALID_REQUEST


class MethodNotFound(JSONRPCError):
    code = METHOD_NOT_FOUND


class InvalidParams(JSONRPCError):
    code = INVALID_PARAMS


class InternalError(JSONRPCError):
    code = INTERNAL_ERROR


class ResourceNotFound(JSONRPCError):
    """``resources/read`` named a URI the server does not have (``data.uri`` names it)."""

    code = RESOURCE_NOT_FOUND

    @classmethod
    def for_uri(cls, uri: str) -> ResourceNotFound:
        return cls(f"Resource not found: {uri}", {"uri": uri})


class RequestCancelled(JSONRPCError):
    """The request was cancelled (``notifications/cancelled``, shutdown) before it answered."""

    code = REQUEST_CANCELLED


class HeaderMismatch(JSONRPCError):
    """A Streamable HTTP header (``MCP-Protocol-Version``, ``Mcp-Method``, ``Mcp-Name``) is
    missing or disagrees with the JSON-RPC body."""

    code = HEADER_MISMATCH


class MissingRequiredClientCapability(JSONRPCError):
    """The request needs a client capability its ``_meta`` did not declare."""

    code = MISSING_REQUIRED_CLIENT_CAPABILITY


class UnsupportedProtocolVersion(JSONRPCError):
    """The request names a protocol version the server does not serve.

    ``data`` is ``{"supported": [...], "requested": ...}`` so the client can retry.
    """

    code = UNSUPPORTED_PROTOCOL_VERSION


# The codes a received error is rebuilt as its subclass from: JSON-RPC's own and the ones
# 2026-07-28 defines. MCP's -32002 and LSP's -32800 come back as a plain JSONRPCError with
# their code (callers compare ``code`` against the constants above).
_BY_CODE: dict[int, type[JSONRPCError]] = {
    k.code: k for k in (
        ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError,
        HeaderMismatch, MissingRequiredClientCapability, UnsupportedProtocolVersion,
    )
}


class ProtocolError(MCPError):
    """The peer sent something that breaks JSON-RPC or MCP (we cannot answer it)."""


class TransportError(MCPError):
    """Moving bytes to or from a peer failed."""


class ConnectionClosed(TransportError):
    """The connection is gone; every pending request fails with this."""


class SessionExpired(ConnectionClosed):
    """The server no longer knows our session (Streamable HTTP answered 404 to its id).

    The transport has dropped the session id; a new handshake opens a fresh session.
    """


class HTTPStatusError(TransportError):
    """The server answered an HTTP error status whose body is no JSON-RPC message.

    Attributes:
        status: the HTTP status code.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RequestFailed(TransportError):
    """The answer to one request can no longer arrive (e.g. its response stream broke and
    cannot be resumed); only that request fails, the connection lives on.

    Attributes:
        request_id: the id of the request that failed.
    """

    def __init__(self, message: str, request_id: _RequestId) -> None:
        super().__init__(message)
        self.request_id = request_id


class RequestTimeout(TransportError):
    """No response arrived within the request's timeout."""


class AuthorizationRequired(HTTPStatusError):
    """The server answered HTTP 401 or 403: it wants credentials (or better ones).

    Attributes:
        status: 401 or 403.
        challenge: the ``WWW-Authenticate`` header as the server sent it, or ``None``.
    """

    def __init__(self, message: str, status: int, challenge: str | None = None) -> None:
        super().__init__(message, status)
        self.challenge = challenge


class InputRequired(MCPError):
    """The server answered ``resultType: input_required``: it needs input from the client
    (the requests in ``inputRequests``) that this client cannot give yet.

    Attributes:
        methods: the methods the server asked the client to answer, in the order given.
        result: the whole result, for a caller that can answer it.
    """

    def __init__(self, message: str, methods: list[str], result: dict[str, Any]) -> None:
        super().__init__(message)
        self.methods = methods
        self.result = result
