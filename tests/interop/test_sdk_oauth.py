"""The official SDK client's OAuth support against our server as a resource server.

The SDK's ``OAuthClientProvider`` (an httpx ``Auth``) meets our server's 401, reads its
protected resource metadata, discovers the test authorization server, registers itself
dynamically, and runs the authorization code flow with PKCE and the resource indicator; the
test is its browser: it GETs the authorization URL without following the redirect and hands the
redirect's query back as the callback. Then it refreshes an expired token, and steps up when a
token lacks the scope our server requires.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from ..e2e.conftest import Protected, StartProtected, start_protected
from ..oauth.authorization_server import OAuthServer

__all__ = ["start_protected"]  # the fixture, for this directory

REDIRECT = "http://127.0.0.1:9/callback"  # nothing listens: the test's browser reads the redirect


class Storage:
    """The SDK's ``TokenStorage``, in memory."""

    def __init__(self, tokens: OAuthToken | None = None,
                 client_info: OAuthClientInformationFull | None = None) -> None:
        self.tokens = tokens
        self.client_info = client_info

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Browser:
    """Follows an authorization URL like a browser would, stopping at the redirect."""

    def __init__(self) -> None:
        self.visits: list[str] = []
        self._query: dict[str, list[str]] = {}

    async def open(self, url: str) -> None:
        self.visits.append(url)
        async with aiohttp.ClientSession() as http, \
                http.get(url, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            location = response.headers["Location"]
        assert location.startswith(REDIRECT)
        self._query = parse_qs(urlsplit(location).query)

    async def callback(self) -> AuthorizationCodeResult:
        query = {key: values[0] for key, values in self._query.items()}
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"),
                                       iss=query.get("iss"))


def provider(protected: Protected, browser: Browser, storage: Storage | None = None,
             transport: str = "streamable_http") -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="sdk-e2e", redirect_uris=[REDIRECT],  # type: ignore[list-item]
        grant_types=["authorization_code", "refresh_token"], response_types=["code"],
        token_endpoint_auth_method="none")
    return OAuthClientProvider(protected.url(transport), metadata, storage or Storage(),
                               redirect_handler=browser.open, callback_handler=browser.callback)


def _texts(result: Any) -> list[str]:
    return [c.text for c in result.content]


@pytest.fixture
async def protected(start_protected: StartProtected) -> Protected:
    return await start_protected("--auth-scopes", "mcp:read")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_sdk_logs_in_and_calls_over_streamable_http(protected: Protected,
                                                          mode: str) -> None:
    browser = Browser()
    auth = provider(protected, browser)
    async with httpx2.AsyncClient(auth=auth) as http, \
            Client(streamable_http_client(protected.url("streamable_http"), http_client=http),
                   mode=mode) as client:  # type: ignore[arg-type]
        echo = await client.call_tool("echo", {"message": "authorized"})
        assert _texts(echo) == ["Echo: authorized"]
    assert len(browser.visits) == 1
    query = parse_qs(urlsplit(browser.visits[0]).query)
    assert query["resource"] == [protected.resource]
    assert query["code_challenge_method"] == ["S256"]
    assert "mcp:read" in query["scope"][0].split()
    events = protected.auth.events
    assert [e["endpoint"] for e in events if e["endpoint"] in ("register", "authorize")] == [
        "register", "authorize"]
    assert protected.auth.token_requests("authorization_code")[0]["resource"] == [
        protected.resource]


async def test_sdk_logs_in_and_calls_over_sse(protected: Protected) -> None:
    browser = Browser()
    auth = provider(protected, browser, transport="sse")
    async with sse_client(protected.url("sse"), auth=auth) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        echo = await session.call_tool("echo", {"message": "over sse"})
        assert _texts(echo) == ["Echo: over sse"]
    assert len(browser.visits) == 1


async def test_sdk_refreshes_an_expired_token(protected: Protected) -> None:
    auth_server: OAuthServer = protected.auth
    auth_server.access_token_ttl = 2
    browser = Browser()
    auth = provider(protected, browser)
    async with httpx2.AsyncClient(auth=auth) as http, \
            Client(streamable_http_client(protected.url("streamable_http"), http_client=http),
                   mode="legacy") as client:  # type: ignore[arg-type]
        assert _texts(await client.call_tool("echo", {"message": "1"})) == ["Echo: 1"]
        await asyncio.sleep(2.5)
        assert _texts(await client.call_tool("echo", {"message": "2"})) == ["Echo: 2"]
    assert auth_server.token_requests("refresh_token"), auth_server.events
    assert len(browser.visits) == 1  # refreshed, not authorized again


async def test_sdk_steps_up_on_insufficient_scope(protected: Protected) -> None:
    auth_server: OAuthServer = protected.auth
    registered = auth_server.register_client(redirect_uris=[REDIRECT],
                                             token_endpoint_auth_method="none")
    weak = protected.token("mcp:write")
    storage = Storage(
        tokens=OAuthToken(access_token=weak, expires_in=3600, scope="mcp:write"),
        client_info=OAuthClientInformationFull(
            client_id=registered.client_id, redirect_uris=[REDIRECT],  # type: ignore[list-item]
            token_endpoint_auth_method="none", issuer=auth_server.issuer))
    browser = Browser()
    auth = provider(protected, browser, storage)
    async with httpx2.AsyncClient(auth=auth) as http, \
            Client(streamable_http_client(protected.url("streamable_http"), http_client=http),
                   mode="legacy") as client:  # type: ignore[arg-type]
        assert _texts(await client.call_tool("echo", {"message": "up"})) == ["Echo: up"]
    assert len(browser.visits) == 1
    asked = parse_qs(urlsplit(browser.visits[0]).query)["scope"][0].split()
    assert {"mcp:read", "mcp:write"} <= set(asked)
    assert storage.tokens is not None and storage.tokens.access_token != weak
