"""Token introspection (RFC 7662) against the tests' real authorization server, when the
server has client credentials for its introspection endpoint."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from mcp_multi.server.app import RunningServer
from tests.oauth.authorization_server import OAuthServer

from ...conftest import StartServer

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {},
    "clientInfo": {"name": "auth-test", "version": "0"}}}


async def _status(server: RunningServer, token: str) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            server.base_url + "/mcp", data=orjson.dumps(INITIALIZE), headers={
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json", "Authorization": f"Bearer {token}"}) as r:
        return r.status


def _introspections(oauth: OAuthServer) -> int:
    return sum(1 for event in oauth.events if event["endpoint"] == "introspect")


@pytest.fixture
async def introspecting(start_mcp_server: StartServer,
                        oauth_server: OAuthServer) -> RunningServer:
    rs = oauth_server.register_client(grant_types=["client_credentials"])
    assert rs.client_secret is not None
    return await start_mcp_server(auth_issuer=oauth_server.issuer,
                                  auth_introspection_client=(rs.client_id, rs.client_secret))


async def test_active_token_passes_and_is_cached(introspecting: RunningServer,
                                                 oauth_server: OAuthServer) -> None:
    token = oauth_server.access_token(resource=introspecting.base_url + "/mcp")
    assert await _status(introspecting, token) == 200
    assert await _status(introspecting, token) == 200
    assert _introspections(oauth_server) == 1  # the second answer came from the cache


@pytest.mark.parametrize("kind", ["unknown", "other_audience", "expired"])
async def test_inactive_or_foreign_token_is_refused(introspecting: RunningServer,
                                                    oauth_server: OAuthServer,
                                                    kind: str) -> None:
    resource = introspecting.base_url + "/mcp"
    if kind == "unknown":
        token = "opaque-" + "x" * 20  # the issuer never issued it: inactive
    else:
        token = oauth_server.access_token(
            resource="https://other.example/mcp" if kind == "other_audience" else resource,
            ttl=-120 if kind == "expired" else None)
    assert await _status(introspecting, token) == 401
    assert await _status(introspecting, token) == 401  # the refusal is remembered briefly


async def test_wrong_client_credentials_are_a_503(start_mcp_server: StartServer,
                                                  oauth_server: OAuthServer) -> None:
    server = await start_mcp_server(auth_issuer=oauth_server.issuer,
                                    auth_introspection_client=("nobody", "nothing"))
    token: Any = oauth_server.access_token(resource=server.base_url + "/mcp")
    assert await _status(server, token) == 503
