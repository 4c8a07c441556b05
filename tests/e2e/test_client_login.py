"""Our client logs in without a browser and calls tools on our OAuth-protected server.

``mcp-client login URL --oauth-browser never`` (a real subprocess) prints the authorization
URL; the test is the browser: it GETs the URL from the test authorization server, which
approves at once and redirects to the client's loopback listener, and the test delivers that
redirect. The grant lands in the token store; a later client, given the same store, calls tools
over WebSocket, SSE and Streamable HTTP without authorizing again. A WebSocket endpoint's
resource is its ``http://`` form: the upgrade is an HTTP request, and the metadata lives there.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from mcp_multi.client.auth.discovery import http_form
from mcp_multi.client.auth.store import FileTokenStore
from mcp_multi.client.login import AuthChoices
from mcp_multi.client.multi import MultiServerMCPClient

from .conftest import Protected, StartProtected

TRANSPORTS = ("websocket", "sse", "streamable_http")

MCP_CLIENT = str(Path(sys.executable).with_name("mcp-client"))


async def login(url: str, store: Path, authorize_at: str) -> str:
    """Run ``mcp-client login``, follow its printed URL, deliver the redirect; its output."""
    process = await asyncio.create_subprocess_exec(
        MCP_CLIENT, "login", url, "--token-store", str(store), "--oauth-browser", "never",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    try:
        seen: list[str] = []
        async with asyncio.timeout(20):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "".join(seen)
                seen.append(line)
                if authorize_at in line:
                    break
        async with aiohttp.ClientSession() as http:
            async with http.get(line.strip(), allow_redirects=False) as response:
                assert response.status == 302
                location = response.headers["Location"]
            assert location.startswith("http://127.0.0.1:")
            async with http.get(location) as response:
                assert response.status == 200
        out, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    return "".join(seen) + err.decode() + out.decode()


async def test_login_then_call_tools_over_every_transport(start_protected: StartProtected,
                                                          tmp_path: Path) -> None:
    protected: Protected = await start_protected("--auth-scopes", "mcp:read")
    store = tmp_path / "state" / "tokens.json"
    authorize_at = protected.auth.url("authorize")
    for transport in TRANSPORTS:
        output = await login(protected.url(transport), store, authorize_at)
        for issued in protected.auth.by_access_token:
            assert issued not in output  # never a token on the terminal
    authorizations = [e for e in protected.auth.events if e["endpoint"] == "authorize"]
    assert len(authorizations) == len(TRANSPORTS)
    # Each endpoint is its own resource (path-aware protected resource metadata).
    assert [e["resource"] for e in authorizations] == [[http_form(protected.url(t))]
                                                       for t in TRANSPORTS]
    assert store.stat().st_mode & 0o077 == 0

    lines: list[str] = []
    choices = AuthChoices(store=FileTokenStore(store), settings=None, headers={},
                          browser="never", write=lines.append)
    async with MultiServerMCPClient(auth_for=choices.auth_for) as client:
        for transport in TRANSPORTS:
            await client.add(transport, protected.url(transport))
            result = await client.call(transport, "echo", {"message": transport})
            assert result["content"][0]["text"] == f"Echo: {transport}"
    assert not lines  # nobody was asked to authorize again
    assert len([e for e in protected.auth.events if e["endpoint"] == "authorize"]) == len(
        TRANSPORTS)
