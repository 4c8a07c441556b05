"""``x-mcp-header`` annotations and ``Mcp-Param-*`` values, without a network: what an
annotation may be, what a client sends, what a server accepts."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_multi.protocol.errors import HeaderMismatch
from mcp_multi.protocol.params_headers import (
    HeaderAnnotationError,
    HeaderParam,
    check_param_headers,
    header_params,
    param_headers,
)

SCHEMA = {"type": "object", "properties": {
    "region": {"type": "string", "x-mcp-header": "Region"},
    "n": {"type": "integer", "x-mcp-header": "N"},
    "opts": {"type": "object", "properties": {"fast": {"type": "boolean",
                                                       "x-mcp-header": "Fast"}}},
    "query": {"type": "string"},
    # A property *named* like the keyword is no annotation; neither is data in an enum.
    "x-mcp-header": {"type": "string", "enum": [{"x-mcp-header": "Nope"}]},
}}


def test_annotations_are_found_through_properties_only() -> None:
    assert header_params(SCHEMA) == (
        HeaderParam(("region",), "Region", "string"), HeaderParam(("n",), "N", "integer"),
        HeaderParam(("opts", "fast"), "Fast", "boolean"))
    assert header_params({"type": "object"}) == ()
    assert header_params("not a schema") == ()


@pytest.mark.parametrize(("schema", "why"), [
    ({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}, "type 'number'"),
    ({"properties": {"a": {"x-mcp-header": "A"}}}, "type None"),
    ({"properties": {"a": {"type": "string", "x-mcp-header": "A:B"}}}, "HTTP token"),
    ({"properties": {"a": {"type": "string", "x-mcp-header": "A\r\nX-Evil: 1"}}}, "token"),
    ({"properties": {"a": {"type": "string", "x-mcp-header": 7}}}, "token"),
    ({"properties": {"a": {"type": "string", "x-mcp-header": "A"},
                     "b": {"type": "string", "x-mcp-header": "a"}}}, "used twice"),
    ({"x-mcp-header": "Root", "type": "string"}, "schema root"),
    ({"properties": {"a": {"type": "array", "items": {"type": "string",
                                                      "x-mcp-header": "A"}}}}, "reachable"),
    ({"oneOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}, "reachable"),
    ({"$defs": {"d": {"type": "string", "x-mcp-header": "A"}}}, "reachable"),
    ({"properties": {"a": {"if": {"type": "string", "x-mcp-header": "A"}}}}, "reachable"),
])
def test_invalid_annotations(schema: dict[str, Any], why: str) -> None:
    with pytest.raises(HeaderAnnotationError, match=why):
        header_params(schema)


def test_a_schema_nested_without_end_is_refused() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(100):
        deep = {"type": "object", "properties": {"a": deep}}
    with pytest.raises(HeaderAnnotationError, match="deeper"):
        header_params(deep)


def test_a_client_mirrors_and_encodes() -> None:
    params = header_params(SCHEMA)
    assert param_headers(params, {"region": "us-west1", "n": -7, "opts": {"fast": True},
                                  "query": "SELECT"}) == {
        "Mcp-Param-Region": "us-west1", "Mcp-Param-N": "-7", "Mcp-Param-Fast": "true"}
    assert param_headers(params, {"region": " padded ", "n": None}) == {
        "Mcp-Param-Region": "=?base64?IHBhZGRlZCA=?="}
    assert param_headers(params, {"region": "=?base64?literal?="}) == {
        "Mcp-Param-Region": "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="}


def test_what_a_client_sends_a_server_accepts() -> None:
    params = header_params(SCHEMA)
    for args in ({"region": "Hello, 世界", "n": 2**53 - 1, "opts": {"fast": False}},
                 {"region": "line1\nline2"}, {}, {"opts": "not an object"}):
        check_param_headers(param_headers(params, args).items(), params, args)


@pytest.mark.parametrize(("headers", "arguments"), [
    ({}, {"region": "x"}),
    ({"Mcp-Param-Region": "x"}, {}),
    ({"Mcp-Param-Region": "x"}, {"region": None}),
    ({"Mcp-Param-N": "1e400"}, {"n": 1}),
    ({"Mcp-Param-N": "9" * 100}, {"n": 9}),
    ({"Mcp-Param-N": "NaN"}, {"n": 1}),
    ({"Mcp-Param-N": str(2**53)}, {"n": 2**53}),  # past JavaScript's safe integers
    ({"Mcp-Param-Fast": "1"}, {"opts": {"fast": True}}),
    ({"Mcp-Param-Region": "=?base64?////?="}, {"region": "x"}),  # not UTF-8
    ({"Mcp-Param-Region": "é"}, {"region": "é"}),  # raw non-ASCII
])
def test_what_a_server_refuses(headers: dict[str, str], arguments: dict[str, Any]) -> None:
    with pytest.raises(HeaderMismatch):
        check_param_headers(headers.items(), header_params(SCHEMA), arguments)
