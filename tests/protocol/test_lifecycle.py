"""The client side of the lifecycle, synchronously: what we send, what we accept."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_multi.protocol.errors import (
    InputRequired,
    InvalidParams,
    JSONRPCError,
    MethodNotFound,
    ProtocolError,
    UnsupportedProtocolVersion,
)
from mcp_multi.protocol.lifecycle import (
    CLIENT_NAME,
    ProbeVerdict,
    cancelled_params,
    check_complete,
    initialize_params,
    judge_discover_error,
    judge_discover_result,
    parse_discover_result,
    parse_initialize_result,
    parse_tools_page,
    tool_call_params,
    unwrap_result,
)
from mcp_multi.protocol.versions import LATEST_HANDSHAKE_VERSION


def result(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "protocolVersion": "2025-06-18",
        "capabilities": {"tools": {"listChanged": True}},
        "serverInfo": {"name": "calculator", "version": "1.2"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_initialize_params_ask_for_our_newest_version() -> None:
    params = initialize_params("9.9")
    assert params == {
        "protocolVersion": LATEST_HANDSHAKE_VERSION,
        "capabilities": {},
        "clientInfo": {"name": CLIENT_NAME, "version": "9.9"},
    }


def test_initialize_result_is_read() -> None:
    info = parse_initialize_result(result(instructions="be nice"))
    assert info.protocol_version == "2025-06-18"
    assert (info.server_name, info.server_version) == ("calculator", "1.2")
    assert info.has_capability("tools") and not info.has_capability("resources")
    assert info.instructions == "be nice"


@pytest.mark.parametrize("bad", [
    result(protocolVersion=None),
    result(protocolVersion="1999-01-01"),
    result(protocolVersion="2026-07-28"),
    result(protocolVersion=20250618),
    result(serverInfo=None),
    result(capabilities=[]),
])
def test_bad_initialize_result_is_a_protocol_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_initialize_result(bad)


def test_tools_page_and_cursor() -> None:
    tools = [{"name": "echo", "inputSchema": {"type": "object"}}]
    assert parse_tools_page({"tools": tools, "nextCursor": "p2"}) == (tools, "p2")
    assert parse_tools_page({"tools": tools}) == (tools, None)
    assert parse_tools_page({"tools": [], "nextCursor": ""}) == ([], None)


@pytest.mark.parametrize("bad", [{}, {"tools": {}}, {"tools": [{"title": "x"}]}, {"tools": [1]}])
def test_malformed_tools_page(bad: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_tools_page(bad)


def test_small_builders() -> None:
    assert tool_call_params("echo") == {"name": "echo", "arguments": {}}
    assert tool_call_params("echo", {"message": "x"}) == {
        "name": "echo", "arguments": {"message": "x"}}
    assert cancelled_params(4, "timeout") == {"requestId": 4, "reason": "timeout"}


def discover(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resultType": "complete",
        "supportedVersions": ["2026-07-28"],
        "capabilities": {"tools": {}},
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern", "version": "2"}},
        "instructions": "hello",
        "ttlMs": 0,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_discover_result_is_read_like_an_initialize_result() -> None:
    info = parse_discover_result(discover(), "2026-07-28")
    assert info.protocol_version == "2026-07-28"
    assert (info.server_name, info.server_version) == ("modern", "2")
    assert info.has_capability("tools") and info.instructions == "hello"
    anonymous = parse_discover_result(discover(_meta=None, instructions=None), "2026-07-28")
    assert (anonymous.server_name, anonymous.instructions) == ("", None)


@pytest.mark.parametrize(("result", "verdict"), [
    (discover(), ProbeVerdict("adopt", "2026-07-28")),
    (discover(supportedVersions=["2026-07-28", "2025-11-25"]), ProbeVerdict("adopt", "2026-07-28")),
    # an empty result (some handshake-era servers answer unknown methods so) is no evidence
    ({}, ProbeVerdict("initialize")),
    (discover(supportedVersions=None), ProbeVerdict("initialize")),
    (discover(capabilities=[]), ProbeVerdict("initialize")),
    # a server answering discover but advertising only handshake versions is legacy
    (discover(supportedVersions=["2025-11-25"]), ProbeVerdict("initialize")),
])
def test_verdict_on_a_discover_result(result: dict[str, Any], verdict: ProbeVerdict) -> None:
    assert judge_discover_result(result, "2026-07-28") == verdict


def unsupported(supported: Any) -> UnsupportedProtocolVersion:
    return UnsupportedProtocolVersion("Unsupported protocol version", {"supported": supported})


@pytest.mark.parametrize(("error", "retried", "verdict"), [
    # the fallback is not keyed to one code: every non-modern error means initialize
    (MethodNotFound("Method not found: server/discover"), False, ProbeVerdict("initialize")),
    (InvalidParams("Invalid request parameters"), False, ProbeVerdict("initialize")),
    (JSONRPCError("HTTP 400 Bad Request", code=-32600), False, ProbeVerdict("initialize")),
    (unsupported(["2026-07-28"]), False, ProbeVerdict("retry", "2026-07-28")),
    (unsupported(["2026-07-28"]), True, ProbeVerdict("fail")),
    (unsupported(["2099-01-01"]), False, ProbeVerdict("fail")),
    (unsupported(["2099-01-01", "2025-11-25"]), False, ProbeVerdict("initialize")),
    (UnsupportedProtocolVersion("no data"), False, ProbeVerdict("initialize")),
])
def test_verdict_on_a_discover_error(error: JSONRPCError, retried: bool,
                                     verdict: ProbeVerdict) -> None:
    assert judge_discover_error(error, retried=retried) == verdict


def test_modern_results_lose_only_their_stamps() -> None:
    info = {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "1"}}
    content = [{"type": "text", "text": "hi"}]
    assert unwrap_result({"content": content, "resultType": "complete", "_meta": info}) == {
        "content": content}
    kept = {"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private",
            "_meta": {**info, "trace": 7}}
    assert unwrap_result(kept) == {"tools": [], "ttlMs": 0, "cacheScope": "private",
                                   "_meta": {"trace": 7}}
    pending = {"resultType": "input_required", "inputRequests": {}, "_meta": info}
    assert unwrap_result(pending) is pending
    assert unwrap_result({"content": content}) == {"content": content}


def test_server_info_in_the_body_of_a_discover_result_is_read_too() -> None:
    body = discover(_meta=None, serverInfo={"name": "in-body", "version": "3"})
    assert parse_discover_result(body, "2026-07-28").server_name == "in-body"
    both = discover(serverInfo={"name": "in-body", "version": "3"})
    assert parse_discover_result(both, "2026-07-28").server_name == "modern"  # _meta first
    odd = discover(_meta={"io.modelcontextprotocol/serverInfo": "junk"}, serverInfo=7)
    assert parse_discover_result(odd, "2026-07-28").server_name == ""


INPUT_REQUIRED = {
    "resultType": "input_required",
    "inputRequests": {
        "a": {"method": "sampling/createMessage", "params": {"maxTokens": 1}},
        "b": {"method": "elicitation/create", "params": {"message": "who?"}},
        "c": {"method": "sampling/createMessage", "params": {}},
        "d": "junk",
    },
    "requestState": "opaque",
}


def test_an_input_required_result_is_no_success() -> None:
    complete = {"content": [], "resultType": "complete"}
    assert check_complete(complete) is complete
    assert check_complete({"content": []}) == {"content": []}
    with pytest.raises(InputRequired) as raised:
        check_complete(INPUT_REQUIRED)
    assert str(raised.value) == ("Server needs input the client cannot give yet: "
                                 "sampling/createMessage, elicitation/create")
    assert raised.value.methods == ["sampling/createMessage", "elicitation/create"]
    assert raised.value.result is INPUT_REQUIRED
    with pytest.raises(InputRequired, match=r"\(it named no request\)"):
        check_complete({"resultType": "input_required", "requestState": "x"})
    hostile = {"resultType": "input_required",
               "inputRequests": {"x": {"method": "\x1b]0;pwned\x07" + "m" * 5000}}}
    with pytest.raises(InputRequired) as raised:
        check_complete(hostile)
    message = str(raised.value)
    assert "\x1b" not in message and "\\x1b]0;pwned\\x07" in message
    assert len(message) < 400 and "more characters]" in message


def test_a_servers_junk_in_protocol_errors_is_clipped_and_escaped() -> None:
    junk = "\x1b[2J" + "v" * 100_000
    with pytest.raises(ProtocolError) as version:
        parse_initialize_result({"protocolVersion": junk, "serverInfo": {}})
    with pytest.raises(ProtocolError) as tool:
        parse_tools_page({"tools": [{"name": 5, "description": junk}]})
    for raised in (version, tool):
        message = str(raised.value)
        assert len(message) < 400 and "more characters]" in message
        assert "\x1b" not in message
