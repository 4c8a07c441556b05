"""The server as an OAuth 2.1 resource server, against the tests' real authorization server
(tests/oauth): protected resource metadata, the 401/403 challenges on every MCP endpoint,
JWT access tokens checked against the issuer's keys, the caller bound to its session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from joserfc.jwk import ECKey

from mcp_multi.client.connection import MCPConnection
from mcp_multi.server.app import RunningServer
from tests.oauth.authorization_server import BAD_TOKEN_KINDS, OAuthServer

from ...conftest import StartServer

TIMEOUT = 10.0
MCP_ACCEPT = "application/json, text/event-stream"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "auth-test", "version": "0"}}}
SCOPE = "mcp:read"


@pytest.fixture
async def protected(start_mcp_server: StartServer,
                    oauth_server: OAuthServer) -> AsyncIterator[RunningServer]:
    """A server accepting ``oauth_server``'s tokens, requiring :data:`SCOPE`."""
    yield await start_mcp_server(auth_issuer=oauth_server.issuer, auth_scopes=(SCOPE,))


def token_for(oauth: OAuthServer, server: RunningServer, path: str = "/mcp",
              scope: str = SCOPE, **kwargs: Any) -> str:
    return oauth.access_token(resource=server.base_url + path, scope=scope, **kwargs)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def url_of(kind: str, server: RunningServer) -> str:
    return {"websocket": f"ws://127.0.0.1:{server.port}/ws",
            "sse": server.base_url + "/sse", "http": server.base_url + "/mcp"}[kind]


async def post_mcp(server: RunningServer, body: dict[str, Any],
                   headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as http, http.post(
            server.base_url + "/mcp", data=orjson.dumps(body),
            headers={"Accept": MCP_ACCEPT, "Content-Type": "application/json", **headers},
            timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as resp:
        return resp.status, dict(resp.headers), await resp.json()


# ---------------------------------------------------------------------- metadata


async def test_protected_resource_metadata(protected: RunningServer,
                                           oauth_server: OAuthServer) -> None:
    base = protected.base_url
    async with aiohttp.ClientSession() as http:
        for tail, resource in (("", base), ("/mcp", base + "/mcp"), ("/ws", base + "/ws"),
                               ("/sse", base + "/sse")):
            async with http.get(base + "/.well-known/oauth-protected-resource" + tail,
                                headers={"Origin": "https://app.example"}) as resp:
                assert resp.status == 200
                assert resp.headers["Access-Control-Allow-Origin"] == "*"
                doc = await resp.json()
            assert doc == {"resource": resource,
                           "authorization_servers": [oauth_server.issuer],
                           "bearer_methods_supported": ["header"],
                           "scopes_supported": [SCOPE], "resource_name": "mcp-server"}
        async with http.options(base + "/.well-known/oauth-protected-resource/mcp", headers={
                "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "mcp-protocol-version"}) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
        async with http.get(base + "/.well-known/oauth-protected-resource/nope") as resp:
            assert resp.status == 404


async def test_audience_option_is_the_one_resource(start_mcp_server: StartServer,
                                                   oauth_server: OAuthServer) -> None:
    audience = "https://mcp.example.com/tenant/mcp"
    server = await start_mcp_server(auth_issuer=oauth_server.issuer, auth_audience=audience)
    async with aiohttp.ClientSession() as http:
        for tail in ("", "/tenant/mcp"):
            async with http.get(server.base_url + "/.well-known/oauth-protected-resource"
                                + tail) as resp:
                assert (await resp.json())["resource"] == audience
    status, headers, _ = await post_mcp(server, INITIALIZE, {})
    assert status == 401
    assert headers["WWW-Authenticate"] == ('Bearer resource_metadata="https://mcp.example.com/'
                                           '.well-known/oauth-protected-resource/tenant/mcp"')
    # A token for the audience passes, whatever Host says; one for the derived URL does not.
    good = oauth_server.access_token(resource=audience)
    assert (await post_mcp(server, INITIALIZE, bearer(good)))[0] == 200
    local = token_for(oauth_server, server)
    assert (await post_mcp(server, INITIALIZE, bearer(local)))[0] == 401


async def test_no_metadata_without_an_issuer(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(auth_token="s3cret")
    async with aiohttp.ClientSession() as http, \
            http.get(server.base_url + "/.well-known/oauth-protected-resource") as resp:
        assert resp.status == 404


# ---------------------------------------------------------------------- challenges

GUARDED = [("POST", "/mcp"), ("GET", "/mcp"), ("DELETE", "/mcp"), ("GET", "/ws"),
           ("GET", "/sse"), ("POST", "/message?sessionId=x")]


@pytest.mark.parametrize(("method", "path"), GUARDED)
async def test_every_endpoint_challenges(protected: RunningServer, method: str,
                                         path: str) -> None:
    """No token: 401 pointing at the endpoint's metadata, with the scope to ask for; a bad
    token: the same with error="invalid_token"; both with a JSON-RPC error body."""
    base = protected.base_url
    endpoint = {"/message?sessionId=x": "/sse"}.get(path, path)
    expected = (f'resource_metadata="{base}/.well-known/oauth-protected-resource{endpoint}"')
    headers = {"Accept": MCP_ACCEPT, "Content-Type": "application/json",
               "MCP-Protocol-Version": "2025-11-25"}
    if path == "/ws":
        headers.update({"Connection": "Upgrade", "Upgrade": "websocket",
                        "Sec-WebSocket-Version": "13",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    async with aiohttp.ClientSession() as http:
        for given, error in ((None, ""), ("garbage", 'error="invalid_token", ')):
            extra = bearer(given) if given else {}
            async with http.request(method, base + path, headers={**headers, **extra},
                                    data=b"{}" if method == "POST" else None) as resp:
                assert resp.status == 401
                challenge = resp.headers["WWW-Authenticate"]
                body = await resp.json()
            assert challenge == f'Bearer {error}scope="{SCOPE}", {expected}'
            assert body["id"] is None and body["error"]["code"] == -32600
            assert "bearer token is required" in body["error"]["message"]


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
async def test_bad_tokens_are_refused(protected: RunningServer, oauth_server: OAuthServer,
                                      kind: str) -> None:
    """Expired, other audience, other issuer, unknown key, alg none, HS256 made with the
    public key...: 401 invalid_token, and nothing about why."""
    token = oauth_server.bad_token(kind, resource=protected.base_url + "/mcp", scope=SCOPE)
    status, headers, body = await post_mcp(protected, INITIALIZE, bearer(token))
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token", ')
    assert body["error"]["message"] == "Unauthorized: a valid bearer token is required"


async def test_missing_scope_is_403_naming_it(protected: RunningServer,
                                              oauth_server: OAuthServer) -> None:
    token = token_for(oauth_server, protected, scope="mcp:write")
    status, headers, body = await post_mcp(protected, INITIALIZE, bearer(token))
    assert status == 403
    base = protected.base_url
    assert headers["WWW-Authenticate"] == (
        f'Bearer error="insufficient_scope", scope="{SCOPE}", resource_metadata="{base}'
        '/.well-known/oauth-protected-resource/mcp"')
    assert body["id"] is None and "lacks a required scope" in body["error"]["message"]


async def test_audience_may_be_a_list_or_any_endpoint(protected: RunningServer,
                                                      oauth_server: OAuthServer) -> None:
    base = protected.base_url
    for aud in ([f"{base}/ws", "https://other.example"], base, base + "/", f"{base}/sse"):
        claims = oauth_server.claims(resource=base, scope=SCOPE)
        claims["aud"] = aud
        token = oauth_server.sign(claims)
        assert (await post_mcp(protected, INITIALIZE, bearer(token)))[0] == 200, aud


async def test_garbage_is_refused_without_asking_the_issuer(
        protected: RunningServer, oauth_server: OAuthServer) -> None:
    fetches = _count_jwks(oauth_server)
    for junk in ("x", "a.b.c", "e30.e30.", "." * 3, "Zm9v" * 1500, "eyJhbGciOiJub25lIn0.e30.",
                 "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "Bearer x", "é"):
        status, _, _ = await post_mcp(protected, INITIALIZE, bearer(junk))
        assert status == 401
    assert fetches == [0]


# ---------------------------------------------------------------------- transports


@pytest.mark.parametrize("kind", ["websocket", "sse", "http"])
async def test_valid_token_on_every_transport(protected: RunningServer,
                                              oauth_server: OAuthServer, kind: str) -> None:
    token = token_for(oauth_server, protected, "/ws" if kind == "websocket" else "/mcp")
    conn = MCPConnection("srv", _transport(kind, protected, token), timeout=TIMEOUT)
    async with conn:
        result = await conn.call_tool("echo", {"message": "hi"})
        assert result["content"][0]["text"].endswith("hi")
    # The same client without the token does not get in.
    with pytest.raises(Exception, match="401"):
        async with MCPConnection("srv", _transport(kind, protected, None), timeout=TIMEOUT):
            pass


async def test_valid_token_in_the_stateless_era(protected: RunningServer,
                                                oauth_server: OAuthServer) -> None:
    token = token_for(oauth_server, protected)
    conn = MCPConnection("srv", _transport("http", protected, token), timeout=TIMEOUT,
                         protocol_version="2026-07-28")
    async with conn:
        assert conn.protocol_version == "2026-07-28"
        result = await conn.call_tool("echo", {"message": "modern"})
        assert result["content"][0]["text"].endswith("modern")


def _transport(kind: str, server: RunningServer, token: str | None) -> Any:
    from mcp_multi.transport import create_transport

    return create_transport(kind, url_of(kind, server), headers=bearer(token) if token else {})


# ---------------------------------------------------------------------- sessions


async def test_session_belongs_to_its_subject(protected: RunningServer,
                                              oauth_server: OAuthServer) -> None:
    """Another subject naming a live session id is told what an unknown id is told, on
    POST, GET and DELETE; the owner with a fresh token of its own goes on."""
    alice = token_for(oauth_server, protected, subject="alice")
    mallory = token_for(oauth_server, protected, subject="mallory")
    status, headers, _ = await post_mcp(protected, INITIALIZE, bearer(alice))
    assert status == 200
    session = headers["Mcp-Session-Id"]
    common = {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    status, _, body = await post_mcp(protected, ping, {**common, **bearer(mallory)})
    assert status == 404
    assert body["error"]["message"] == f"Not Found: unknown or ended session {session}"
    async with aiohttp.ClientSession() as http:
        for method in ("GET", "DELETE"):
            async with http.request(method, protected.base_url + "/mcp", headers={
                    **common, **bearer(mallory), "Accept": "text/event-stream"}) as resp:
                assert resp.status == 404
    later = token_for(oauth_server, protected, subject="alice", ttl=600)
    status, _, body = await post_mcp(protected, ping, {**common, **bearer(later)})
    assert (status, body["result"]) == (200, {})


async def test_sse_session_belongs_to_its_subject(protected: RunningServer,
                                                  oauth_server: OAuthServer) -> None:
    alice = token_for(oauth_server, protected, "/sse", subject="alice")
    mallory = token_for(oauth_server, protected, "/sse", subject="mallory")
    async with aiohttp.ClientSession() as http, http.get(
            protected.base_url + "/sse", headers={**bearer(alice),
                                                  "Accept": "text/event-stream"}) as stream:
        assert stream.status == 200
        await stream.content.readline()
        endpoint = (await stream.content.readline()).decode().removeprefix("data: ").strip()
        url = protected.base_url + endpoint
        async with http.post(url, data=orjson.dumps(INITIALIZE), headers={
                **bearer(mallory), "Content-Type": "application/json"}) as resp:
            assert resp.status == 404
        async with http.post(url, data=orjson.dumps(INITIALIZE), headers={
                **bearer(alice), "Content-Type": "application/json"}) as resp:
            assert resp.status == 202


async def test_static_token_is_not_an_issuer_subject(start_mcp_server: StartServer,
                                                     oauth_server: OAuthServer) -> None:
    """--auth-token works beside --auth-issuer; a JWT whose sub is "token:static" is not
    its caller, so it cannot take over the static token's session."""
    server = await start_mcp_server(auth_issuer=oauth_server.issuer, auth_token="s3cret")
    status, headers, _ = await post_mcp(server, INITIALIZE, bearer("s3cret"))
    assert status == 200
    impostor = token_for(oauth_server, server, subject="token:static")
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    status, _, _ = await post_mcp(server, ping, {
        "Mcp-Session-Id": headers["Mcp-Session-Id"], "MCP-Protocol-Version": "2025-11-25",
        **bearer(impostor)})
    assert status == 404


async def test_websocket_closes_when_its_token_expires(protected: RunningServer,
                                                       oauth_server: OAuthServer) -> None:
    """The token of the upgrade cannot be renewed on the socket: at its expiry the server
    closes the connection with 4401."""
    claims = oauth_server.claims(resource=protected.base_url + "/ws", scope=SCOPE)
    claims["exp"] = int(time.time()) + 2
    token = oauth_server.sign(claims)
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"ws://127.0.0.1:{protected.port}/ws", headers=bearer(token)) as ws:
        await ws.send_bytes(orjson.dumps(INITIALIZE))
        assert "result" in orjson.loads((await ws.receive(timeout=TIMEOUT)).data)
        closing = await ws.receive(timeout=TIMEOUT)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert (closing.data, closing.extra) == (4401, "access token expired")


# ---------------------------------------------------------------------- keys and issuer


async def test_rotated_key_is_fetched_once(start_mcp_server: StartServer,
                                           oauth_server: OAuthServer) -> None:
    """A token signed by a key the server has not seen makes it fetch the keys again; a
    flood of made-up key ids within the refresh interval costs the issuer nothing."""
    fetches = _count_jwks(oauth_server)
    server = await start_mcp_server(auth_issuer=oauth_server.issuer,
                                    auth_key_refresh_interval=INTERVAL)
    assert (await post_mcp(server, INITIALIZE, bearer(token_for(oauth_server, server))))[0] \
        == 200
    assert fetches == [1]
    # The issuer rotates: a new key (a new kid) signs from now on.
    oauth_server.ec_key = ECKey.generate_key("P-256", {"kid": "ec-rotated", "use": "sig",
                                                       "alg": "ES256"})
    oauth_server.signing_alg = "ES256"
    await asyncio.sleep(INTERVAL + 0.1)  # the refresh interval has passed since the fetch
    assert (await post_mcp(server, INITIALIZE, bearer(token_for(oauth_server, server))))[0] \
        == 200
    assert fetches == [2]
    flood = [oauth_server.bad_token("unknown_key", resource=server.base_url + "/mcp")
             for _ in range(5)]
    await asyncio.sleep(INTERVAL + 0.1)
    statuses = await asyncio.gather(*(post_mcp(server, INITIALIZE, bearer(t)) for t in flood))
    assert [s[0] for s in statuses] == [401] * 5
    assert fetches == [3]  # one refresh for the first unknown kid, none for the rest


INTERVAL = 1.0  # the key refresh interval of test_rotated_key_is_fetched_once


def _count_jwks(oauth: OAuthServer) -> list[int]:
    """Count the issuer's JWKS answers (wraps the test server's own method)."""
    fetches = [0]
    original = oauth.jwks

    def counting() -> dict[str, Any]:
        fetches[0] += 1
        return original()

    oauth.jwks = counting  # type: ignore[method-assign]
    return fetches


async def test_unreachable_issuer_is_a_fast_503(start_mcp_server: StartServer,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """An issuer nobody answers at: the server starts, says so once in its log, and answers
    503 (retry later) at once, never a hang or a traceback."""
    with caplog.at_level("WARNING", logger="mcp_multi.server.auth"):
        server = await start_mcp_server(auth_issuer="http://127.0.0.1:9/", auth_fetch_timeout=1.0)
    started = time.monotonic()
    for _ in range(3):
        status, headers, body = await post_mcp(server, INITIALIZE, bearer("a.b.c"))
        assert status in (401, 503)
        status, headers, body = await post_mcp(server, INITIALIZE, bearer(
            "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.e30.c2ln"))
        assert status == 503
        assert headers["Retry-After"] == "5"
        assert "authorization server cannot be reached" in body["error"]["message"]
    assert time.monotonic() - started < 3.0
    warnings = [r.getMessage() for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(warnings) == 1 and "http://127.0.0.1:9/" in warnings[0]
    # No token is still a 401 that tells where to get one.
    assert (await post_mcp(server, INITIALIZE, {}))[0] == 401


# ---------------------------------------------------------------------- health, metrics


async def test_health_open_and_metrics_token(start_mcp_server: StartServer,
                                             oauth_server: OAuthServer) -> None:
    server = await start_mcp_server(auth_issuer=oauth_server.issuer, metrics_token="scrape")
    async with aiohttp.ClientSession() as http:
        async with http.get(server.base_url + "/healthz") as resp:
            assert resp.status == 200
        async with http.get(server.base_url + "/metrics") as resp:
            assert resp.status == 401
        async with http.get(server.base_url + "/metrics", headers=bearer(
                token_for(oauth_server, server))) as resp:
            assert resp.status == 401  # an access token is not the metrics token
        async with http.get(server.base_url + "/metrics", headers=bearer("scrape")) as resp:
            assert resp.status == 200
            assert "mcp" in await resp.text()
