"""Machine-to-machine grants against a real authorization server on loopback: client
credentials with a secret or a signed assertion, workload JWT-bearer, and the enterprise
token exchange followed by the ID-JAG grant."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from mcp_multi.client.auth.agent import AuthorizationFailed
from mcp_multi.client.auth.client_auth import (
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJWT,
    PublicClient,
    choose_auth_method,
    client_authentication,
)
from mcp_multi.client.auth.machine import (
    GRANT_CLIENT_CREDENTIALS,
    GRANT_ENTERPRISE,
    GRANT_JWT_BEARER,
    MachineGrant,
    TokenRequestError,
    client_credentials_form,
    extension_settings,
    request_token,
)
from mcp_multi.client.auth.oauth import OAuthAuth, OAuthSettings

from .m2m_servers import (
    CLIENT_ID,
    CLIENT_SECRET,
    IDP_CLIENT_ID,
    AuthServer,
    auth_server,
    jose_claims,
    jose_header,
    send,
)

__all__ = ["auth_server"]


def key_pem(server: AuthServer) -> str:
    return server.client_key.as_pem(private=True).decode()


async def obtain(server: AuthServer, grant: MachineGrant, scope: str | None = "mcp:read"):
    async with aiohttp.ClientSession() as session:
        return await grant.obtain(session, token_endpoint=server.token_endpoint,
                                  issuer=server.issuer, resource=server.resource, scope=scope)


async def test_client_credentials_with_a_secret_by_basic(auth_server: AuthServer) -> None:
    grant = MachineGrant(GRANT_CLIENT_CREDENTIALS, ClientSecretBasic(CLIENT_ID, CLIENT_SECRET))
    token = await obtain(auth_server, grant)
    assert token.token_type == "Bearer"
    assert token.expires_at is not None and 590 < token.expires_at - time.time() <= 600
    assert jose_claims(token.access_token)["sub"] == CLIENT_ID
    [sent] = auth_server.requests
    assert sent.form == {"grant_type": "client_credentials", "resource": auth_server.resource,
                         "scope": "mcp:read"}
    assert sent.headers["Authorization"].startswith("Basic ")


async def test_client_credentials_with_private_key_jwt(auth_server: AuthServer) -> None:
    grant = MachineGrant(GRANT_CLIENT_CREDENTIALS,
                         PrivateKeyJWT.from_pem(CLIENT_ID, key_pem(auth_server), "ES256"))
    first = await obtain(auth_server, grant, scope=None)
    second = await obtain(auth_server, grant, scope=None)  # the server refuses a replayed jti
    assert first.access_token and second.access_token
    sent = auth_server.requests[0]
    assert "client_id" not in sent.form and "scope" not in sent.form
    assert "Authorization" not in sent.headers
    assertion = sent.form["client_assertion"]
    claims = jose_claims(assertion)
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == auth_server.issuer
    assert 0 < claims["exp"] - time.time() <= 300
    assert jose_header(assertion)["alg"] == "ES256"
    assert claims["jti"] != jose_claims(auth_server.requests[1].form["client_assertion"])["jti"]


async def test_a_refused_client_gets_the_servers_error_without_its_credentials(
        auth_server: AuthServer) -> None:
    other = auth_server.token_key.as_pem(private=True).decode()  # not the registered key
    grant = MachineGrant(GRANT_CLIENT_CREDENTIALS, PrivateKeyJWT.from_pem(CLIENT_ID, other))
    with pytest.raises(TokenRequestError) as caught:
        await obtain(auth_server, grant)
    assert caught.value.error == "invalid_client" and caught.value.status == 401
    assertion = auth_server.requests[0].form["client_assertion"]
    assert assertion not in str(caught.value) and "PRIVATE" not in str(caught.value)
    secret = MachineGrant(GRANT_CLIENT_CREDENTIALS, ClientSecretPost(CLIENT_ID, "wrong-secret"))
    with pytest.raises(TokenRequestError) as caught:
        await obtain(auth_server, secret)
    assert "wrong-secret" not in str(caught.value) and "invalid_client" in str(caught.value)


async def test_workload_jwt_bearer(auth_server: AuthServer, tmp_path: Path) -> None:
    grant = MachineGrant(GRANT_JWT_BEARER, PublicClient(),
                         assertion=auth_server.workload_jwt())
    token = await obtain(auth_server, grant)
    assert jose_claims(token.access_token)["sub"] == "workload-1"
    sent = auth_server.requests[0].form
    assert sent["grant_type"] == GRANT_JWT_BEARER and sent["resource"] == auth_server.resource
    assert "client_id" not in sent
    # From a file, read at each request: a rotated token is picked up.
    path = tmp_path / "token"
    path.write_text(auth_server.workload_jwt(expired=True) + "\n")
    from_file = MachineGrant(GRANT_JWT_BEARER, PublicClient(), assertion_file=str(path))
    with pytest.raises(TokenRequestError):
        await obtain(auth_server, from_file)
    path.write_text(auth_server.workload_jwt())
    assert (await obtain(auth_server, from_file)).access_token


async def test_a_refused_workload_jwt_is_reported_once(auth_server: AuthServer) -> None:
    """No retry and no other grant after invalid_grant (the WIF extension's rule)."""
    grant = MachineGrant(GRANT_JWT_BEARER, PublicClient(),
                         assertion=auth_server.workload_jwt(audience="https://wrong.example"))
    with pytest.raises(TokenRequestError) as caught:
        await obtain(auth_server, grant)
    assert caught.value.error == "invalid_grant"
    assert len(auth_server.requests) == 1


async def test_an_unreadable_workload_token_file(auth_server: AuthServer,
                                                 tmp_path: Path) -> None:
    grant = MachineGrant(GRANT_JWT_BEARER, PublicClient(),
                         assertion_file=str(tmp_path / "missing"))
    with pytest.raises(TokenRequestError, match="cannot be read"):
        await obtain(auth_server, grant)
    assert auth_server.requests == []


async def test_enterprise_managed_authorization(auth_server: AuthServer) -> None:
    grant = MachineGrant(GRANT_ENTERPRISE, ClientSecretBasic(CLIENT_ID, CLIENT_SECRET),
                         id_token=auth_server.id_token(),
                         idp_token_endpoint=auth_server.idp_token_endpoint,
                         idp_auth=PublicClient(IDP_CLIENT_ID))
    token = await obtain(auth_server, grant)
    assert jose_claims(token.access_token)["sub"] == "alice@example.com"
    exchange, bearer = auth_server.requests
    assert exchange.path == "/idp/token" and bearer.path == "/token"
    assert exchange.form["audience"] == auth_server.issuer
    assert exchange.form["resource"] == auth_server.resource
    assert "Authorization" not in exchange.headers
    assert bearer.form["grant_type"] == GRANT_JWT_BEARER
    assert jose_header(bearer.form["assertion"])["typ"] == "oauth-id-jag+jwt"
    assert bearer.headers["Authorization"].startswith("Basic ")


async def test_an_idp_refusal_stops_before_the_authorization_server(
        auth_server: AuthServer) -> None:
    grant = MachineGrant(GRANT_ENTERPRISE, ClientSecretBasic(CLIENT_ID, CLIENT_SECRET),
                         id_token=auth_server.id_token(),
                         idp_token_endpoint=auth_server.idp_token_endpoint,
                         idp_auth=PublicClient("another-client"))
    with pytest.raises(TokenRequestError, match="invalid_request"):
        await obtain(auth_server, grant)
    assert [r.path for r in auth_server.requests] == ["/idp/token"]


@pytest.mark.parametrize(("path", "problem"), [("/oversized", "too large"),
                                               ("/not-json", "not a JSON object")])
async def test_what_is_no_token_response(auth_server: AuthServer, path: str,
                                         problem: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TokenRequestError, match=problem):
            await request_token(session, auth_server.base + path,
                                client_credentials_form(resource=None, scope=None),
                                auth=PublicClient("c"), audience=auth_server.issuer)


async def test_an_unreachable_token_endpoint(unused_tcp_port: int) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TokenRequestError, match="could not be reached"):
            await request_token(session, f"http://127.0.0.1:{unused_tcp_port}/token",
                                client_credentials_form(resource=None, scope=None),
                                auth=PublicClient("c"), audience="x", timeout=5)


def test_the_auth_method_follows_the_servers_list_and_the_credentials() -> None:
    both = ["client_secret_basic", "private_key_jwt", "client_secret_post"]
    assert choose_auth_method(both, has_secret=True, has_key=True) == "private_key_jwt"
    assert choose_auth_method(both, has_secret=True, has_key=False) == "client_secret_basic"
    assert choose_auth_method(["client_secret_post"], has_secret=True,
                              has_key=False) == "client_secret_post"
    assert choose_auth_method(None, has_secret=True, has_key=False) == "client_secret_basic"
    assert choose_auth_method(["none"], has_secret=False, has_key=False) == "none"


def test_client_authentication_by_name(auth_server: AuthServer) -> None:
    assert isinstance(client_authentication("private_key_jwt", client_id="c",
                                            private_key_pem=key_pem(auth_server)),
                      PrivateKeyJWT)
    with pytest.raises(ValueError, match="needs a client secret"):
        client_authentication("client_secret_basic", client_id="c")
    with pytest.raises(ValueError, match="cannot sign RS256"):
        client_authentication("private_key_jwt", client_id="c",
                              private_key_pem=key_pem(auth_server), signing_alg="RS256")
    with pytest.raises(ValueError, match="not a PEM private key"):
        client_authentication("private_key_jwt", client_id="c", private_key_pem="nope")
    with pytest.raises(ValueError, match="unknown"):
        client_authentication("tls_client_auth", client_id="c")
    basic = ClientSecretBasic("c", "s3cret")
    assert "s3cret" not in repr(basic) and "s3cret" not in repr(
        MachineGrant(GRANT_CLIENT_CREDENTIALS, basic))


class NoPerson:
    """A UserAgent for machine grants: nobody is there to approve anything."""

    async def start(self) -> str:
        raise AssertionError("a machine grant needs no user agent")

    async def authorize(self, url: str) -> dict[str, str]:
        raise AssertionError("a machine grant needs no user agent")

    async def close(self) -> None:
        return None


async def test_oauth_auth_with_client_credentials(auth_server: AuthServer) -> None:
    settings = OAuthSettings(grant="client_credentials", client_id=CLIENT_ID,
                             private_key_pem=key_pem(auth_server), signing_alg="ES256")
    auth = OAuthAuth(auth_server.resource, settings, agent=NoPerson())
    async with aiohttp.ClientSession() as session:
        assert await send(auth, session, auth_server.resource) == 200
        assert await send(auth, session, auth_server.resource) == 200
    [token_request] = auth_server.requests  # the token is kept for the second request
    assert token_request.form["grant_type"] == "client_credentials"
    assert token_request.form["resource"] == auth_server.resource
    assert "client_assertion" in token_request.form
    assert auth.grant is not None and auth.grant.token_type == "Bearer"
    assert "eyJ" not in repr(auth.grant) and "PRIVATE" not in repr(settings)


async def test_oauth_auth_reports_a_refused_workload_jwt_once(auth_server: AuthServer) -> None:
    settings = OAuthSettings(grant="jwt_bearer", extra={
        "assertion": auth_server.workload_jwt(audience="https://wrong.example")})
    auth = OAuthAuth(auth_server.resource, settings, agent=NoPerson())
    async with aiohttp.ClientSession() as session:
        with pytest.raises(AuthorizationFailed, match="invalid_grant"):
            await send(auth, session, auth_server.resource)
    assert len(auth_server.requests) == 1  # no retry, no other grant


@pytest.mark.parametrize(("settings", "problem"), [
    (OAuthSettings(grant="password"), "unknown grant"),
    (OAuthSettings(grant="client_credentials", client_id="c"), "secret or a private key"),
    (OAuthSettings(grant="jwt_bearer"), "needs an assertion"),
    (OAuthSettings(grant="enterprise", client_id="c", client_secret="s"), "ID token"),
])
async def test_incomplete_machine_settings(auth_server: AuthServer, settings: OAuthSettings,
                                           problem: str) -> None:
    auth = OAuthAuth(auth_server.resource, settings, agent=NoPerson())
    async with aiohttp.ClientSession() as session:
        with pytest.raises(AuthorizationFailed, match=problem):
            await send(auth, session, auth_server.resource)
    assert auth_server.requests == []


def test_extension_settings_of_the_conformance_contexts() -> None:
    assert extension_settings({"name": "auth/pre-registration", "client_id": "c"}) == {}
    basic = extension_settings({"name": "auth/client-credentials-basic", "client_id": "c",
                                "client_secret": "s"})
    assert OAuthSettings(**basic).grant == "client_credentials"
    wif = OAuthSettings(**extension_settings({"name": "auth/wif-jwt-bearer",
                                              "valid_jwt": "a.b.c", "expired_jwt": "x"}))
    assert wif.extra == {"assertion": "a.b.c"}


async def test_a_machine_grant_asks_again_before_its_token_expires(
        auth_server: AuthServer) -> None:
    """No refresh token, nobody to ask: a token about to expire is replaced before the
    request, not after the server refuses it."""
    auth_server.expires_in = 1  # a short-lived token: renewed in the last quarter of its life
    settings = OAuthSettings(grant="client_credentials", client_id=CLIENT_ID,
                             client_secret=CLIENT_SECRET)
    auth = OAuthAuth(auth_server.resource, settings, agent=NoPerson())
    async with aiohttp.ClientSession() as session:
        assert await send(auth, session, auth_server.resource) == 200
        obtained = len(auth_server.requests)
        assert await send(auth, session, auth_server.resource) == 200  # not due yet
        assert len(auth_server.requests) == obtained
        await asyncio.sleep(0.8)
        assert await send(auth, session, auth_server.resource) == 200
    # 401 without a token; then a token, and a new one obtained just before the last request
    assert len(auth_server.requests) == obtained + 1
    sent = [r.headers.get("Authorization", "")[:7] for r in auth_server.resource_requests]
    assert sent == ["", "Bearer ", "Bearer ", "Bearer "]


async def test_config_spellings_of_the_grant_and_its_settings(auth_server: AuthServer,
                                                              tmp_path: Path) -> None:
    """An ``oauth`` object keeps unknown names as written (camelCase in most clients)."""
    path = tmp_path / "workload.jwt"
    path.write_text(auth_server.workload_jwt())
    settings = OAuthSettings(grant="jwtBearer", extra={"assertionFile": str(path)})
    auth = OAuthAuth(auth_server.resource, settings, agent=NoPerson())
    async with aiohttp.ClientSession() as session:
        assert await send(auth, session, auth_server.resource) == 200
    enterprise = OAuthSettings(
        grant="enterprise", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        extra={"idToken": auth_server.id_token(), "idp-client-id": IDP_CLIENT_ID,
               "IdpTokenEndpoint": auth_server.idp_token_endpoint})
    auth = OAuthAuth(auth_server.resource, enterprise, agent=NoPerson())
    async with aiohttp.ClientSession() as session:
        assert await send(auth, session, auth_server.resource) == 200
    assert [r.path for r in auth_server.requests] == ["/token", "/idp/token", "/token"]
