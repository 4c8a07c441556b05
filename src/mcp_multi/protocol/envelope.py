"""The per-request envelope of the modern era (2026-07-28), and its HTTP header mirror.

Theory of operation: a modern request carries, in ``params._meta``, everything a handshake
used to establish: ``io.modelcontextprotocol/protocolVersion`` and
``io.modelcontextprotocol/clientCapabilities`` (both required; missing → -32602), optionally
``io.modelcontextprotocol/clientInfo`` and ``io.modelcontextprotocol/logLevel``.
:func:`read_envelope` checks it and says which version serves the request.

On Streamable HTTP the client also mirrors the version, the method and the tool name or
resource URI into ``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name`` so intermediaries
can route without reading the body; :func:`check_headers` rejects a request whose headers
are missing or disagree with its body (-32020, HTTP 400). The checks run in the order the
official SDK runs them: envelope present, headers agree, version served.

Every modern result says what it is (``resultType``), who answered
(``_meta["io.modelcontextprotocol/serverInfo"]``) and, for the cacheable methods, how long it
stays fresh (``ttlMs``, ``cacheScope``): :func:`complete_result` adds them.

The client side is the mirror image: :func:`request_meta` is what a client puts in every
request's ``_meta``, :func:`with_envelope` puts it there, and :func:`mirror_headers` derives
the HTTP headers from the finished request body, so they cannot disagree with it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

from .errors import HeaderMismatch, InvalidParams
from .methods import LOG_LEVELS
from .versions import MODERN_VERSIONS, PROTOCOL_VERSION_META, unsupported_version
from .wire import METHOD_HEADER, NAME_HEADER, VERSION_HEADER

__all__ = [
    "CLIENT_CAPABILITIES_META",
    "CLIENT_INFO_META",
    "LOG_LEVEL_META",
    "NAME_BEARING_METHODS",
    "PROTOCOL_VERSION_META",
    "SERVER_INFO_META",
    "SUBSCRIPTION_ID_META",
    "CacheHint",
    "Envelope",
    "agreeing_envelope",
    "check_headers",
    "complete_result",
    "decode_header_value",
    "encode_header_value",
    "has_envelope",
    "mirror_headers",
    "read_envelope",
    "request_meta",
    "with_envelope",
]

CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_META = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_META = "io.modelcontextprotocol/logLevel"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_META = "io.modelcontextprotocol/subscriptionId"

# Method -> the params field its ``Mcp-Name`` header mirrors (the tasks extension's methods
# mirror the task id, so a load balancer can route a poll to the instance holding the task).
NAME_BEARING_METHODS: dict[str, str] = {
    "tools/call": "name",
    "resources/read": "uri",
    "prompts/get": "name",
    "tasks/get": "taskId",
    "tasks/update": "taskId",
    "tasks/cancel": "taskId",
}

_NONE: list[str] = []  # getall's default: no such header (never changed)
_B64_SENTINEL = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")
# What a header value may hold verbatim: visible ASCII and inner spaces (RFC 9110 field-vchar).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")


@dataclass(slots=True)
class Envelope:
    """What a modern request says about itself (read, never changed: not frozen only
    because a frozen dataclass costs a call per field to make, and one is made per request)."""

    protocol_version: str
    client_capabilities: dict[str, Any]
    client_info: dict[str, Any] | None = None
    log_level: str | None = None


@dataclass(frozen=True, slots=True)
class CacheHint:
    """``ttlMs`` and ``cacheScope`` of a cacheable result."""

    ttl_ms: int
    scope: str = "public"


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """``isinstance(value, Mapping)``, asking the C-level ``dict`` check first: what JSON
    decodes to is a dict, and the ABC's own check is Python (it showed per request)."""
    return value is not None and isinstance(value, (dict, Mapping))  # None: no ABC check


def has_envelope(params: Mapping[str, Any] | None) -> bool:
    """Whether ``params._meta`` carries the modern version key."""
    meta = params.get("_meta") if params else None
    return _is_mapping(meta) and PROTOCOL_VERSION_META in meta


def read_envelope(params: Mapping[str, Any] | None) -> Envelope:
    """Check a modern request's envelope (``params`` is the request's params).

    Raises:
        InvalidParams: a required key is missing, or a value has the wrong type.
        UnsupportedProtocolVersion: the version is not a modern one we serve.
    """
    meta = params.get("_meta") if params else None
    if type(meta) is not dict and not _is_mapping(meta):
        raise InvalidParams(
            f"Invalid params: params._meta must be an object carrying "
            f"{PROTOCOL_VERSION_META!r} and {CLIENT_CAPABILITIES_META!r}"
        )
    if PROTOCOL_VERSION_META not in meta or CLIENT_CAPABILITIES_META not in meta:
        missing = [k for k in (PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META) if k not in meta]
        raise InvalidParams(f"Invalid params: params._meta lacks {', '.join(missing)}")
    version = meta[PROTOCOL_VERSION_META]
    if not isinstance(version, str):
        raise InvalidParams(f"Invalid params: {PROTOCOL_VERSION_META} must be a string")
    if version not in MODERN_VERSIONS:
        raise unsupported_version(version)
    capabilities = meta[CLIENT_CAPABILITIES_META]
    if not isinstance(capabilities, dict):
        raise InvalidParams(f"Invalid params: {CLIENT_CAPABILITIES_META} must be an object")
    info = meta.get(CLIENT_INFO_META)
    level = meta.get(LOG_LEVEL_META)
    if level is not None and level not in LOG_LEVELS:
        raise InvalidParams(
            f"Invalid params: {LOG_LEVEL_META} must be one of {', '.join(LOG_LEVELS)}"
        )
    return Envelope(version, capabilities, info if isinstance(info, dict) else None, level)


def decode_header_value(value: str | None) -> str | None:
    """A header value as sent, or the UTF-8 text inside ``=?base64?…?=``; None if malformed."""
    if value is None or not value.startswith("=?base64?"):
        return value
    match = _B64_SENTINEL.fullmatch(value)
    if match is None:
        return value
    payload = match.group("payload")
    try:
        raw = base64.b64decode(payload, validate=True)
        if base64.b64encode(raw).decode("ascii") != payload:
            return None
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


class MultiHeaders(Protocol):
    """Request headers as a case-insensitive multi-mapping (aiohttp's ``CIMultiDictProxy``)."""

    def getall(self, key: str, default: list[str], /) -> list[str]: ...


# The routing headers a modern request mirrors, as :func:`check_headers` names them.
_ROUTING_HEADERS = (VERSION_HEADER, METHOD_HEADER, NAME_HEADER)


def check_headers(headers: MultiHeaders, method: str,
                  params: Mapping[str, Any] | None) -> None:
    """Check the mirrored headers of a modern Streamable HTTP request against its body.

    Only runs on an envelope that :func:`has_envelope` found; a request without one fails
    :func:`read_envelope` first. ``headers`` is asked for each routing header by name (three
    lookups in the C multidict, not a walk over every header in Python).

    Raises:
        HeaderMismatch: a header is repeated, missing, malformed, or disagrees with the body.
    """
    seen: dict[str, str] = {}
    for name in _ROUTING_HEADERS:
        values = headers.getall(name, _NONE)
        if values:
            if len(values) > 1:
                raise HeaderMismatch(f"Header mismatch: {name} appears more than once")
            seen[name] = values[0]
    meta = params.get("_meta") if params else None
    version = meta.get(PROTOCOL_VERSION_META) if _is_mapping(meta) else None
    header_version = seen.get(VERSION_HEADER)
    if header_version is None or header_version != version:
        raise HeaderMismatch(
            f"Header mismatch: MCP-Protocol-Version {header_version!r} does not match "
            f"the body's {PROTOCOL_VERSION_META} {version!r}"
        )
    header_method = seen.get(METHOD_HEADER)
    if header_method != method:
        raise HeaderMismatch(
            f"Header mismatch: Mcp-Method {header_method!r} does not match the body's "
            f"method {method!r}"
        )
    field = NAME_BEARING_METHODS.get(method)
    if field is None or params is None:
        return
    body_value = params.get(field)
    if body_value is None:
        return
    raw_name = seen.get(NAME_HEADER)
    if raw_name is None:
        raise HeaderMismatch(f"Header mismatch: Mcp-Name is required for {method}")
    if decode_header_value(raw_name) != body_value:
        raise HeaderMismatch(
            f"Header mismatch: Mcp-Name {raw_name!r} does not match the body's "
            f"{field} {body_value!r}"
        )


def agreeing_envelope(headers: MultiHeaders, method: str,
                      params: Mapping[str, Any]) -> Envelope | None:
    """The envelope of a modern Streamable HTTP request whose envelope and mirrored headers
    are all as they must be, read in one pass; None when anything is off or unusual (then
    :func:`check_headers` and :func:`read_envelope` say what, in their order).

    The common request's path: what it asks of the headers and ``_meta`` is exactly what
    those two ask, less what they must do to name a fault.
    """
    meta = params.get("_meta")
    if type(meta) is not dict:
        return None
    getall = headers.getall
    try:
        (version,) = getall(VERSION_HEADER, _NONE)  # (missing or repeated: ValueError)
        (header_method,) = getall(METHOD_HEADER, _NONE)
    except ValueError:
        return None
    capabilities = meta.get(CLIENT_CAPABILITIES_META)
    level = meta.get(LOG_LEVEL_META)
    if (header_method != method or meta.get(PROTOCOL_VERSION_META) != version
            or version not in MODERN_VERSIONS or type(capabilities) is not dict
            or (level is not None and level not in LOG_LEVELS)):
        return None
    names = getall(NAME_HEADER, _NONE)
    if len(names) > 1:
        return None
    field = NAME_BEARING_METHODS.get(method)
    value = params.get(field) if field is not None else None
    # A name the header must encode (the sentinel) is left to check_headers to decode.
    if value is not None and (not names or names[0] != value or value.startswith("=?")):
        return None
    info = meta.get(CLIENT_INFO_META)
    return Envelope(version, capabilities, info if isinstance(info, dict) else None, level)


def complete_result(result: dict[str, Any], server_info: Mapping[str, Any],
                    cache: CacheHint | None = None) -> dict[str, Any]:
    """Stamp a handler's result for the modern era, in place, and return it (a result that
    already says what it is, such as a task's ``resultType: "task"``, keeps its type)."""
    result.setdefault("resultType", "complete")
    if cache is not None:
        result.setdefault("ttlMs", cache.ttl_ms)
        result.setdefault("cacheScope", cache.scope)
    meta = result.get("_meta")
    if meta is None:
        result["_meta"] = {SERVER_INFO_META: dict(server_info)}
    elif isinstance(meta, dict) and SERVER_INFO_META not in meta:
        result["_meta"] = {**meta, SERVER_INFO_META: dict(server_info)}
    return result


# ------------------------------------------------------------------ the client side

def request_meta(client_name: str, client_version: str, protocol_version: str,
                 capabilities: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``_meta`` keys a modern client sends on every request."""
    return {
        PROTOCOL_VERSION_META: protocol_version,
        CLIENT_CAPABILITIES_META: dict(capabilities or {}),
        CLIENT_INFO_META: {"name": client_name, "version": client_version},
    }


def with_envelope(params: Mapping[str, Any] | None, meta: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` whose ``_meta`` carries ``meta`` (other ``_meta`` keys kept)."""
    result = dict(params or {})
    existing = result.get("_meta")
    result["_meta"] = {**existing, **meta} if isinstance(existing, Mapping) else dict(meta)
    return result


def encode_header_value(value: str) -> str:
    """``value`` as an HTTP header value: verbatim when it survives the trip, else
    ``=?base64?…?=`` (non-ASCII, control characters, edge spaces, or the sentinel itself)."""
    if _HEADER_SAFE.fullmatch(value) and not _B64_SENTINEL.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def mirror_headers(message: Mapping[str, Any]) -> dict[str, str]:
    """The ``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name`` headers of a modern
    request, taken from its body; empty for anything else (a handshake-era message, a
    notification, a response)."""
    method = message.get("method")
    params = message.get("params")
    if not isinstance(method, str) or "id" not in message or not _is_mapping(params):
        return {}
    meta = params.get("_meta")
    version = meta.get(PROTOCOL_VERSION_META) if _is_mapping(meta) else None
    if not isinstance(version, str):
        return {}
    headers = {VERSION_HEADER: version, METHOD_HEADER: method}
    field = NAME_BEARING_METHODS.get(method)
    name = params.get(field) if field is not None else None
    if isinstance(name, str):
        headers[NAME_HEADER] = encode_header_value(name)
    return headers
