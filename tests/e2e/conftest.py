"""End to end: our server as an OAuth resource server of the test authorization server.

``start_protected(*argv)`` starts our server on 127.0.0.1:0 configured by its command-line
flags (``--auth-issuer`` is added, pointing at ``oauth_server``; pass ``--policy FILE`` and the
others as the CLI takes them), and answers a :class:`Protected`: the server, the authorization
server, the resource URL the server advertises (read from its 401 challenge and its protected
resource metadata, as a client would), each transport's URL, and ``token(...)`` to mint an
access token for that resource.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mcp_multi.server.app import RunningServer, start_server
from mcp_multi.server.cli import build_parser, settings_from_args

from ..oauth.authorization_server import OAuthServer

__all__ = ["Protected", "StartProtected", "challenge_params", "start_protected"]

TRANSPORTS = ("websocket", "sse", "streamable_http")
PATHS = {"websocket": "/ws", "sse": "/sse", "streamable_http": "/mcp"}


def challenge_params(header: str) -> dict[str, str]:
    """The auth-params of a ``Bearer`` challenge (enough for the servers under test)."""
    assert header.lower().startswith("bearer"), header
    return {key.lower(): value for key, value in re.findall(r'(\w+)="([^"]*)"', header)}


@dataclass
class Protected:
    server: RunningServer
    auth: OAuthServer
    resource: str
    metadata: dict[str, Any]

    def url(self, transport: str) -> str:
        base = self.server.base_url
        if transport == "websocket":
            base = "ws" + base.removeprefix("http")
        return base + PATHS[transport]

    def token(self, scope: str = "", *, subject: str | None = None,
              ttl: int | None = None) -> str:
        return self.auth.access_token(resource=self.resource, scope=scope, subject=subject,
                                      ttl=ttl)

    def bearer(self, scope: str = "", **kwargs: Any) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token(scope, **kwargs)}


StartProtected = Callable[..., Awaitable[Protected]]


async def discover_resource(base_url: str) -> tuple[str, dict[str, Any]]:
    """What a client learns from a 401 on ``/mcp``: the protected resource metadata."""
    async with aiohttp.ClientSession() as http:
        async with http.post(base_url + "/mcp", json={
                "jsonrpc": "2.0", "id": 1, "method": "ping"}) as response:
            assert response.status == 401, await response.text()
            params = challenge_params(response.headers["WWW-Authenticate"])
        async with http.get(params["resource_metadata"]) as response:
            assert response.status == 200
            metadata = await response.json()
    return str(metadata["resource"]), dict(metadata)


@pytest.fixture
async def start_protected(tmp_path: Path, oauth_server: OAuthServer,
                          ) -> AsyncIterator[StartProtected]:
    running: list[RunningServer] = []

    async def start(*argv: str) -> Protected:
        args = build_parser().parse_args(
            ["--host", "127.0.0.1", "--port", "0", "--root", str(tmp_path),
             "--auth-issuer", oauth_server.issuer, *argv])
        server = await start_server(settings_from_args(args))
        running.append(server)
        resource, metadata = await discover_resource(server.base_url)
        return Protected(server, oauth_server, resource, metadata)

    yield start
    for server in running:
        await server.close()


def write_policy(directory: Path, text: str) -> Path:
    path = directory / "policy.toml"
    path.write_text(text)
    return path
