"""The 2026-07-28 envelope, its HTTP header mirror, and how eras are told apart: no event loop."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from multidict import CIMultiDict

from mcp_multi.protocol import envelope as env
from mcp_multi.protocol import versions as v
from mcp_multi.protocol.errors import HeaderMismatch, InvalidParams, UnsupportedProtocolVersion

META = {env.PROTOCOL_VERSION_META: "2026-07-28", env.CLIENT_CAPABILITIES_META: {}}


def params(**meta: Any) -> dict[str, Any]:
    return {"name": "echo", "_meta": {**META, **meta}}


def test_eras_by_http_header() -> None:
    assert v.http_era(None) == v.HANDSHAKE
    assert all(v.http_era(h) == v.HANDSHAKE for h in v.HANDSHAKE_VERSIONS)
    assert v.http_era("2026-07-28") == v.MODERN
    assert v.http_era("2099-01-01") is None


def test_the_opening_request_decides_a_stream() -> None:
    assert v.opening_era("initialize", params()) == v.HANDSHAKE
    assert v.opening_era("tools/list", None) == v.HANDSHAKE
    assert v.opening_era("tools/call", {"_meta": {"progressToken": 1}}) == v.HANDSHAKE
    assert v.opening_era("tools/list", params()) == v.MODERN
    # Only the version key counts: a half-built envelope still opens modern (and fails there).
    assert v.opening_era("tools/list", {"_meta": {env.PROTOCOL_VERSION_META: 5}}) == v.MODERN


def test_features_by_era() -> None:
    assert v.supports("2025-11-25", "sse_priming") and not v.supports("2025-06-18", "sse_priming")
    assert not v.supports("2026-07-28", "sse_priming")
    assert v.supports("2025-03-26", "batch") and not v.supports("2026-07-28", "batch")
    assert v.supports("2026-07-28", "input_validation_as_tool_error")
    assert not v.supports("2099-01-01", "input_validation_as_tool_error")


def test_unsupported_version_lists_what_discover_lists() -> None:
    err = v.unsupported_version("1900-01-01")
    assert err.code == -32022
    assert err.data == {"supported": ["2026-07-28"], "requested": "1900-01-01"}
    assert "requested" not in v.unsupported_version(None).data


def test_read_envelope() -> None:
    got = env.read_envelope(params(**{env.CLIENT_INFO_META: {"name": "c"},
                                      env.LOG_LEVEL_META: "info"}))
    assert got == env.Envelope("2026-07-28", {}, {"name": "c"}, "info")
    assert env.read_envelope(params()).client_info is None


@pytest.mark.parametrize("bad, error", [
    (None, InvalidParams),
    ({"name": "echo"}, InvalidParams),
    ({"_meta": []}, InvalidParams),
    ({"_meta": {env.PROTOCOL_VERSION_META: "2026-07-28"}}, InvalidParams),
    ({"_meta": {env.CLIENT_CAPABILITIES_META: {}}}, InvalidParams),
    (params(**{env.PROTOCOL_VERSION_META: 20260728}), InvalidParams),
    (params(**{env.CLIENT_CAPABILITIES_META: "all"}), InvalidParams),
    (params(**{env.LOG_LEVEL_META: "loud"}), InvalidParams),
    (params(**{env.PROTOCOL_VERSION_META: "2025-11-25"}), UnsupportedProtocolVersion),
    (params(**{env.PROTOCOL_VERSION_META: "2099-01-01"}), UnsupportedProtocolVersion),
])
def test_bad_envelopes(bad: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        env.read_envelope(bad)


def headers(**h: str) -> list[tuple[str, str]]:
    base = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    return list({**base, **h}.items())


def check(given: list[tuple[str, str]], method: str, body: dict[str, Any]) -> None:
    """check_headers over the headers as aiohttp hands them over (a CIMultiDict)."""
    env.check_headers(CIMultiDict(given), method, body)


def test_matching_headers_pass() -> None:
    check(headers(), "tools/call", params())
    check([("mcp-protocol-version", "2026-07-28"), ("MCP-METHOD", "tools/list")],
          "tools/list", params())  # names are case-insensitive; no Mcp-Name needed
    encoded = "=?base64?" + base64.b64encode("écho".encode()).decode() + "?="
    check(headers(**{"Mcp-Name": encoded}), "tools/call", {**params(), "name": "écho"})


@pytest.mark.parametrize("given", [
    headers(**{"MCP-Protocol-Version": "2025-11-25"}),
    headers(**{"Mcp-Method": "tools/list"}),
    headers(**{"Mcp-Name": "math_calc"}),
    headers(**{"Mcp-Name": "=?base64?!!!?="}),
    [h for h in headers() if h[0] != "Mcp-Name"],
    [h for h in headers() if h[0] != "MCP-Protocol-Version"],
    [*headers(), ("mcp-method", "tools/call")],
])
def test_mismatched_headers(given: list[tuple[str, str]]) -> None:
    with pytest.raises(HeaderMismatch) as exc:
        check(given, "tools/call", params())
    assert exc.value.code == -32020


def _slow(given: list[tuple[str, str]], method: str, body: dict[str, Any]) -> Any:
    """What check_headers then read_envelope make of a request: its envelope or the error."""
    try:
        env.check_headers(CIMultiDict(given), method, body)
        return env.read_envelope(body)
    except (HeaderMismatch, InvalidParams, UnsupportedProtocolVersion) as exc:
        return type(exc)


_ENCODED = "=?base64?" + base64.b64encode("écho".encode()).decode() + "?="


@pytest.mark.parametrize(("given", "method", "body"), [
    (headers(), "tools/call", params()),
    (headers(), "tools/call", params(**{env.CLIENT_INFO_META: {"name": "c"},
                                        env.LOG_LEVEL_META: "debug"})),
    (headers(), "tools/call", params(**{env.CLIENT_INFO_META: "not an object"})),
    (headers(), "tools/call", params(**{env.LOG_LEVEL_META: "loud"})),
    (headers(), "tools/call", params(**{env.LOG_LEVEL_META: ["info"]})),
    (headers(), "tools/call", params(**{env.CLIENT_CAPABILITIES_META: []})),
    (headers(), "tools/call", {"name": "echo", "_meta": {env.PROTOCOL_VERSION_META: "2026-07-28"}}),
    (headers(), "tools/call", {"name": "echo", "_meta": []}),
    (headers(), "tools/call", {"name": "echo"}),
    (headers(), "tools/call", {**params(), "name": 7}),
    (headers(), "tools/call", {key: value for key, value in params().items() if key != "name"}),
    (headers(**{"MCP-Protocol-Version": "2025-11-25"}), "tools/call",
     params(**{env.PROTOCOL_VERSION_META: "2025-11-25"})),
    (headers(**{"MCP-Protocol-Version": "2099-01-01"}), "tools/call",
     params(**{env.PROTOCOL_VERSION_META: "2099-01-01"})),
    (headers(**{"Mcp-Method": "tools/list"}), "tools/call", params()),
    (headers(**{"Mcp-Name": "math_calc"}), "tools/call", params()),
    (headers(**{"Mcp-Name": _ENCODED}), "tools/call", {**params(), "name": "écho"}),
    (headers(**{"Mcp-Name": _ENCODED}), "tools/call", {**params(), "name": _ENCODED}),
    (headers(**{"Mcp-Name": "=?base64?!!!?="}), "tools/call", params()),
    ([h for h in headers() if h[0] != "Mcp-Name"], "tools/call", params()),
    ([h for h in headers() if h[0] != "MCP-Protocol-Version"], "tools/call", params()),
    ([h for h in headers() if h[0] != "Mcp-Method"], "tools/call", params()),
    ([*headers(), ("mcp-method", "tools/call")], "tools/call", params()),
    ([*headers(), ("mcp-protocol-version", "2026-07-28")], "tools/call", params()),
    ([*headers(), ("mcp-name", "echo")], "tools/call", params()),
    ([*headers(), ("mcp-name", "echo")], "tools/list", params()),
    ([("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list")], "tools/list",
     params()),
    ([("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "resources/read"),
      ("Mcp-Name", "server://info")], "resources/read", {**params(), "uri": "server://info"}),
])
def test_the_one_pass_envelope_agrees_with_the_two_checks(
        given: list[tuple[str, str]], method: str, body: dict[str, Any]) -> None:
    """agreeing_envelope: the checks' envelope when they pass, else None (never a request they
    would refuse, never a different envelope); and the common request takes it."""
    fast = env.agreeing_envelope(CIMultiDict(given), method, body)
    slow = _slow(given, method, body)
    if isinstance(slow, env.Envelope):
        assert fast in (slow, None)
    else:
        assert fast is None, slow
    if given == headers() and method == "tools/call" and body == params():
        assert fast == slow


def test_decode_header_value() -> None:
    assert env.decode_header_value("plain") == "plain"
    assert env.decode_header_value(None) is None
    assert env.decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=") == "Hello, 世界"
    assert env.decode_header_value("=?base64?SGVsbG8sIOS4lueVjA=?=") is None  # not canonical


def test_complete_result() -> None:
    info = {"name": "s", "version": "1"}
    result = env.complete_result({"tools": []}, info, env.CacheHint(1000))
    assert result == {"tools": [], "resultType": "complete", "ttlMs": 1000,
                      "cacheScope": "public", "_meta": {env.SERVER_INFO_META: info}}
    own = env.complete_result({"_meta": {"k": 1}}, info)
    assert own["_meta"] == {"k": 1, env.SERVER_INFO_META: info} and "ttlMs" not in own


# ------------------------------------------------------------------ the client side

def test_client_envelope_keeps_other_meta_keys() -> None:
    meta = env.request_meta("mcp-multi-client", "1.0", "2026-07-28")
    assert meta == {env.PROTOCOL_VERSION_META: "2026-07-28", env.CLIENT_CAPABILITIES_META: {},
                    env.CLIENT_INFO_META: {"name": "mcp-multi-client", "version": "1.0"}}
    original = {"name": "echo", "_meta": {"progressToken": 7}}
    wrapped = env.with_envelope(original, meta)
    assert wrapped["_meta"] == {"progressToken": 7, **meta}
    assert original == {"name": "echo", "_meta": {"progressToken": 7}}  # not modified
    assert env.with_envelope(None, meta) == {"_meta": meta}
    env.read_envelope(wrapped)  # what the client sends, the server accepts


@pytest.mark.parametrize(("value", "sent"), [
    ("get_weather", "get_weather"),
    ("file:///a b/c.txt", "file:///a b/c.txt"),
    ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
    (" padded ", "=?base64?IHBhZGRlZCA=?="),
    ("line1\nline2", "=?base64?bGluZTEKbGluZTI=?="),
    ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
    ("", "=?base64??="),
])
def test_header_values_are_encoded_as_the_spec_shows(value: str, sent: str) -> None:
    assert env.encode_header_value(value) == sent
    assert env.decode_header_value(sent) == value


def test_mirror_headers_come_from_the_body_and_pass_the_server_check() -> None:
    meta = env.request_meta("c", "1", "2026-07-28")
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": env.with_envelope({"name": "wëather", "arguments": {}}, meta)}
    headers = env.mirror_headers(call)
    assert headers == {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                       "Mcp-Name": env.encode_header_value("wëather")}
    check(list(headers.items()), "tools/call", call["params"])
    listing = {"jsonrpc": "2.0", "id": 4, "method": "tools/list",
               "params": env.with_envelope(None, meta)}
    assert env.mirror_headers(listing) == {"MCP-Protocol-Version": "2026-07-28",
                                           "Mcp-Method": "tools/list"}
    # handshake-era messages, notifications and responses carry no mirror
    assert env.mirror_headers({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}) == {}
    assert env.mirror_headers({"jsonrpc": "2.0", "method": "notifications/cancelled",
                               "params": env.with_envelope(None, meta)}) == {}
    assert env.mirror_headers({"jsonrpc": "2.0", "id": 1, "result": {}}) == {}
