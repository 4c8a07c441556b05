"""The pure parts of the client's OAuth: the challenge parser, the discovery URLs, the
resource check, the redirect checks (state, RFC 9207 iss), the auth method choice, and
that grants never show their tokens."""

from __future__ import annotations

import re
import time

import pytest

from mcp_multi.client.auth.agent import AuthorizationFailed, redirect_query
from mcp_multi.client.auth.challenge import bearer_challenge, parse_www_authenticate
from mcp_multi.client.auth.discovery import (
    AuthServerMetadata,
    metadata_urls,
    prm_urls,
    resource_matches,
)
from mcp_multi.client.auth.flow import PendingAuthorization, code_challenge
from mcp_multi.client.auth.oauth import OAuthSettings, StoredGrant
from mcp_multi.client.auth.registration import ClientRegistration, choose_auth_method

ISSUER = "https://as.example.com/tenant"


def test_the_challenge_parser_reads_what_servers_send() -> None:
    header = ('Basic realm="x", Bearer error="insufficient_scope" , scope = "a b",'
              ' resource_metadata="https://mcp.example/.well-known/oauth-protected-resource",,'
              ' error_description="say \\"hi\\""')
    challenges = parse_www_authenticate(header)
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    bearer = bearer_challenge(header)
    assert bearer is not None
    assert bearer.scopes == ("a", "b")
    assert bearer.error == "insufficient_scope"
    assert bearer.error_description == 'say "hi"'
    assert bearer.resource_metadata == (
        "https://mcp.example/.well-known/oauth-protected-resource")


@pytest.mark.parametrize("header", ["", ",,,", '"unterminated', "=x", "Bearer =", "\x00\x1b[2J",
                                    "Negotiate abc==", "Bearer " + "a=b," * 10_000])
def test_the_challenge_parser_never_raises(header: str) -> None:
    parse_www_authenticate(header)
    challenge = bearer_challenge(header)
    assert challenge is None or len(challenge.scope or "") < 10_000


def test_token68_and_a_following_challenge() -> None:
    challenges = parse_www_authenticate("Negotiate abc==, Bearer scope=\"s\"")
    assert challenges[0].token68 == "abc=="
    assert challenges[1].params == {"scope": "s"}


def test_protected_resource_metadata_urls_in_the_spec_order() -> None:
    assert prm_urls("https://h.example/public/mcp", None) == [
        "https://h.example/.well-known/oauth-protected-resource/public/mcp",
        "https://h.example/.well-known/oauth-protected-resource"]
    assert prm_urls("https://h.example/", None) == [
        "https://h.example/.well-known/oauth-protected-resource"]
    assert prm_urls("https://h.example/mcp", "https://h.example/custom.json") == [
        "https://h.example/custom.json"]


def test_authorization_server_metadata_urls_in_the_spec_order() -> None:
    assert metadata_urls("https://a.example/tenant1") == [
        "https://a.example/.well-known/oauth-authorization-server/tenant1",
        "https://a.example/.well-known/openid-configuration/tenant1",
        "https://a.example/tenant1/.well-known/openid-configuration"]
    assert metadata_urls("https://a.example") == [
        "https://a.example/.well-known/oauth-authorization-server",
        "https://a.example/.well-known/openid-configuration"]


def test_resource_must_cover_the_server() -> None:
    assert resource_matches("https://h.example/mcp", "https://h.example/mcp")
    assert resource_matches("https://h.example/mcp", "https://H.example")
    assert resource_matches("https://h.example/a/mcp", "https://h.example/a/")
    assert not resource_matches("https://h.example/mcp", "https://evil.example/mcp")
    assert not resource_matches("https://h.example/mcp", "https://h.example/mcpx")
    assert not resource_matches("https://h.example/mcp", "http://h.example/mcp")
    assert not resource_matches("https://h.example:8443/mcp", "https://h.example/mcp")


def test_metadata_for_another_issuer_is_refused() -> None:
    doc = {"issuer": ISSUER + "/", "authorization_endpoint": f"{ISSUER}/authorize",
           "token_endpoint": f"{ISSUER}/token"}
    with pytest.raises(AuthorizationFailed, match=re.escape("not 'https://as.example.com/tenant'")):
        AuthServerMetadata.from_document(doc, ISSUER)


def _pending(iss_supported: bool) -> PendingAuthorization:
    metadata = AuthServerMetadata(
        issuer=ISSUER, authorization_endpoint=f"{ISSUER}/authorize?tenant=1",
        token_endpoint=f"{ISSUER}/token", code_challenge_methods_supported=("S256",),
        iss_parameter_supported=iss_supported)
    registration = ClientRegistration("cid", None, "none", ISSUER)
    return PendingAuthorization(metadata, registration, "http://127.0.0.1:5/cb",
                                "https://mcp.example/mcp", "a b")


def test_the_authorization_url_carries_pkce_state_resource_and_scope() -> None:
    pending = _pending(True)
    query = redirect_query(pending.url())
    assert query["tenant"] == "1"  # the endpoint's own query is kept
    assert query["code_challenge"] == code_challenge(pending.verifier)
    assert query["code_challenge_method"] == "S256"
    assert query["state"] == pending.state
    assert query["resource"] == "https://mcp.example/mcp"
    assert query["scope"] == "a b"
    assert 43 <= len(pending.verifier) <= 128


@pytest.mark.parametrize(("supported", "iss", "accepted"), [
    (True, ISSUER, True),
    (True, None, False),
    (False, ISSUER, True),
    (False, None, True),
    (True, ISSUER + "/", False),  # no normalisation
    (False, "https://evil.example", False),
    (True, ISSUER.upper(), False),
])
def test_rfc_9207_iss_table(supported: bool, iss: str | None, accepted: bool) -> None:
    pending = _pending(supported)
    query = {"code": "c", "state": pending.state}
    if iss is not None:
        query["iss"] = iss
    if accepted:
        assert pending.check(query) == "c"
    else:
        with pytest.raises(AuthorizationFailed, match=r"iss|issuer"):
            pending.check(query)


def test_an_error_of_the_wrong_issuer_is_not_shown() -> None:
    pending = _pending(True)
    with pytest.raises(AuthorizationFailed) as caught:
        pending.check({"state": pending.state, "iss": "https://evil.example",
                       "error": "access_denied", "error_description": "CLICK-HERE"})
    assert "CLICK-HERE" not in str(caught.value)


def test_a_foreign_state_is_refused_first() -> None:
    pending = _pending(False)
    with pytest.raises(AuthorizationFailed, match="state"):
        pending.check({"code": "c", "state": "other", "error": "x"})


def test_a_refusal_is_one_escaped_line() -> None:
    pending = _pending(False)
    with pytest.raises(AuthorizationFailed) as caught:
        pending.check({"state": pending.state, "error": "denied\x1b[31m\nnext"})
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)


def test_pkce_absent_from_metadata_is_refused() -> None:
    pending = _pending(False)
    pending.metadata = AuthServerMetadata(
        issuer=ISSUER, authorization_endpoint=f"{ISSUER}/a", token_endpoint=f"{ISSUER}/t")
    with pytest.raises(AuthorizationFailed, match="PKCE"):
        pending.url()


def test_auth_method_choice() -> None:
    assert choose_auth_method(("none", "client_secret_post"), True) == "client_secret_post"
    assert choose_auth_method(("client_secret_basic", "none"), True) == "client_secret_basic"
    assert choose_auth_method(("client_secret_basic", "none"), False) == "none"
    assert choose_auth_method(None, True) == "client_secret_basic"
    with pytest.raises(AuthorizationFailed):
        choose_auth_method(None, False, "client_secret_post")


def test_grants_and_settings_never_show_secrets() -> None:
    grant = StoredGrant(access_token="AT-secret", refresh_token="RT-secret",
                        client_secret="CS-secret", client_id="cid")
    settings = OAuthSettings(client_id="cid", client_secret="CS-secret")
    for text in (repr(grant), str(grant), repr(settings)):
        assert "secret" not in text.replace("client_secret", "")
    again = StoredGrant.from_dict({**grant.to_dict(), "unknown": 1, "expires_at": "soon"})
    assert again.access_token == "AT-secret" and again.expires_at is None


def test_an_https_issuer_cannot_downgrade_its_endpoints() -> None:
    doc = {"issuer": ISSUER, "authorization_endpoint": "http://as.example.com/authorize",
           "token_endpoint": f"{ISSUER}/token"}
    with pytest.raises(AuthorizationFailed, match="lacks the authorization"):
        AuthServerMetadata.from_document(doc, ISSUER)
    plain = "http://127.0.0.1:9"
    metadata = AuthServerMetadata.from_document(
        {"issuer": plain, "authorization_endpoint": f"{plain}/a", "token_endpoint": f"{plain}/t",
         "registration_endpoint": "javascript:alert(1)"}, plain)
    assert metadata.registration_endpoint is None


@pytest.mark.parametrize(("lived", "left", "due"), [
    (3600.0, 3600.0, False),   # fresh
    (7200.0, 20.0, True),      # a long-lived token in its last 30 s
    (10.0, 10.0, False),       # a 20 s token halfway: renewing now would renew every time
    (17.0, 3.0, True),         # ... in the last quarter of its life
    (None, 20.0, True),        # a grant of an older store, with no issue time: 30 s
    (None, None, False),       # no expiry said
])
def test_when_a_token_is_renewed_before_use(lived: float | None, left: float | None,
                                            due: bool) -> None:
    now = time.time()
    grant = StoredGrant(access_token="t", expires_at=None if left is None else now + left,
                        issued_at=None if lived is None else now - lived)
    assert grant.due() is due
    assert StoredGrant.from_dict(grant.to_dict()).due() is due  # kept by a file store
