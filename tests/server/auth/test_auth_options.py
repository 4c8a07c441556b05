"""The resource server's command-line options: what is refused at start-up, and a real
``mcp-server --auth-issuer`` process answering with its challenge."""

from __future__ import annotations

import aiohttp
import pytest

from mcp_multi.server.cli import build_parser, settings_from_args
from mcp_multi.server.settings import ServerSettings
from tests.oauth.authorization_server import OAuthServer

from ..test_cli import running


def _settings(*argv: str) -> ServerSettings:
    return settings_from_args(build_parser().parse_args(list(argv)))


def test_options_become_settings() -> None:
    s = _settings("--auth-issuer", "https://as.example/tenant", "--auth-scopes", "a b",
                  "--auth-audience", "https://mcp.example/mcp", "--metrics-token", "m",
                  "--auth-introspection-client", "rs:se:cret", "--auth-timeout", "2")
    assert (s.auth_issuer, s.auth_audience, s.auth_scopes) == (
        "https://as.example/tenant", "https://mcp.example/mcp", ("a", "b"))
    assert (s.auth_introspection_client, s.metrics_token, s.auth_fetch_timeout) == (
        ("rs", "se:cret"), "m", 2.0)
    assert "se:cret" not in repr(s)  # secrets stay out of logs that print settings


@pytest.mark.parametrize(("argv", "says"), [
    (["--auth-issuer", "http://as.example"], "must use https"),
    (["--auth-issuer", "ftp://as.example"], "must be an http(s) URL"),
    (["--auth-issuer", "https://as.example/?x=1"], "no query"),
    (["--auth-issuer", "https://as.example", "--auth-audience", "http://mcp.example"],
     "--auth-audience http://mcp.example must use https"),
    (["--auth-issuer", "https://as.example", "--host", "0.0.0.0"], "needs --auth-audience"),
    (["--auth-audience", "https://mcp.example"], "--auth-audience needs --auth-issuer"),
    (["--auth-scopes", "a"], "--auth-scopes needs --auth-issuer"),
    (["--auth-issuer", "https://as.example", "--auth-scopes", 'a"b'], "is not a scope"),
    (["--auth-issuer", "https://as.example", "--auth-introspection-client", "id"],
     "CLIENT_ID:CLIENT_SECRET, or CLIENT_ID with the secret in "
     "$MCP_SERVER_INTROSPECTION_SECRET"),
    (["--metrics-token", ""], "must not be empty"),
    (["--auth-issuer", "https://as.example", "--auth-timeout", "0"], "positive"),
])
def test_refused_at_start_up(argv: list[str], says: str) -> None:
    with pytest.raises(ValueError, match=None) as refused:
        _settings(*argv)
    assert says in str(refused.value)


def test_introspection_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_SERVER_INTROSPECTION_SECRET", "se:cret")
    s = _settings("--auth-issuer", "https://as.example", "--auth-introspection-client", "rs")
    assert s.auth_introspection_client == ("rs", "se:cret")


def test_http_issuer_allowed_on_loopback() -> None:
    assert _settings("--auth-issuer", "http://127.0.0.1:9000").auth_issuer == \
        "http://127.0.0.1:9000"
    assert _settings("--auth-issuer", "http://localhost:9000/t").auth_issuer


async def test_server_process_with_an_issuer(oauth_server: OAuthServer) -> None:
    async with running("--auth-issuer", oauth_server.issuer, "--auth-scopes",
                       "mcp:read") as base, aiohttp.ClientSession() as http:
        async with http.post(base + "/mcp", data=b"{}", headers={
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json"}) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"] == (
                f'Bearer scope="mcp:read", resource_metadata="{base}/.well-known/'
                'oauth-protected-resource/mcp"')
        async with http.get(base + "/.well-known/oauth-protected-resource/mcp") as resp:
            assert (await resp.json())["resource"] == base + "/mcp"
