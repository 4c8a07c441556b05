"""``mcp-client login`` / ``logout`` as a person runs them: a real client process, a real
OAuth authorization server (tests/oauth), our server as the resource server, and the test as
the browser (it follows the printed authorization URL and delivers the redirect to the
client's loopback listener)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.client.test_shell import ROOT
from tests.conftest import StartServer
from tests.oauth.authorization_server import OAuthServer

CLIENT = [sys.executable, str(ROOT / "mcp_client.py")]
WAIT = 30.0


class Run:
    """One client process; ``lines`` is its stderr as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr: list[str] = []

    async def url(self) -> str:
        """The authorization URL the client printed (the line after "To authorize")."""
        assert self.process.stderr is not None
        async with asyncio.timeout(WAIT):
            while True:
                line = (await self.process.stderr.readline()).decode()
                assert line, "the client ended without printing a URL: " + "".join(self.stderr)
                self.stderr.append(line)
                if line.startswith("  http"):
                    return line.strip()

    async def finish(self) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(self.process.communicate(), WAIT)
        return (self.process.returncode or 0, out.decode(),
                "".join(self.stderr) + err.decode())


async def _client(*args: str, env: dict[str, str] | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        *CLIENT, *args, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    return Run(process)


async def _browse(url: str) -> str:
    """What a browser does: the authorization server approves and redirects; the redirect
    goes to the client's listener, whose page is returned. The redirect's query (with the
    code) is returned too, to prove it never shows up in the client's output."""
    async with aiohttp.ClientSession() as http:
        async with http.get(url, allow_redirects=False) as approved:
            assert approved.status in (302, 303), await approved.text()
            location = approved.headers["Location"]
        async with http.get(location) as page:
            assert page.status == 200
            assert "go back to the terminal" in await page.text()
    return location


@pytest.fixture
async def protected(start_mcp_server: StartServer, oauth_server: OAuthServer) -> str:
    """Our server, accepting only tokens of the test authorization server; its MCP URL."""
    server = await start_mcp_server(name="protected", auth_issuer=oauth_server.issuer)
    return f"http://127.0.0.1:{server.port}/mcp"


def _store(path: Path) -> dict[str, Any]:
    grants = json.loads(path.read_text())["grants"]
    assert isinstance(grants, dict)
    return grants


async def test_login_then_logout(protected: str, oauth_server: OAuthServer,
                                 tmp_path: Path) -> None:
    store = tmp_path / "state" / "tokens.json"
    run = await _client("login", protected, "--token-store", str(store),
                        "--oauth-browser", "never", "-vv")
    location = await _browse(await run.url())
    code, out, err = await run.finish()
    assert code == 0, err
    assert out.startswith(f"Logged in to {protected} at {oauth_server.issuer}: scopes ")
    grant = _store(store)[protected]
    assert grant["issuer"] == oauth_server.issuer and grant["client_id"]
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
    # Nothing secret in anything the client printed, even with -vv.
    secrets = [grant["access_token"], grant["refresh_token"],
               location.split("code=")[1].split("&")[0]]
    for secret in secrets:
        assert secret not in out and secret not in err

    # The kept token is what a later run uses: no browser, straight to the tools.
    run = await _client(protected, "--token-store", str(store), "--oauth-browser", "never",
                        "--mode", "test")
    code, out, err = await run.finish()
    assert code == 0, out + err
    assert "To authorize" not in err

    kept = _store(store)[protected]
    run = await _client("logout", protected, "--token-store", str(store))
    code, out, _ = await run.finish()
    assert (code, out) == (0, f"Logged out of {protected}: its token was removed and revoked "
                              "at its authorization server\n")
    assert protected not in _store(store)
    # Revoked at the authorization server (RFC 7009): the refresh token is dead there too.
    assert [e for e in oauth_server.events if e["endpoint"] == "revoke"]
    assert oauth_server.by_refresh_token[kept["refresh_token"]].revoked
    run = await _client("logout", protected, "--token-store", str(store))
    code, out, _ = await run.finish()
    assert out == f"No token was stored for {protected}; nothing removed\n"


async def test_login_by_config_name_with_a_pre_registered_client(
        protected: str, oauth_server: OAuthServer, tmp_path: Path) -> None:
    client = oauth_server.register_client(redirect_uris=["http://127.0.0.1/callback"],
                                          token_endpoint_auth_method="client_secret_post",
                                          scope="mcp:read mcp:write")
    config = tmp_path / "servers.json"
    config.write_text(json.dumps({"mcpServers": {"api": {
        "url": protected,
        "oauth": {"clientId": client.client_id, "client_secret": client.client_secret,
                  "tokenEndpointAuthMethod": "client_secret_post", "scopes": ["mcp:read"]}}}}))
    store = tmp_path / "tokens.json"
    # Options after the server, as people type them.
    run = await _client("login", "api", "--config", str(config), "--oauth-browser", "never",
                        env={"MCP_CLIENT_TOKEN_STORE": str(store)})
    await _browse(await run.url())
    code, out, err = await run.finish()
    assert code == 0, err
    assert out.startswith(f"Logged in to api ({protected}) at {oauth_server.issuer}: "
                          "scopes mcp:read")
    grant = _store(store)[protected]
    assert grant["client_id"] == client.client_id
    assert [event["client_id"] for event in oauth_server.token_requests()] == [
        client.client_id]
    assert client.client_secret not in out + err


async def test_logins_that_cannot_happen_say_why_in_one_line(tmp_path: Path) -> None:
    store = str(tmp_path / "tokens.json")
    run = await _client("login", "http://127.0.0.1:9/mcp", "--token-store", store)
    code, _, err = await run.finish()
    assert code == 1 and err.startswith("Error: ") and err.count("\n") == 1
    run = await _client("login", "s=stdio:mcp-server --stdio", "--token-store", store)
    code, _, err = await run.finish()
    assert code == 1 and "is a stdio server" in err
    run = await _client("login", "http://127.0.0.1:9/mcp", "--token-store", store,
                        "--header", "Authorization: Bearer static-token")
    code, _, err = await run.finish()
    assert code == 1 and "static Authorization header" in err
    assert "static-token" not in err
    run = await _client("login", "a", "b", "--token-store", store)
    code, _, err = await run.finish()
    assert code == 2 and "usage: mcp-client login SERVER" in err


async def test_an_unsafe_store_is_refused_in_one_line(protected: str, tmp_path: Path) -> None:
    store = tmp_path / "tokens.json"
    store.write_text('{"version": 1, "grants": {}}')
    os.chmod(store, 0o644)
    run = await _client("login", protected, "--token-store", str(store),
                        "--oauth-browser", "never")
    code, _, err = await run.finish()
    assert code == 1
    assert err == (f"Error: token store {store} is readable or writable by others "
                   f"(mode 644); chmod 600 {store}\n")


async def test_the_first_401_sends_the_person_to_the_browser(
        protected: str, oauth_server: OAuthServer, tmp_path: Path) -> None:
    store = tmp_path / "tokens.json"
    run = await _client(f"api={protected}", "--mode", "test", "--token-store", str(store),
                        "--oauth-browser", "never", "--timeout", "20")
    await _browse(await run.url())
    code, out, err = await run.finish()
    assert code == 0, out + err
    assert "Connected to api" in err
    assert protected in _store(store)  # the next run starts authorized
