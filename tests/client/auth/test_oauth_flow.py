"""The client's OAuth over real sockets: a fake authorization server and a protected MCP
server (``fake_oauth``) on 127.0.0.1, our client in front of them over every HTTP
transport: discovery, dynamic registration, the code flow with PKCE and ``resource``,
refresh (before expiry and after a 401), step-up on 403 and its limit, the bounds on what
the authorization server sends, and no token in the logs."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from mcp_multi.client.auth.agent import AuthorizationFailed, HeadlessAgent
from mcp_multi.client.auth.discovery import MAX_METADATA_BYTES
from mcp_multi.client.auth.oauth import MAX_ATTEMPTS, MemoryTokenStore, OAuthAuth
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.targets import ServerSpec
from mcp_multi.protocol.errors import AuthorizationRequired
from mcp_multi.transport import SSETransport, StreamableHTTPTransport, WebSocketTransport

from .fake_oauth import FakeOAuth

VERSION = "2025-11-25"


def _client(fake: FakeOAuth, store: MemoryTokenStore | None = None) -> MultiServerMCPClient:
    def auth_for(spec: ServerSpec) -> OAuthAuth:
        return OAuthAuth(spec.url, store=store, agent=HeadlessAgent())

    return MultiServerMCPClient(timeout=10, protocol_version=VERSION, auth_for=auth_for)


async def test_the_whole_flow_over_streamable_http(fake_oauth: FakeOAuth) -> None:
    fake_oauth.required = ("mcp:tools",)
    store = MemoryTokenStore()
    async with _client(fake_oauth, store) as client:
        connection = await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
        assert [t["name"] for t in await connection.list_tools()] == ["echo"]
        result = await connection.call_tool("echo", {"text": "hi"})
        assert result["content"][0]["text"] == "hi"
    [authorize] = fake_oauth.authorize_requests
    assert authorize["resource"] == fake_oauth.mcp_url
    assert authorize["scope"] == "mcp:tools"
    assert authorize["code_challenge_method"] == "S256"
    assert fake_oauth.mcp_auth_headers[0] is None  # the first request learns it is needed
    assert all(h and h.startswith("Bearer ") for h in fake_oauth.mcp_auth_headers[1:])
    grant = store.load(fake_oauth.mcp_url)
    assert grant is not None and grant.issuer == fake_oauth.issuer
    assert grant.client_id == "client-1" and grant.scope == "mcp:tools"


async def test_a_stored_grant_is_used_without_authorizing(fake_oauth: FakeOAuth) -> None:
    store = MemoryTokenStore()
    async with _client(fake_oauth, store) as client:
        await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
    async with _client(fake_oauth, store) as client:
        connection = await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
        await connection.list_tools()
    assert len(fake_oauth.authorize_requests) == 1
    assert len(fake_oauth.clients) == 1


async def test_a_401_with_a_refresh_token_refreshes(fake_oauth: FakeOAuth) -> None:
    fake_oauth.refresh = True
    async with _client(fake_oauth) as client:
        connection = await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
        fake_oauth.revoke_all()  # the server no longer takes the token: 401 invalid_token
        await connection.list_tools()
    assert len(fake_oauth.authorize_requests) == 1
    grants = [r["grant_type"] for r in fake_oauth.token_requests]
    assert grants == ["authorization_code", "refresh_token"]
    assert fake_oauth.token_requests[1]["resource"] == fake_oauth.mcp_url


async def test_a_token_about_to_expire_is_refreshed_first(fake_oauth: FakeOAuth) -> None:
    fake_oauth.refresh = True
    fake_oauth.expires_in = 1  # short-lived: refreshed in the last quarter of its life
    async with _client(fake_oauth) as client:
        connection = await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
        refused_before = fake_oauth.mcp_auth_headers.count(None)
        await asyncio.sleep(0.8)
        await connection.list_tools()
    grants = [r["grant_type"] for r in fake_oauth.token_requests]
    assert grants[0] == "authorization_code" and "refresh_token" in grants
    assert fake_oauth.mcp_auth_headers.count(None) == refused_before == 1
    assert len(fake_oauth.authorize_requests) == 1


async def test_without_a_refresh_token_a_401_authorizes_again(fake_oauth: FakeOAuth) -> None:
    async with _client(fake_oauth) as client:
        connection = await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
        fake_oauth.revoke_all()
        await connection.list_tools()
    assert len(fake_oauth.authorize_requests) == 2
    assert len(fake_oauth.clients) == 1  # the registration is reused


async def test_a_403_steps_up_with_the_union_of_scopes(fake_oauth: FakeOAuth) -> None:
    fake_oauth.required = ("mcp:read",)
    fake_oauth.call_needs = ("mcp:write",)
    async with _client(fake_oauth) as client:
        connection = await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
        result = await connection.call_tool("echo", {"text": "up"})
    assert result["content"][0]["text"] == "up"
    scopes = [r.get("scope") for r in fake_oauth.authorize_requests]
    assert scopes[0] == "mcp:read"
    assert set(scopes[1].split()) == {"mcp:read", "mcp:write"}


async def test_step_up_is_bounded(fake_oauth: FakeOAuth) -> None:
    fake_oauth.always_forbid = True
    fake_oauth.required = ("a",)
    auth = OAuthAuth(fake_oauth.mcp_url, agent=HeadlessAgent())
    async with MultiServerMCPClient(timeout=10, protocol_version=VERSION) as client:
        with pytest.raises(AuthorizationRequired) as caught:
            await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url), auth=auth)
    assert caught.value.status == 403
    assert 1 <= len(fake_oauth.authorize_requests) <= MAX_ATTEMPTS


@pytest.mark.parametrize("iss", ["wrong", None])
async def test_a_bad_iss_stops_before_the_token_request(fake_oauth: FakeOAuth,
                                                        iss: str | None) -> None:
    fake_oauth.iss = iss
    async with _client(fake_oauth) as client:
        with pytest.raises(AuthorizationFailed, match="RFC 9207"):
            await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
    assert fake_oauth.authorize_requests and not fake_oauth.token_requests


async def test_oversized_metadata_is_refused(fake_oauth: FakeOAuth) -> None:
    fake_oauth.metadata_padding = MAX_METADATA_BYTES
    async with _client(fake_oauth) as client:
        with pytest.raises(AuthorizationFailed, match=r"over .* bytes"):
            await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
    assert not fake_oauth.clients


async def test_streamable_http_transport_alone(fake_oauth: FakeOAuth) -> None:
    auth = OAuthAuth(fake_oauth.mcp_url, agent=HeadlessAgent())
    transport = StreamableHTTPTransport(fake_oauth.mcp_url, auth=auth)
    await transport.connect()
    try:
        await transport.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert b"echo" in _bytes(await transport.receive())
    finally:
        await transport.close()


async def test_the_sse_stream_and_its_posts_are_authorized(fake_oauth: FakeOAuth) -> None:
    auth = OAuthAuth(f"{fake_oauth.base}/sse", agent=HeadlessAgent())
    transport = SSETransport(f"{fake_oauth.base}/sse", auth=auth)
    await transport.connect()
    try:
        await transport.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert b"echo" in _bytes(await transport.receive())
        fake_oauth.revoke_all()  # the POST now gets 401: authorized again, then sent
        await transport.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert b'"id":2' in _bytes(await transport.receive())
    finally:
        await transport.close()
    assert len(fake_oauth.authorize_requests) == 2
    assert fake_oauth.authorize_requests[0]["resource"] == f"{fake_oauth.base}/sse"


async def test_the_websocket_upgrade_is_authorized(fake_oauth: FakeOAuth) -> None:
    url = f"{fake_oauth.base}/ws".replace("http://", "ws://")
    auth = OAuthAuth(f"{fake_oauth.base}/ws", agent=HeadlessAgent())
    transport = WebSocketTransport(url, auth=auth)
    await transport.connect()
    try:
        await transport.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert b"echo" in _bytes(await transport.receive())
    finally:
        await transport.close()
    assert fake_oauth.mcp_auth_headers[0] is None
    assert fake_oauth.mcp_auth_headers[-1] is not None


async def test_a_websocket_refusal_the_hook_gives_up_on(fake_oauth: FakeOAuth) -> None:
    fake_oauth.always_forbid = True
    fake_oauth.required = ("a",)
    url = f"{fake_oauth.base}/ws".replace("http://", "ws://")
    transport = WebSocketTransport(url, auth=OAuthAuth(f"{fake_oauth.base}/ws"))
    with pytest.raises(AuthorizationRequired, match="HTTP 403"):
        await transport.connect()


async def test_no_token_code_or_secret_reaches_the_logs(
        fake_oauth: FakeOAuth, caplog: pytest.LogCaptureFixture) -> None:
    fake_oauth.refresh = True
    caplog.set_level(logging.DEBUG)
    async with _client(fake_oauth) as client:
        connection = await client.add_spec(ServerSpec("s", "http", fake_oauth.mcp_url))
        fake_oauth.revoke_all()
        await connection.list_tools()
    secrets = [*fake_oauth.refresh_tokens, *(c["secret"] for c in fake_oauth.clients.values()),
               *(r[k] for r in fake_oauth.token_requests for k in ("code", "code_verifier")
                 if k in r)]
    secrets += [h[7:] for h in fake_oauth.mcp_auth_headers if h]
    assert len(secrets) >= 6 and all(secrets)
    for record in caplog.records:
        if record.name == "aiohttp.access":
            continue  # the fake server's own access log, not the client's
        text = record.getMessage()
        assert not any(secret in text for secret in secrets), text


class SlowAgent(HeadlessAgent):
    """A person who takes their time at the browser: approves once ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def authorize(self, url: str) -> dict[str, str]:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return await super().authorize(url)


async def test_a_request_given_up_leaves_the_authorization_running(
        fake_oauth: FakeOAuth) -> None:
    agent = SlowAgent()
    auth = OAuthAuth(fake_oauth.mcp_url, agent=agent)
    transport = StreamableHTTPTransport(fake_oauth.mcp_url, auth=auth)
    await transport.connect()
    try:
        first = asyncio.create_task(
            transport.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        await agent.started.wait()
        first.cancel()  # its timeout, say: the person is still at the browser
        second = asyncio.create_task(
            transport.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        async with asyncio.timeout(5):
            await fake_oauth.seen(2)
        agent.release.set()
        await second
        assert orjson.loads(await transport.receive())["id"] == 2
    finally:
        await transport.close()
        await auth.close()
    assert agent.calls == 1 and len(fake_oauth.authorize_requests) == 1


async def test_close_stops_an_authorization_in_progress(fake_oauth: FakeOAuth) -> None:
    agent = SlowAgent()
    auth = OAuthAuth(fake_oauth.mcp_url, agent=agent)
    transport = StreamableHTTPTransport(fake_oauth.mcp_url, auth=auth)
    await transport.connect()
    sending = asyncio.create_task(
        transport.send({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
    await agent.started.wait()
    await auth.close()
    with pytest.raises(asyncio.CancelledError):
        await sending
    await transport.close()
    assert not fake_oauth.token_requests


def _bytes(frame: bytes | str) -> bytes:
    return frame.encode() if isinstance(frame, str) else frame
