"""The sans-I/O core of asking the client: capabilities, answers, and ``requestState``."""

from __future__ import annotations

import pytest

from mcp_multi.protocol.errors import InvalidParams
from mcp_multi.protocol.input_required import (
    MAX_STATE_CHARS,
    RequestStateCodec,
    binding_of,
    check_answer,
    input_required_result,
    missing_capabilities,
    read_input_responses,
    required_capabilities,
)

SAMPLE = {"messages": [], "maxTokens": 10}
NOW = 1_800_000_000.0


@pytest.mark.parametrize(("method", "params", "declared", "missing"), [
    ("sampling/createMessage", SAMPLE, {"sampling": {}}, None),
    ("sampling/createMessage", SAMPLE, {}, {"sampling": {}}),
    ("sampling/createMessage", {**SAMPLE, "tools": []}, {"sampling": {}},
     {"sampling": {"tools": {}}}),
    ("sampling/createMessage", {**SAMPLE, "tools": []}, {"sampling": {"tools": {}}}, None),
    ("elicitation/create", {"message": "m"}, {"elicitation": {}}, None),
    ("elicitation/create", {"message": "m"}, {"elicitation": {"form": {}}}, None),
    ("elicitation/create", {"message": "m"}, {"elicitation": {"url": {}}},
     {"elicitation": {"form": {}}}),
    ("elicitation/create", {"mode": "url"}, {"elicitation": {}}, {"elicitation": {"url": {}}}),
    ("elicitation/create", {"mode": "url"}, {"elicitation": {"url": {}}}, None),
    ("roots/list", {}, {"roots": {"listChanged": True}}, None),
    ("roots/list", {}, {"sampling": {}}, {"roots": {}}),
    ("roots/list", {}, {"roots": True}, {"roots": {}}),
])
def test_missing_capabilities(method: str, params: dict, declared: dict,
                              missing: dict | None) -> None:
    assert missing_capabilities(method, params, declared) == missing


def test_only_client_requests_can_be_asked() -> None:
    with pytest.raises(ValueError, match="tools/call"):
        required_capabilities("tools/call", {})


@pytest.mark.parametrize(("method", "answer", "ok"), [
    ("sampling/createMessage", {"role": "assistant", "content": {"type": "text"}}, True),
    ("sampling/createMessage", {"content": {"type": "text"}}, False),
    ("sampling/createMessage", 12345, False),
    ("elicitation/create", {"action": "accept", "content": {"a": 1}}, True),
    ("elicitation/create", {"action": "decline"}, True),
    ("elicitation/create", {"action": "maybe"}, False),
    ("elicitation/create", {"action": "accept", "content": [1]}, False),
    ("roots/list", {"roots": [{"uri": "file:///x"}]}, True),
    ("roots/list", {"roots": [{"name": "no uri"}]}, False),
    ("roots/list", {}, False),
])
def test_check_answer(method: str, answer: object, ok: bool) -> None:
    assert (check_answer(method, answer) is None) is ok


def test_input_responses_must_be_objects() -> None:
    assert read_input_responses({}) == {}
    assert read_input_responses({"inputResponses": {"a": {"x": 1}}}) == {"a": {"x": 1}}
    for bad in (None, [], {"a": 12345}):
        with pytest.raises(InvalidParams):
            read_input_responses({"inputResponses": bad})


def test_binding_ignores_what_changes_between_rounds() -> None:
    first = {"name": "t", "arguments": {"a": 1, "b": 2}, "_meta": {"x": 1}}
    retry = {"arguments": {"b": 2, "a": 1}, "name": "t", "_meta": {"x": 2},
             "inputResponses": {}, "requestState": "s"}
    assert binding_of("tools/call", first) == binding_of("tools/call", retry)
    assert binding_of("tools/call", first) != binding_of("prompts/get", first)
    assert binding_of("tools/call", first) != binding_of(
        "tools/call", {**first, "arguments": {"a": 2, "b": 2}})


def test_state_round_trip() -> None:
    codec = RequestStateCodec.random()
    answers = {"step1": {"action": "accept", "content": {"name": "Ada"}}}
    state = codec.seal("binding", answers, NOW)
    assert codec.open(state, "binding", NOW + 10) == answers


@pytest.mark.parametrize("tamper", [
    lambda s: s + "-TAMPERED",
    lambda s: s.replace("v1.", "v2.", 1),
    lambda s: s[:-3],
    lambda s: "v1.e30." + s.rsplit(".", 1)[1],  # another payload ({}) under the same mac
    lambda s: s.split(".")[0] + "." + s.split(".")[1] + "A." + s.split(".")[2],
    lambda s: "garbage",
    lambda s: "",
])
def test_tampered_state_is_refused(tamper: object) -> None:
    codec = RequestStateCodec.random()
    state = codec.seal("binding", {"k": {"action": "decline"}}, NOW)
    with pytest.raises(InvalidParams, match=r"integrity|malformed"):
        codec.open(tamper(state), "binding", NOW)  # type: ignore[operator]


def test_state_of_another_server_is_refused() -> None:
    state = RequestStateCodec.random().seal("binding", {}, NOW)
    with pytest.raises(InvalidParams, match="integrity"):
        RequestStateCodec.random().open(state, "binding", NOW)


def test_state_is_bound_to_its_request_and_expires() -> None:
    codec = RequestStateCodec.random(ttl=60)
    state = codec.seal("binding", {}, NOW)
    with pytest.raises(InvalidParams, match="another request"):
        codec.open(state, "other", NOW)
    with pytest.raises(InvalidParams, match="expired"):
        codec.open(state, "binding", NOW + 61)


def test_state_size_is_bounded() -> None:
    codec = RequestStateCodec.random()
    with pytest.raises(InvalidParams, match="exceeds"):
        codec.seal("b", {"k": {"text": "x" * MAX_STATE_CHARS}}, NOW)
    with pytest.raises(InvalidParams, match="too long"):
        codec.open("v1." + "A" * MAX_STATE_CHARS, "b", NOW)
    with pytest.raises(InvalidParams, match="string"):
        codec.open(12345, "b", NOW)


def test_input_required_result_shape() -> None:
    result = input_required_result({"k": {"method": "roots/list", "params": {}}}, "st",
                                   {"name": "s", "version": "1"})
    assert result == {
        "resultType": "input_required",
        "inputRequests": {"k": {"method": "roots/list", "params": {}}},
        "requestState": "st",
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "1"}},
    }
