"""Our server validates the test authorization server's tokens on every transport.

Good tokens open every transport to our client; expired ones, ones for another audience or
from another issuer, ones signed with an unknown key, ``alg: none`` and the HS256-with-the-
public-key forgery get 401 with a Bearer challenge; a token without the scope the server
requires gets 403 ``insufficient_scope`` naming it.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from mcp_multi.client.multi import MultiServerMCPClient

from ..oauth.authorization_server import BAD_TOKEN_KINDS
from .conftest import TRANSPORTS, Protected, StartProtected, challenge_params

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "probe", "version": "1"}}}


async def probe(protected: Protected, transport: str,
                headers: dict[str, str]) -> tuple[int, str]:
    """The status and ``WWW-Authenticate`` of opening ``transport`` with ``headers``."""
    url = protected.url(transport)
    async with aiohttp.ClientSession() as http:
        if transport == "websocket":
            try:
                async with http.ws_connect(url, headers=headers, protocols=("mcp",)):
                    return 101, ""
            except aiohttp.WSServerHandshakeError as refused:
                return refused.status, (refused.headers or {}).get("WWW-Authenticate", "")
        if transport == "sse":
            async with http.get(url, headers={**headers, "Accept": "text/event-stream"}) as r:
                return r.status, r.headers.get("WWW-Authenticate", "")
        async with http.post(url, json=INITIALIZE, headers={
                **headers, "Accept": "application/json, text/event-stream"}) as r:
            return r.status, r.headers.get("WWW-Authenticate", "")


@pytest.fixture
async def protected(start_protected: StartProtected) -> Protected:
    return await start_protected("--auth-scopes", "mcp:read")


async def test_the_server_advertises_the_authorization_server(protected: Protected) -> None:
    assert protected.metadata["authorization_servers"] == [protected.auth.issuer]
    assert "mcp:read" in protected.metadata.get("scopes_supported", [])
    assert protected.resource.startswith(protected.server.base_url)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_token_is_challenged(protected: Protected, transport: str) -> None:
    status, challenge = await probe(protected, transport, {})
    assert status == 401
    assert "resource_metadata" in challenge_params(challenge)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
async def test_bad_tokens_get_401(protected: Protected, transport: str, kind: str) -> None:
    token = protected.auth.bad_token(kind, resource=protected.resource, scope="mcp:read")
    status, challenge = await probe(protected, transport, {"Authorization": "Bearer " + token})
    assert status == 401, kind
    params = challenge_params(challenge)
    assert params.get("error") == "invalid_token"
    assert "resource_metadata" in params
    assert token not in challenge


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_missing_scope_gets_403_naming_it(protected: Protected, transport: str) -> None:
    status, challenge = await probe(protected, transport, protected.bearer("mcp:write"))
    assert status == 403
    params = challenge_params(challenge)
    assert params["error"] == "insufficient_scope"
    assert "mcp:read" in params["scope"].split()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_good_token_opens_every_transport_to_our_client(
        protected: Protected, transport: str) -> None:
    async with MultiServerMCPClient(headers=protected.bearer("mcp:read")) as client:
        await client.add("s", protected.url(transport), transport)
        result: Any = await client.call("s", "echo", {"message": "through OAuth"})
        assert result["content"][0]["text"] == "Echo: through OAuth"


async def test_healthz_stays_open(protected: Protected) -> None:
    """Open, and telling a stranger how many tools there are, not which."""
    async with aiohttp.ClientSession() as http, \
            http.get(protected.server.base_url + "/healthz") as response:
        assert response.status == 200
        health = await response.json()
    assert "tools" not in health
    assert health["tool_count"] == 5 and health["status"] == "ok"
