"""Our client's OAuth (``OAuthAuth`` with the headless agent, browser-less) against our server:
a short-lived token is refreshed and the call succeeds; a token without the scope the server
requires gets 403 ``insufficient_scope`` and the client steps up and succeeds."""

from __future__ import annotations

import asyncio

from mcp_multi.client.auth.agent import HeadlessAgent
from mcp_multi.client.auth.oauth import MemoryTokenStore, OAuthAuth, StoredGrant
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.targets import ServerSpec

from .conftest import StartProtected


async def test_refresh_then_step_up(start_protected: StartProtected) -> None:
    protected = await start_protected("--auth-scopes", "mcp:read")
    url = protected.url("streamable_http")
    auth_server = protected.auth
    auth_server.access_token_ttl = 2
    store = MemoryTokenStore()
    auth = OAuthAuth(url, store=store, agent=HeadlessAgent())
    async with MultiServerMCPClient() as client:
        await client.add_spec(ServerSpec("s", "http", url), auth=auth)
        assert (await client.call("s", "echo", {"message": "1"}))["content"][0][
            "text"] == "Echo: 1"
        await asyncio.sleep(2.5)
        assert (await client.call("s", "echo", {"message": "2"}))["content"][0][
            "text"] == "Echo: 2"
    assert auth_server.token_requests("refresh_token"), auth_server.events
    assert len([e for e in auth_server.events if e["endpoint"] == "authorize"]) == 1

    # Step-up: the stored token lacks mcp:read.
    auth_server.access_token_ttl = 3600
    grant = store.load(protected.resource)
    assert grant is not None
    weak = protected.token("mcp:write")
    store.save(protected.resource, StoredGrant(
        access_token=weak, expires_at=None, scope="mcp:write", issuer=grant.issuer,
        client_id=grant.client_id, client_secret=grant.client_secret,
        token_endpoint_auth_method=grant.token_endpoint_auth_method))
    auth = OAuthAuth(url, store=store, agent=HeadlessAgent())
    async with MultiServerMCPClient() as client:
        await client.add_spec(ServerSpec("s", "http", url), auth=auth)
        assert (await client.call("s", "echo", {"message": "3"}))["content"][0][
            "text"] == "Echo: 3"
    authorizations = [e for e in auth_server.events if e["endpoint"] == "authorize"]
    assert len(authorizations) == 2
    assert "mcp:read" in (authorizations[-1]["scope"] or "").split()
