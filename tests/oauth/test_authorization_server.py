"""The test authorization server on its own: every endpoint over real HTTP, checked with joserfc."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from joserfc import errors, jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from .authorization_server import BAD_TOKEN_KINDS, Client, OAuthServer
from .fixtures import StartOAuthServer

RESOURCE = "http://127.0.0.1:9999/mcp"
REDIRECT = "http://127.0.0.1:5555/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic(client: Client) -> str:
    return aiohttp.encode_basic_auth(client.client_id, client.client_secret or "")


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, url
        return await response.json()


async def authorize(http: aiohttp.ClientSession, server: OAuthServer, client: Client, *,
                    scope: str | None = "mcp:read", resource: str | None = RESOURCE,
                    challenge: str | None = None, method: str = "S256",
                    redirect_uri: str = REDIRECT) -> dict[str, list[str]]:
    """Follow the authorization URL like a browser, without following the redirect."""
    params = {"response_type": "code", "client_id": client.client_id,
              "redirect_uri": redirect_uri, "state": "st-1"}
    if scope is not None:
        params["scope"] = scope
    if resource is not None:
        params["resource"] = resource
    if challenge is not None:
        params["code_challenge"] = challenge
        params["code_challenge_method"] = method
    async with http.get(server.url("authorize") + "?" + urlencode(params),
                        allow_redirects=False) as response:
        assert response.status == 302, await response.text()
        location = response.headers["Location"]
    assert location.startswith(redirect_uri.split("?")[0])
    return parse_qs(urlsplit(location).query)


async def token_request(http: aiohttp.ClientSession, server: OAuthServer, form: dict[str, str],
                        client: Client | None = None) -> tuple[int, dict[str, Any]]:
    headers = {}
    if client is not None and client.token_endpoint_auth_method == "client_secret_basic":
        headers["Authorization"] = basic(client)
    elif client is not None and client.token_endpoint_auth_method == "client_secret_post":
        form = {**form, "client_id": client.client_id, "client_secret": client.client_secret or ""}
    async with http.post(server.url("token"), data=form, headers=headers) as response:
        return response.status, await response.json()


async def code_flow(http: aiohttp.ClientSession, server: OAuthServer, client: Client,
                    scope: str = "mcp:read") -> dict[str, Any]:
    verifier, challenge = pkce()
    query = await authorize(http, server, client, scope=scope, challenge=challenge)
    form = {"grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": REDIRECT, "code_verifier": verifier, "resource": RESOURCE}
    if client.token_endpoint_auth_method == "none":
        form["client_id"] = client.client_id
    status, body = await token_request(http, server, form, client)
    assert status == 200, body
    return body


async def verify(http: aiohttp.ClientSession, server: OAuthServer, token: str,
                 audience: str = RESOURCE) -> dict[str, Any]:
    """Validate like a resource server: JWKS from the metadata, iss, aud, exp."""
    metadata = await get_json(
        http, server.origin + "/.well-known/oauth-authorization-server" + server.path)
    keys = KeySet.import_key_set(await get_json(http, metadata["jwks_uri"]))
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    JWTClaimsRegistry(iss={"essential": True, "value": metadata["issuer"]},
                      aud={"essential": True, "value": audience},
                      exp={"essential": True}).validate(decoded.claims)
    assert decoded.header["typ"] == "at+jwt"
    return dict(decoded.claims)


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_metadata_and_jwks(oauth_server: OAuthServer, http: aiohttp.ClientSession) -> None:
    metadata = await get_json(http, oauth_server.issuer + "/.well-known/oauth-authorization-server")
    assert metadata["issuer"] == oauth_server.issuer
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(
        metadata["grant_types_supported"])
    openid = await get_json(http, oauth_server.issuer + "/.well-known/openid-configuration")
    assert openid["token_endpoint"] == metadata["token_endpoint"]
    jwks = await get_json(http, metadata["jwks_uri"])
    assert sorted(key["kty"] for key in jwks["keys"]) == ["EC", "RSA"]
    assert all("d" not in key for key in jwks["keys"])


async def test_path_issuer_and_chosen_well_knowns(start_oauth_server: StartOAuthServer,
                                                  http: aiohttp.ClientSession) -> None:
    server = start_oauth_server(path="/tenant1", well_known=frozenset({"openid"}))
    assert server.issuer.endswith("/tenant1")
    async with http.get(server.origin + "/.well-known/oauth-authorization-server/tenant1") as r:
        assert r.status == 404
    for url in (server.origin + "/.well-known/openid-configuration/tenant1",
                server.issuer + "/.well-known/openid-configuration"):
        assert (await get_json(http, url))["issuer"] == server.issuer


async def test_dynamic_registration_then_code_flow_with_pkce_and_resource(
        oauth_server: OAuthServer, http: aiohttp.ClientSession) -> None:
    async with http.post(oauth_server.url("register"), json={
            "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "client_name": "t"}) as r:
        assert r.status == 201
        registered = await r.json()
    assert "client_secret" not in registered
    client = oauth_server.clients[registered["client_id"]]

    oauth_server.subject = "bob"
    verifier, challenge = pkce()
    query = await authorize(http, oauth_server, client, scope="mcp:read mcp:write",
                            challenge=challenge)
    assert query["iss"] == [oauth_server.issuer]
    assert query["state"] == ["st-1"]
    form = {"grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": REDIRECT, "code_verifier": verifier, "client_id": client.client_id}
    status, body = await token_request(http, oauth_server, form)
    assert status == 200, body
    assert body["token_type"] == "Bearer" and body["refresh_token"]
    claims = await verify(http, oauth_server, body["access_token"])
    assert claims["sub"] == "bob"
    assert claims["scope"] == "mcp:read mcp:write"
    assert claims["client_id"] == client.client_id
    assert claims["jti"]

    # A code is good once.
    status, body = await token_request(http, oauth_server, form)
    assert status == 400 and body["error"] == "invalid_grant"


async def test_pkce_is_required_and_checked(oauth_server: OAuthServer,
                                            http: aiohttp.ClientSession) -> None:
    client = oauth_server.register_client(redirect_uris=[REDIRECT])
    for challenge, method in ((None, "S256"), (pkce()[1], "plain")):
        query = await authorize(http, oauth_server, client, challenge=challenge, method=method)
        assert query["error"] == ["invalid_request"]
        assert "code" not in query
    _, challenge = pkce()
    query = await authorize(http, oauth_server, client, challenge=challenge)
    form = {"grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": REDIRECT, "code_verifier": pkce()[0]}
    status, body = await token_request(http, oauth_server, form, client)
    assert status == 400 and body["error"] == "invalid_grant"


async def test_resource_at_token_must_be_one_authorized(oauth_server: OAuthServer,
                                                        http: aiohttp.ClientSession) -> None:
    client = oauth_server.register_client(redirect_uris=[REDIRECT])
    verifier, challenge = pkce()
    query = await authorize(http, oauth_server, client, challenge=challenge)
    form = {"grant_type": "authorization_code", "code": query["code"][0],
            "redirect_uri": REDIRECT, "code_verifier": verifier,
            "resource": "http://127.0.0.1:1/elsewhere"}
    status, body = await token_request(http, oauth_server, form, client)
    assert status == 400 and body["error"] == "invalid_target"


async def test_loopback_redirect_any_port_but_not_another_host(
        oauth_server: OAuthServer, http: aiohttp.ClientSession) -> None:
    client = oauth_server.register_client(redirect_uris=["http://127.0.0.1/callback"])
    _, challenge = pkce()
    query = await authorize(http, oauth_server, client, challenge=challenge,
                            redirect_uri="http://127.0.0.1:41234/callback")
    assert "code" in query
    params = {"response_type": "code", "client_id": client.client_id, "code_challenge": challenge,
              "code_challenge_method": "S256", "redirect_uri": "http://evil.example/callback"}
    async with http.get(oauth_server.url("authorize") + "?" + urlencode(params),
                        allow_redirects=False) as response:
        assert response.status == 400


async def test_granted_scope_is_limited_by_the_user(oauth_server: OAuthServer,
                                                    http: aiohttp.ClientSession) -> None:
    oauth_server.allowed_scopes = {"mcp:read"}
    client = oauth_server.register_client(redirect_uris=[REDIRECT])
    body = await code_flow(http, oauth_server, client, scope="mcp:read mcp:admin")
    assert body["scope"] == "mcp:read"
    assert (await verify(http, oauth_server, body["access_token"]))["scope"] == "mcp:read"


async def test_denied_authorization_redirects_an_error(oauth_server: OAuthServer,
                                                       http: aiohttp.ClientSession) -> None:
    oauth_server.deny = True
    client = oauth_server.register_client(redirect_uris=[REDIRECT])
    query = await authorize(http, oauth_server, client, challenge=pkce()[1])
    assert query["error"] == ["access_denied"]
    assert query["iss"] == [oauth_server.issuer]


async def test_refresh_rotates_and_keeps_the_resource(start_oauth_server: StartOAuthServer,
                                                      http: aiohttp.ClientSession) -> None:
    server = start_oauth_server(access_token_ttl=30)
    client = server.register_client(redirect_uris=[REDIRECT],
                                    token_endpoint_auth_method="client_secret_post")
    first = await code_flow(http, server, client)
    assert first["expires_in"] == 30
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
            "client_id": client.client_id, "client_secret": client.client_secret or ""}
    async with http.post(server.url("token"), data=form) as response:
        assert response.status == 200
        second = await response.json()
    assert second["refresh_token"] != first["refresh_token"]
    claims = await verify(http, server, second["access_token"])
    assert claims["aud"] == RESOURCE and claims["scope"] == "mcp:read"
    assert [event["grant_type"] for event in server.token_requests()] == [
        "authorization_code", "refresh_token"]
    # The old refresh token was rotated away.
    async with http.post(server.url("token"), data=form) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_grant"


async def test_refresh_tokens_only_for_offline_access_when_so_configured(
        start_oauth_server: StartOAuthServer, http: aiohttp.ClientSession) -> None:
    server = start_oauth_server(refresh_tokens="offline_access")
    client = server.register_client(redirect_uris=[REDIRECT])
    assert "refresh_token" not in await code_flow(http, server, client, scope="mcp:read")
    assert "refresh_token" in await code_flow(http, server, client,
                                              scope="mcp:read offline_access")


async def test_client_auth_method_is_enforced(oauth_server: OAuthServer,
                                              http: aiohttp.ClientSession) -> None:
    client = oauth_server.register_client(redirect_uris=[REDIRECT])  # client_secret_basic
    form = {"grant_type": "client_credentials", "client_id": client.client_id,
            "client_secret": client.client_secret or ""}
    status, body = await token_request(http, oauth_server, form)
    assert status in (400, 401) and body["error"] == "invalid_client"


async def test_client_credentials_and_introspection(oauth_server: OAuthServer,
                                                    http: aiohttp.ClientSession) -> None:
    machine = oauth_server.register_client(grant_types=["client_credentials"])
    status, body = await token_request(http, oauth_server, {
        "grant_type": "client_credentials", "scope": "mcp:read", "resource": RESOURCE}, machine)
    assert status == 200, body
    assert "refresh_token" not in body
    claims = await verify(http, oauth_server, body["access_token"])
    assert claims["sub"] == machine.client_id

    resource_server = oauth_server.register_client(grant_types=["client_credentials"])
    auth = {"Authorization": basic(resource_server)}
    for token, active in ((body["access_token"], True),
                          (oauth_server.access_token(resource=RESOURCE), True),
                          (oauth_server.bad_token("other_issuer", resource=RESOURCE), False),
                          ("not-a-token", False)):
        async with http.post(oauth_server.url("introspect"), data={"token": token},
                             headers=auth) as response:
            assert response.status == 200
            answer = await response.json()
        assert answer["active"] is active
        if active:
            assert answer["aud"] == RESOURCE and answer["iss"] == oauth_server.issuer
    async with http.post(oauth_server.url("introspect"), data={"token": "x"}) as response:
        assert response.status == 401


async def test_es256_signing(start_oauth_server: StartOAuthServer,
                             http: aiohttp.ClientSession) -> None:
    server = start_oauth_server(signing_alg="ES256")
    body = await code_flow(http, server, server.register_client(redirect_uris=[REDIRECT]))
    assert jwt.decode(body["access_token"], server.ec_key).header["alg"] == "ES256"
    await verify(http, server, body["access_token"])
    await verify(http, server, server.access_token(resource=RESOURCE))


async def test_minted_good_token_verifies(oauth_server: OAuthServer,
                                          http: aiohttp.ClientSession) -> None:
    token = oauth_server.access_token(resource=RESOURCE, scope="mcp:admin", subject="carol")
    claims = await verify(http, oauth_server, token)
    assert claims["sub"] == "carol" and claims["scope"] == "mcp:admin"


REFUSED_AS = {
    "expired": errors.ExpiredTokenError,
    "other_audience": errors.InvalidClaimError,
    "other_issuer": errors.InvalidClaimError,
    "unknown_key": errors.InvalidKeyIdError,
    "unknown_key_same_kid": errors.BadSignatureError,
    "alg_none": errors.UnsupportedAlgorithmError,
    "hs256_public_key": errors.UnsupportedAlgorithmError,
}


@pytest.mark.parametrize("kind", BAD_TOKEN_KINDS)
async def test_every_bad_token_is_refused_by_a_correct_validator(
        oauth_server: OAuthServer, http: aiohttp.ClientSession, kind: str) -> None:
    token = oauth_server.bad_token(kind, resource=RESOURCE)
    with pytest.raises(REFUSED_AS[kind]):
        await verify(http, oauth_server, token)


def test_the_hs256_forgery_is_a_real_hmac_with_the_public_key(oauth_server: OAuthServer) -> None:
    """So a validator that trusted the header's alg would accept it: the attack is genuine."""
    token = oauth_server.bad_token("hs256_public_key", resource=RESOURCE)
    signing_input, _, signature = token.rpartition(".")
    secret = oauth_server.rsa_key.as_pem(private=False)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(mac).rstrip(b"=").decode() == signature
