"""JSON-RPC 2.0 messages: decode bytes into typed messages, encode messages into bytes.

Theory of operation: a transport hands :func:`decode` the bytes of one frame (a WebSocket
message, an SSE ``data`` field, one POST body, one stdio line). ``decode`` returns the
messages it holds, or raises :class:`ParseError` / :class:`InvalidRequest` carrying the id
in ``request_id`` when one could be recovered, so the caller can answer with the right error
response. Going out, :func:`response`, :func:`error_response` and :func:`notification` build
the wire dicts (plain dicts: the hot path serializes them as they are). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias, TypeGuard

import orjson

from .errors import InvalidRequest, JSONRPCError, ParseError

__all__ = [
    "ErrorResponse",
    "Message",
    "Notification",
    "Request",
    "RequestId",
    "Response",
    "decode",
    "decode_one",
    "dumps",
    "encode",
    "error_response",
    "is_request_id",
    "loads",
    "notification",
    "parse_message",
    "response",
]

RequestId: TypeAlias = str | int


@dataclass(slots=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"jsonrpc": "2.0", "id": self.id, "method": self.method}
        if self.params is not None:
            d["params"] = self.params
        return d


@dataclass(slots=True)
class Notification:
    method: str
    params: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return notification(self.method, self.params)


@dataclass(slots=True)
class Response:
    id: RequestId
    result: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return response(self.id, self.result)


@dataclass(slots=True)
class ErrorResponse:
    id: RequestId | None
    error: JSONRPCError

    def to_dict(self) -> dict[str, Any]:
        return error_response(self.id, self.error)


Message: TypeAlias = Request | Notification | Response | ErrorResponse


def dumps(obj: Any) -> bytes:
    """Serialize any JSON value (orjson; non-str keys allowed, unknown types become str)."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str)


def encode(message: Message | dict[str, Any]) -> bytes:
    """Serialize one message to UTF-8 JSON bytes."""
    if isinstance(message, dict):
        return dumps(message)
    return dumps(message.to_dict())


def response(request_id: RequestId, result: dict[str, Any]) -> dict[str, Any]:
    """The wire dict of a successful response."""
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def error_response(request_id: RequestId | None, error: JSONRPCError) -> dict[str, Any]:
    """The wire dict of an error response."""
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_error()}


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The wire dict of a notification."""
    if params is None:
        return {"jsonrpc": "2.0", "method": method}
    return {"jsonrpc": "2.0", "method": method, "params": params}


def is_request_id(value: Any) -> TypeGuard[RequestId]:
    """Whether ``value`` may be a request's id: a string or an integer.

    JSON-RPC allows string or number ids and MCP forbids null; ``true`` and ``false`` are not
    ids even though Python counts them as integers (``True == 1`` would find request 1).
    """
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse_message(obj: Any) -> Message:
    """Turn one decoded JSON value into a typed message, or raise :class:`InvalidRequest`.

    The raised error's ``request_id`` holds the id when one could be read, so the caller
    can address its error response.
    """
    # The common message, a well-formed request, notification or result as JSON decodes
    # it, in as few steps as it takes; anything else gets every check (and its error) below.
    if type(obj) is dict and obj.get("jsonrpc") == "2.0":
        method = obj.get("method")
        request_id: Any = obj.get("id")  # (an id once good_id says so)
        good_id = type(request_id) is str or type(request_id) is int
        if type(method) is str:
            params = obj.get("params")
            if method and (params is None or type(params) is dict):
                if "id" not in obj:
                    return Notification(method, params)
                if good_id:
                    return Request(request_id, method, params)
        elif good_id and "method" not in obj and "error" not in obj:
            result = obj.get("result")
            if type(result) is dict:
                return Response(request_id, result)
    return _parse_checked(obj)


def _parse_checked(obj: Any) -> Message:
    if not isinstance(obj, dict):
        raise InvalidRequest("Invalid Request: a JSON-RPC message must be an object")
    raw_id = obj.get("id")
    known_id = raw_id if is_request_id(raw_id) else None
    if obj.get("jsonrpc") != "2.0":
        raise InvalidRequest('Invalid Request: "jsonrpc" must be "2.0"', request_id=known_id)
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str) or not method:
            raise InvalidRequest('Invalid Request: "method" must be a string', request_id=known_id)
        params = obj.get("params")
        if params is not None and not isinstance(params, dict):
            raise InvalidRequest('Invalid Request: "params" must be an object', request_id=known_id)
        if "id" not in obj:
            return Notification(method, params)
        if known_id is None:
            raise InvalidRequest('Invalid Request: "id" must be a string or an integer')
        return Request(known_id, method, params)
    if "result" in obj and "error" not in obj:
        if known_id is None:
            raise InvalidRequest("Invalid Response: missing or bad id")
        result = obj["result"]
        if not isinstance(result, dict):
            result = {"value": result}
        return Response(known_id, result)
    if "error" in obj and "result" not in obj:
        return ErrorResponse(known_id, JSONRPCError.from_error(obj["error"]))
    raise InvalidRequest("Invalid Request: neither a request, a notification nor a response",
                         request_id=known_id)


def loads(data: bytes | str) -> Any:
    """Parse JSON text, raising :class:`ParseError` when it is not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"Parse error: {exc}") from None


def decode(data: bytes | str) -> list[Message | InvalidRequest] | Message:
    """Decode one frame.

    A single message comes back as a message (or :class:`InvalidRequest` is raised). A JSON
    array (a 2025-03-26 batch) comes back as a list with one entry per element: the message,
    or the :class:`InvalidRequest` for that element, so each can be answered on its own.
    Raises :class:`ParseError` for bytes that are not JSON and :class:`InvalidRequest` for an
    empty batch.
    """
    obj = loads(data)
    if isinstance(obj, list):
        if not obj:
            raise InvalidRequest("Invalid Request: empty batch")
        items: list[Message | InvalidRequest] = []
        for item in obj:
            try:
                items.append(parse_message(item))
            except InvalidRequest as exc:
                items.append(exc)
        return items
    return parse_message(obj)


def decode_one(data: bytes | str) -> Message:
    """Decode a frame that must hold exactly one message (no batches)."""
    return parse_message(loads(data))
