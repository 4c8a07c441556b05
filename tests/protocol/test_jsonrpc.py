"""The JSON-RPC core, synchronously: no event loop, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_multi.protocol import errors as e
from mcp_multi.protocol.jsonrpc import (
    ErrorResponse,
    Notification,
    Request,
    Response,
    decode,
    decode_one,
    encode,
    error_response,
    parse_message,
)


def test_request_round_trip() -> None:
    req = Request(7, "tools/call", {"name": "echo", "arguments": {"message": "é"}})
    assert decode(encode(req)) == req
    assert encode(req) == (b'{"jsonrpc":"2.0","id":7,"method":"tools/call",'
                           b'"params":{"name":"echo","arguments":{"message":"\xc3\xa9"}}}')


def test_notification_has_no_id() -> None:
    note = decode(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert note == Notification("notifications/initialized")
    assert "id" not in note.to_dict()  # type: ignore[union-attr]


def test_response_and_error_response() -> None:
    assert decode(b'{"jsonrpc":"2.0","id":"a","result":{}}') == Response("a", {})
    err = decode(b'{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"nope"}}')
    assert isinstance(err, ErrorResponse) and err.id == 3
    assert isinstance(err.error, e.MethodNotFound) and err.error.message == "nope"


@pytest.mark.parametrize("frame", [b"{", b"", b"\xff", b'{"a":1} trailing'])
def test_not_json_is_parse_error(frame: bytes) -> None:
    with pytest.raises(e.ParseError) as info:
        decode(frame)
    assert info.value.code == -32700


@pytest.mark.parametrize("obj, has_id", [
    ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, True),
    ({"id": 1, "method": "ping"}, True),
    ({"jsonrpc": "2.0", "id": 1, "method": 5}, True),
    ({"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1, 2]}, True),
    ({"jsonrpc": "2.0", "id": None, "method": "ping"}, False),
    ({"jsonrpc": "2.0", "id": 1.5, "method": "ping"}, False),
    ({"jsonrpc": "2.0", "id": True, "method": "ping"}, False),
    ({"jsonrpc": "2.0", "id": 1}, True),
    ({"jsonrpc": "2.0", "id": 1, "result": {}, "error": {}}, True),
    ("string", False),
    (42, False),
])
def test_invalid_requests(obj: object, has_id: bool) -> None:
    with pytest.raises(e.InvalidRequest) as info:
        parse_message(obj)
    assert info.value.code == -32600
    recovered = info.value.request_id
    assert (recovered == 1) is has_id


def test_batch_keeps_each_element() -> None:
    items = decode(b'[{"jsonrpc":"2.0","id":1,"method":"ping"}, 7]')
    assert isinstance(items, list) and len(items) == 2
    assert items[0] == Request(1, "ping")
    assert isinstance(items[1], e.InvalidRequest)
    with pytest.raises(e.InvalidRequest):
        decode(b"[]")
    with pytest.raises(e.InvalidRequest):
        decode_one(b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]')


def test_error_tree_round_trip() -> None:
    for klass in (e.ParseError, e.InvalidRequest, e.MethodNotFound, e.InvalidParams,
                  e.InternalError):
        wire = klass("boom", {"k": 1}).to_error()
        back = e.JSONRPCError.from_error(wire)
        assert type(back) is klass and back.data == {"k": 1} and back.code == wire["code"]
    custom = e.JSONRPCError.from_error({"code": -32002, "message": "Resource not found"})
    assert type(custom) is e.JSONRPCError and custom.code == -32002
    assert isinstance(e.JSONRPCError.from_error("junk"), e.InternalError)
    assert issubclass(e.ConnectionClosed, e.TransportError)
    assert all(issubclass(k, e.MCPError) for k in (e.JSONRPCError, e.ProtocolError,
                                                    e.TransportError, e.RequestTimeout))


def test_error_response_shape() -> None:
    assert error_response(None, e.ParseError("bad")) == {
        "jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "bad"}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.binary(max_size=200))
def test_decode_never_raises_outside_the_tree(data: bytes) -> None:
    try:
        decode(data)
    except e.JSONRPCError as exc:
        assert exc.code in (-32700, -32600)


@given(json_values)
def test_parse_message_of_any_json(value: object) -> None:
    try:
        parse_message(value)
    except e.InvalidRequest:
        pass


@given(st.one_of(st.integers(0, 2**31), st.text(min_size=1)), st.text(min_size=1),
       st.dictionaries(st.text(), json_values, max_size=4))
def test_any_request_round_trips(rid: int | str, method: str, params: dict) -> None:
    req = Request(rid, method, params)
    assert decode(encode(req)) == req


# Messages near the shapes parse_message's fast lane takes: each key present or not, each
# value of the right type or not.
_near_messages = st.fixed_dictionaries({"jsonrpc": st.sampled_from(["2.0"] * 6 + ["1.0", 2])},
                                       optional={
    "id": st.one_of(st.integers(-3, 3), st.text(max_size=2), st.none(), st.booleans(),
                    st.floats(allow_nan=False)),
    "method": st.one_of(st.sampled_from(["", "ping", "tools/call"]), st.none(), st.integers()),
    "params": st.one_of(st.none(), st.dictionaries(st.text(max_size=2), json_values, max_size=2),
                        st.lists(st.integers(), max_size=2)),
    "result": st.one_of(st.none(), st.dictionaries(st.text(max_size=2), json_values,
                                                   max_size=2), st.integers()),
    "error": st.fixed_dictionaries({"code": st.integers(-32700, -32000), "message": st.text()}),
})


@settings(max_examples=400)
@given(_near_messages)
def test_the_fast_lane_agrees_with_every_check(obj: dict) -> None:
    """parse_message's shortcut for the common messages says exactly what the full checks
    say: the same message, or the same refusal."""
    from mcp_multi.protocol.jsonrpc import _parse_checked

    def outcome(parse: object) -> object:
        try:
            message = parse(obj)  # type: ignore[operator]
            return type(message), message.to_dict()
        except e.InvalidRequest as exc:
            return ("refused", exc.message, exc.request_id)

    assert outcome(parse_message) == outcome(_parse_checked)
