"""How a connection picks its protocol era: the ``server/discover`` probe, the fallback to
``initialize``, ``--protocol-version``, the 2026-07-28 envelope, and a session that expires.

Against our ``/mcp`` (both eras), scripted Streamable HTTP endpoints (handshake-era servers
in their many ways of refusing an unknown method), and a scripted stdio server that ignores
what it does not know.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from mcp_multi.client.connection import MCPConnection
from mcp_multi.protocol.client_state import ClientState
from mcp_multi.protocol.errors import (
    HTTPStatusError,
    InputRequired,
    ProtocolError,
    RequestFailed,
    RequestTimeout,
)
from mcp_multi.protocol.versions import HANDSHAKE_VERSIONS
from mcp_multi.server.app import RunningServer
from mcp_multi.transport import StreamableHTTPTransport, create_transport, stdio_url

from ..conftest import StartServer
from ..transport.http_script import HTTPScript, Recorded, StartHTTPScript, event, sse
from .scripted import ScriptedSession, StartScripted

TIMEOUT = 10.0
META_VERSION = "io.modelcontextprotocol/protocolVersion"
SERVER_INFO = {"capabilities": {"tools": {}}, "serverInfo": {"name": "legacy", "version": "1"}}
DISCOVERED = {"resultType": "complete", "supportedVersions": ["2026-07-28"],
              "capabilities": {"tools": {}},
              "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern", "version": "2"}}}


class Frames:
    """Every message a connection sends, decoded (the ``--trace`` hook)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, server: str, direction: str, frame: bytes | str) -> None:
        if direction == "send":
            self.sent.append(orjson.loads(frame))

    def methods(self) -> list[str]:
        return [m["method"] for m in self.sent if "method" in m]


def http_connection(url: str, frames: Frames | None = None, **kwargs: Any) -> MCPConnection:
    kwargs.setdefault("timeout", TIMEOUT)
    return MCPConnection("srv", StreamableHTTPTransport(url), on_frame=frames, **kwargs)


def mcp_url(server: RunningServer) -> str:
    return f"http://127.0.0.1:{server.port}/mcp"


def reply(recorded: Recorded, result: dict[str, Any], **headers: str) -> web.Response:
    return web.json_response({"jsonrpc": "2.0", "id": recorded.body["id"], "result": result},
                             headers=headers)


def error(recorded: Recorded | None, code: int, message: str, data: Any = None,
          status: int = 200) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    request_id = recorded.body.get("id") if recorded is not None else None
    return web.json_response({"jsonrpc": "2.0", "id": request_id, "error": body}, status=status)


def legacy_server(script: HTTPScript, on_discover: Any) -> None:
    """A handshake-era endpoint that answers ``server/discover`` with ``on_discover``."""
    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "server/discover":
            return on_discover(recorded)  # type: ignore[no-any-return]
        if method == "initialize":
            version = recorded.body["params"]["protocolVersion"]
            return reply(recorded, {"protocolVersion": version, **SERVER_INFO},
                         **{"Mcp-Session-Id": "legacy-1"})
        if "id" not in recorded.body:
            return web.Response(status=202)
        return reply(recorded, {"content": [{"type": "text", "text": method or ""}]})

    script.post = post


async def test_auto_against_our_endpoint_speaks_2026_on_every_request(
        start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(name="dual")
    frames = Frames()
    async with http_connection(mcp_url(server), frames) as conn:
        assert (conn.era, conn.protocol_version) == ("modern", "2026-07-28")
        assert conn.server is not None and conn.server.server_name == "dual"
        result = await conn.call_tool("echo", {"message": "modern"})
        # the same result as in the handshake era: the stamps of 2026-07-28 are unwrapped
        assert result == {"content": [{"type": "text", "text": "Echo: modern"}]}
        await conn.ping()  # 2026-07-28 has no ping: a discover round trip stands in
        await conn.request("resources/read", {"uri": "server://info"})
        assert not server.state.http_sessions  # stateless
    assert frames.methods() == ["server/discover", "tools/call", "server/discover",
                                "resources/read"]
    assert all(m["params"]["_meta"][META_VERSION] == "2026-07-28" for m in frames.sent)


@pytest.mark.parametrize("version", [*HANDSHAKE_VERSIONS[1:], "2026-07-28"])
async def test_forced_version_over_http(version: str, start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    frames = Frames()
    async with http_connection(mcp_url(server), frames, protocol_version=version) as conn:
        assert conn.protocol_version == version
        echo = await conn.call_tool("echo", {"message": version})
        assert echo["content"][0]["text"] == f"Echo: {version}"
        assert len(server.state.http_sessions) == (0 if version == "2026-07-28" else 1)
    # no probe when a version is forced, and no fallback either
    expected = "server/discover" if version == "2026-07-28" else "initialize"
    assert frames.methods()[0] == expected
    assert not server.state.http_sessions  # the session was DELETEd


async def test_forced_version_the_server_will_not_speak_fails(
        start_scripted: StartScripted) -> None:
    async def stubborn(params: dict[str, Any], session: ScriptedSession) -> dict[str, Any]:
        return {"protocolVersion": "2025-11-25", **SERVER_INFO}

    server = await start_scripted({"initialize": stubborn})
    conn = MCPConnection("srv", create_transport("websocket", server.url("websocket")),
                         timeout=TIMEOUT, protocol_version="2025-06-18")
    with pytest.raises(ProtocolError, match="chose protocol 2025-11-25, not the 2025-06-18"):
        await conn.connect()
    with pytest.raises(ValueError, match="unknown protocol version"):
        MCPConnection("x", create_transport("websocket", server.url("websocket")),
                      protocol_version="1999-01-01")


async def test_websocket_and_sse_open_with_the_handshake(
        transport_kind: str, start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    url = (f"ws://127.0.0.1:{server.port}/ws" if transport_kind == "websocket"
           else f"http://127.0.0.1:{server.port}/sse")
    frames = Frames()
    async with MCPConnection("s", create_transport(transport_kind, url), on_frame=frames) as c:
        assert c.era == "handshake"
    assert frames.methods()[:2] == ["initialize", "notifications/initialized"]


DISCOVER_REFUSALS = {
    "bare 400": lambda r: web.Response(status=400, text="Bad Request: no session"),
    "bare 404": lambda r: web.Response(status=404),
    "method not found": lambda r: error(r, -32601, "Method not found"),
    "invalid params": lambda r: error(r, -32602, "Invalid request parameters", status=400),
    "empty result": lambda r: reply(r, {}),
}


@pytest.mark.parametrize("refusal", list(DISCOVER_REFUSALS))
async def test_probe_falls_back_to_initialize(refusal: str,
                                              start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()
    legacy_server(script, DISCOVER_REFUSALS[refusal])
    async with http_connection(script.url) as conn:
        assert (conn.era, conn.protocol_version) == ("handshake", "2025-11-25")
        assert (await conn.call_tool("echo"))["content"][0]["text"] == "tools/call"
    discover, initialize, initialized, call = script.of("POST")
    assert initialized.rpc_method == "notifications/initialized"
    assert discover.header("mcp-method") == "server/discover"
    assert discover.header("mcp-protocol-version") == "2026-07-28"
    # the probe's version never leaks onto the handshake
    assert initialize.rpc_method == "initialize"
    assert initialize.header("mcp-protocol-version") is None
    assert "_meta" not in initialize.body["params"]
    assert call.header("mcp-session-id") == "legacy-1"
    assert call.header("mcp-protocol-version") == "2025-11-25"
    assert "_meta" not in call.body["params"]


async def test_unsupported_version_naming_ours_is_probed_again(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()
    probes: list[Recorded] = []

    def discover(recorded: Recorded) -> web.Response:
        probes.append(recorded)
        if len(probes) == 1:
            return error(None, -32022, "Unsupported protocol version",
                         {"supported": ["2026-07-28"]}, status=400)
        return reply(recorded, DISCOVERED)

    legacy_server(script, discover)
    async with http_connection(script.url) as conn:
        assert conn.era == "modern" and conn.server is not None
        assert conn.server.server_name == "modern"
    assert len(probes) == 2 and not script.of("POST", "initialize")


async def test_a_modern_only_server_without_our_version_fails(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()
    legacy_server(script, lambda r: error(r, -32022, "Unsupported protocol version",
                                          {"supported": ["2099-01-01"]}, status=400))
    with pytest.raises(ProtocolError, match="speaks none of our protocol versions"):
        await http_connection(script.url).connect()
    assert not script.of("POST", "initialize")


async def test_a_server_made_modern_by_a_late_probe_is_probed_again(
        start_http_script: StartHTTPScript) -> None:
    """The probe failed on our side, yet the server took it as the start of a modern
    connection: it refuses ``initialize`` with -32022 naming 2026-07-28."""
    script = await start_http_script()
    seen: list[str | None] = []

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        seen.append(recorded.rpc_method)
        if recorded.rpc_method == "initialize":
            return error(recorded, -32022, "Unsupported protocol version",
                         {"supported": ["2026-07-28"]}, status=400)
        if seen.count("server/discover") == 1:
            return web.Response(status=400)
        return reply(recorded, DISCOVERED)

    script.post = post
    async with http_connection(script.url) as conn:
        assert conn.era == "modern"
    assert seen == ["server/discover", "initialize", "server/discover"]


async def test_an_expired_session_is_renewed_once_for_all_waiting_requests(
        start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    frames = Frames()
    async with http_connection(mcp_url(server), frames, protocol_version="2025-11-25") as conn:
        transport = conn.transport
        assert isinstance(transport, StreamableHTTPTransport)
        first = transport.session_id
        assert first is not None
        async with aiohttp.ClientSession() as http, http.delete(
                mcp_url(server), headers={"Mcp-Session-Id": first,
                                          "MCP-Protocol-Version": "2025-11-25"}) as deleted:
            assert deleted.status == 200
        results = await asyncio.gather(*(conn.call_tool("echo", {"message": str(i)})
                                         for i in range(5)))
        assert [r["content"][0]["text"] for r in results] == [f"Echo: {i}" for i in range(5)]
        assert transport.session_id not in (None, first)
        assert conn.is_open and len(server.state.http_sessions) == 1
    assert frames.methods().count("initialize") == 2


async def test_a_broken_request_stream_fails_that_request_alone(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        method = recorded.rpc_method
        if method == "server/discover":
            return reply(recorded, DISCOVERED)
        args = recorded.body["params"].get("arguments") or {}
        if args.get("break"):
            return await sse(request, [b": working\n\n"])  # ends with no id to resume from
        return await sse(request, [event({"jsonrpc": "2.0", "id": recorded.body["id"],
                                          "result": {"content": []}})])

    script.post = post
    async with http_connection(script.url) as conn:
        with pytest.raises(RequestFailed, match="ended before the response"):
            await conn.call_tool("echo", {"break": True})
        assert conn.is_open
        assert await conn.call_tool("echo", {}) == {"content": []}


async def test_stdio_probe_answered_by_silence_falls_back(tmp_path: Path) -> None:
    """A handshake-era stdio server that ignores requests before ``initialize``: the probe
    times out (the connection's timeout, short here) and the handshake follows."""
    child = tmp_path / "legacy.py"
    child.write_text(textwrap.dedent("""
        import json, sys
        seen = []
        for line in sys.stdin:
            message = json.loads(line)
            seen.append(message.get("method"))
            if message.get("method") == "initialize":
                result = {"protocolVersion": "2025-06-18", "capabilities": {},
                          "serverInfo": {"name": "silent", "version": "1"}}
            elif message.get("method") == "tools/list" and "initialize" in seen:
                result = {"tools": [], "seen": seen}
            else:
                continue  # not initialized yet, or unknown: say nothing
            print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}),
                  flush=True)
    """))
    transport = create_transport("stdio", stdio_url([sys.executable, str(child)]))
    async with MCPConnection("silent", transport, timeout=0.5) as conn:
        assert (conn.era, conn.protocol_version) == ("handshake", "2025-06-18")
        listing = await conn.request("tools/list", timeout=TIMEOUT)
    # no notifications/cancelled for the probe: negotiation is never cancelled
    assert listing["seen"] == ["server/discover", "initialize", "notifications/initialized",
                               "tools/list"]


async def test_a_server_that_never_answers_a_notification_post_cannot_hold_up_connect(
        start_http_script: StartHTTPScript) -> None:
    """The POST of notifications/initialized is bounded like a request: no hang."""
    script = await start_http_script()
    legacy_server(script, lambda recorded: error(recorded, -32601, "Method not found"))
    answer = script.post

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.rpc_method == "notifications/initialized":
            await asyncio.Event().wait()  # never answered
        return await answer(request, recorded)

    script.post = post
    connection = http_connection(script.url, timeout=0.5)
    with pytest.raises(RequestTimeout, match="notifications/initialized"):
        async with asyncio.timeout(TIMEOUT):
            await connection.connect()
    assert not connection.is_open


@pytest.mark.parametrize(("status", "reason"), [(401, "Unauthorized"), (403, "Forbidden")])
async def test_a_probe_refused_for_credentials_is_reported_as_such(
        status: int, reason: str, start_http_script: StartHTTPScript) -> None:
    """401/403 is no era verdict: no fallback to initialize (whose answer would hide it)."""
    script = await start_http_script()
    challenge = 'Bearer realm="mcp", error="invalid_token"'

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.rpc_method == "initialize":  # what hid the 401 before
            return error(recorded, -32020, "Missing MCP-Protocol-Version header", status=400)
        return web.json_response(
            {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": "no token"}},
            status=status, headers={"WWW-Authenticate": challenge})

    script.post = post
    connection = http_connection(script.url)
    with pytest.raises(HTTPStatusError) as refused:
        await connection.connect()
    assert str(refused.value) == (f"POST {script.url} refused: HTTP {status} {reason} "
                                  f"(WWW-Authenticate: {challenge})")
    assert refused.value.status == status
    assert getattr(refused.value, "challenge", None) == challenge
    assert [r.rpc_method for r in script.of("POST")] == ["server/discover"]
    assert not connection.is_open and connection.closed_reason


async def test_server_info_in_the_body_of_discover_names_the_server(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()
    body_info = {k: v for k, v in DISCOVERED.items() if k != "_meta"}
    body_info["serverInfo"] = {"name": "in-body", "version": "7"}
    legacy_server(script, lambda recorded: reply(recorded, body_info))
    async with http_connection(script.url) as conn:
        assert conn.era == "modern" and conn.server is not None
        assert (conn.server.server_name, conn.server.server_version) == ("in-body", "7")


async def test_input_required_without_handlers_is_reported_incomplete(
        start_http_script: StartHTTPScript) -> None:
    script = await start_http_script()
    needs_input = {"resultType": "input_required", "requestState": "s1", "inputRequests": {
        "login": {"method": "sampling/createMessage", "params": {"maxTokens": 5}},
        "name": {"method": "elicitation/create", "params": {"message": "Your name?"}}}}

    async def post(request: web.Request, recorded: Recorded) -> web.StreamResponse:
        if recorded.rpc_method == "server/discover":
            return reply(recorded, DISCOVERED)
        return reply(recorded, needs_input)

    script.post = post
    async with http_connection(script.url) as conn:
        with pytest.raises(InputRequired) as raised:
            await conn.call_tool("greet", {})
        assert str(raised.value).startswith(
            "srv: tools/call needs input the client did not give "
            "(sampling/createMessage, elicitation/create): Method not found")
        assert raised.value.methods == ["sampling/createMessage", "elicitation/create"]
        assert raised.value.result["requestState"] == "s1"
        assert conn.is_open


async def test_a_session_renewal_passes_through_renewing(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    seen: list[tuple[str, ClientState]] = []

    def hook(name: str, direction: str, frame: bytes | str) -> None:
        method = orjson.loads(frame).get("method")
        if direction == "send" and method in ("initialize", "tools/call"):
            seen.append((method, conn.state))

    conn = MCPConnection("srv", StreamableHTTPTransport(mcp_url(server)), on_frame=hook,
                         timeout=TIMEOUT, protocol_version="2025-11-25")
    async with conn:
        transport = conn.transport
        assert isinstance(transport, StreamableHTTPTransport) and transport.session_id
        async with aiohttp.ClientSession() as http, http.delete(
                mcp_url(server), headers={"Mcp-Session-Id": transport.session_id,
                                          "MCP-Protocol-Version": "2025-11-25"}):
            pass
        await conn.call_tool("echo", {"message": "again"})
        assert conn.state is ClientState.OPEN
    assert seen == [("initialize", ClientState.OPENING), ("tools/call", ClientState.OPEN),
                    ("initialize", ClientState.RENEWING), ("tools/call", ClientState.OPEN)]
