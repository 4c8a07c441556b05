"""Secrets masked wherever the client shows text: the helpers, and ``--trace`` for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_multi.client.auth.oauth import MemoryTokenStore, OAuthAuth
from mcp_multi.client.auth.redact import redact_headers, redact_json, redact_text
from mcp_multi.client.login import AuthChoices
from mcp_multi.client.targets import ServerSpec
from tests.client.test_shell import run_client
from tests.conftest import StartServer

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(("shown", "masked"), [
    ('{"access_token": "AT1", "token_type": "Bearer", "expires_in": 60}',
     '{"access_token": "***", "token_type": "Bearer", "expires_in": 60}'),
    ('{"refresh_token":"R\\"T","id_token":"I"}', '{"refresh_token":"***","id_token":"***"}'),
    ("GET /callback?code=C0DE&state=st&iss=https://as", "GET /callback?code=***&state=st&iss=https://as"),
    ("grant_type=authorization_code&code=C&code_verifier=V&client_secret=S&redirect_uri=u",
     "grant_type=authorization_code&code=***&code_verifier=***&client_secret=***&redirect_uri=u"),
    ("client_assertion=A.B.C&assertion=X", "client_assertion=***&assertion=***"),
    ("Authorization: Bearer abc\nDPoP: proof\nAccept: */*",
     "Authorization: Bearer ***\nDPoP: ***\nAccept: */*"),
    ("{'Authorization': 'Basic dXNlcjpwYXNz'}", "{'Authorization': '***'}"),
    (f"refused token {JWT} twice", "refused token *** twice"),
    ("sent Bearer abcdefghijkl", "sent Bearer ***"),
    ('{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}',
     '{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}'),
    ("nothing here", "nothing here"),
])
def test_redact_text(shown: str, masked: str) -> None:
    assert redact_text(shown) == masked


def test_redact_headers_and_json() -> None:
    assert redact_headers({"Authorization": "Bearer t", "DPoP": "p", "Accept": "x"}) == {
        "Authorization": "Bearer ***", "DPoP": "***", "Accept": "x"}
    assert redact_json({"a": [{"code": "c", "client_secret": "s", "n": f"x {JWT}"}],
                        "code": -32602}) == {
        "a": [{"code": "***", "client_secret": "***", "n": "x ***"}], "code": -32602}


async def test_trace_masks_what_frames_carry(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    message = f"Bearer {JWT} and access_token=plain-secret"
    code, out, err = await run_client(
        [f"s1=localhost:{server.port}", "--trace"],
        f'call s1 echo {{"message": "{message}"}}\n')
    assert code == 0
    assert JWT in out  # a result is the user's output, shown as it is
    assert "-> " in err and "<- " in err
    assert JWT not in err and "plain-secret" not in err
    assert '"arguments":{"message":"Bearer *** and access_token=***"}' in err


def test_which_servers_get_oauth(tmp_path: Path) -> None:
    lines: list[str] = []
    choices = AuthChoices(store=MemoryTokenStore(), settings=None, headers={},
                          browser="never", write=lines.append)
    http = ServerSpec("api", "http", "http://127.0.0.1:9/mcp")
    assert isinstance(choices.auth_for(http), OAuthAuth)
    assert choices.auth_for(ServerSpec("s", "stdio", "stdio:x")) is None
    assert choices.auth_for(ServerSpec("api", "http", "http://127.0.0.1:9/mcp",
                                       headers={"Authorization": "Bearer t"})) is None
    static = AuthChoices(store=MemoryTokenStore(), settings=None,
                         headers={"authorization": "Bearer t"}, browser="never",
                         write=lines.append)
    assert static.auth_for(http) is None


def test_an_unsafe_store_leaves_tokens_in_memory_and_says_so(tmp_path: Path) -> None:
    from mcp_multi.client.auth.store import FileTokenStore

    path = tmp_path / "tokens.json"
    path.write_text('{"version": 1, "grants": {}}')
    path.chmod(0o644)
    lines: list[str] = []
    choices = AuthChoices(store=FileTokenStore(path), settings=None, headers={},
                          browser="never", write=lines.append)
    auth = choices.auth_for(ServerSpec("api", "http", "http://127.0.0.1:9/mcp"))
    assert isinstance(auth, OAuthAuth) and isinstance(auth.store, MemoryTokenStore)
    assert lines == [f"Warning: token store {path} is readable or writable by others "
                     f"(mode 644); chmod 600 {path}; tokens for api (http://127.0.0.1:9/mcp) "
                     "are kept in memory only"]
