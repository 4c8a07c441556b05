"""Real servers on loopback for the machine-to-machine and DPoP tests.

A small authorization server (and an enterprise identity provider, and a DPoP-checking
resource) built on aiohttp and joserfc, verifying what an RFC-following server verifies:
client assertions (signature, ``iss``/``sub``/``aud``/``exp``), client secrets, workload
JWTs, token exchange parameters, ID-JAGs and DPoP proofs (signature, ``typ``, ``htm``,
``htu``, ``iat``, ``ath``, nonce, the token's ``cnf.jkt``). Each request is recorded so a
test can look at exactly what the client sent.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import orjson
import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, import_key

CLIENT_ID = "m2m-client"
CLIENT_SECRET = "m2m-secret:with/odd chars"
IDP_CLIENT_ID = "idp-client"
WORKLOAD_ISSUER = "https://workload.issuer.test"
AS_NONCE = "as-nonce-1"
RS_NONCE = "rs-nonce-1"
PRM_PATH = "/.well-known/oauth-protected-resource/mcp"


def sign(claims: dict[str, Any], key: ECKey, *, typ: str = "JWT") -> str:
    return jwt.encode({"alg": "ES256", "typ": typ}, claims, key, algorithms=["ES256"])


@dataclass
class Recorded:
    path: str
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class AuthServer:
    """The knobs and the record of one test authorization server."""

    client_key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    workload_key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    idp_key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    jag_key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    token_key: ECKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    dpop: bool = False
    as_nonce: bool = False
    rs_nonce: bool = False
    refuse_with: str | None = None
    expires_in: int = 600
    base: str = ""
    resource_base: str = ""
    requests: list[Recorded] = field(default_factory=list)
    resource_requests: list[Recorded] = field(default_factory=list)
    seen_jtis: set[str] = field(default_factory=set)

    @property
    def issuer(self) -> str:
        return self.base

    @property
    def token_endpoint(self) -> str:
        return f"{self.base}/token"

    @property
    def idp_token_endpoint(self) -> str:
        return f"{self.base}/idp/token"

    @property
    def resource(self) -> str:
        return f"{self.resource_base}/mcp"

    def workload_jwt(self, *, audience: str | None = None, expired: bool = False) -> str:
        now = int(time.time())
        return sign({"iss": WORKLOAD_ISSUER, "sub": "workload-1",
                     "aud": audience or self.issuer, "jti": secrets.token_hex(8),
                     "iat": now, "exp": now - 60 if expired else now + 300},
                    self.workload_key)

    def id_token(self) -> str:
        now = int(time.time())
        return sign({"iss": f"{self.base}/idp", "sub": "alice@example.com",
                     "aud": IDP_CLIENT_ID, "iat": now, "exp": now + 3600}, self.idp_key)


def jose_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified."""
    head = token.split(".")[0]
    header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    if not isinstance(header, dict):
        raise ValueError("header")
    return header


def jose_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, unverified."""
    body = token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert isinstance(claims, dict)
    return claims


def _error(status: int, error: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "error_description": f"test: {error}"},
                             status=status, headers=headers)


def _verify(token: str, key: ECKey, *, audience: str | None = None) -> dict[str, Any]:
    decoded = jwt.decode(token, key, algorithms=["ES256"])
    claims = dict(decoded.claims)
    if claims.get("exp", 0) < time.time():
        raise ValueError("expired")
    if audience is not None and claims.get("aud") != audience:
        raise ValueError("audience")
    return claims


def check_proof(proof: str | None, method: str, url: str, *,
                access_token: str | None = None, nonce: str | None = None,
                seen: set[str] | None = None) -> tuple[str | None, str]:
    """(error, jkt) of a DPoP proof, as RFC 9449 section 4.3 checks it."""
    if not proof or "," in proof:
        return "missing or multiple proofs", ""
    try:
        header = jose_header(proof)
        public = import_key(header["jwk"])
        if "d" in header["jwk"] or header.get("typ") != "dpop+jwt":
            return "bad header", ""
        claims = dict(jwt.decode(proof, public, algorithms=[header["alg"]]).claims)
    except (JoseError, KeyError, ValueError) as exc:
        return f"does not verify: {exc}", ""
    if claims.get("htm") != method or claims.get("htu") != url:
        return f"htm/htu {claims.get('htm')} {claims.get('htu')}", ""
    if abs(time.time() - claims.get("iat", 0)) > 60:
        return "iat", ""
    jti = claims.get("jti")
    if not isinstance(jti, str) or (seen is not None and jti in seen):
        return "jti replayed", ""
    if seen is not None:
        seen.add(jti)
    if access_token is not None:
        ath = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest())
        if claims.get("ath") != ath.rstrip(b"=").decode():
            return "ath", ""
    elif "ath" in claims:
        return "ath at the token endpoint", ""
    if nonce is not None and claims.get("nonce") != nonce:
        return "use_dpop_nonce", ""
    return None, str(public.thumbprint())


def build_app(state: AuthServer) -> web.Application:
    async def metadata(request: web.Request) -> web.Response:
        body = {"issuer": state.issuer, "token_endpoint": state.token_endpoint,
                "authorization_endpoint": f"{state.base}/authorize",
                "grant_types_supported": ["client_credentials",
                                          "urn:ietf:params:oauth:grant-type:jwt-bearer"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt",
                                                          "client_secret_basic"],
                "token_endpoint_auth_signing_alg_values_supported": ["ES256"]}
        if state.dpop:
            body["dpop_signing_alg_values_supported"] = ["ES256"]
        return web.json_response(body)

    def basic_client(request: web.Request) -> str | None:
        value = request.headers.get("Authorization", "")
        if not value.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
        if unquote_plus(user) == CLIENT_ID and unquote_plus(password) == CLIENT_SECRET:
            return CLIENT_ID
        return None

    def assertion_client(form: dict[str, str]) -> str | None:
        if form.get("client_assertion_type") != (
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"):
            return None
        try:
            claims = _verify(form.get("client_assertion", ""), state.client_key,
                             audience=state.issuer)
        except (JoseError, ValueError):
            return None
        jti = claims.get("jti")
        if (claims.get("iss") != CLIENT_ID or claims.get("sub") != CLIENT_ID
                or not isinstance(jti, str) or jti in state.seen_jtis):
            return None
        state.seen_jtis.add(jti)
        return CLIENT_ID

    async def token(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        state.requests.append(Recorded(request.path, form, dict(request.headers)))
        if state.refuse_with:
            return _error(400, state.refuse_with)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if basic_client(request) is None and assertion_client(form) is None:
                return _error(401, "invalid_client")
            subject = CLIENT_ID
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            subject_or_error = jwt_bearer_subject(request, form)
            if subject_or_error.startswith("!"):
                return _error(400, subject_or_error[1:])
            subject = subject_or_error
        else:
            return _error(400, "unsupported_grant_type")
        if form.get("resource") != state.resource:
            return _error(400, "invalid_target")
        claims: dict[str, Any] = {"iss": state.issuer, "sub": subject, "aud": state.resource,
                                  "exp": int(time.time()) + 600}
        token_type = "Bearer"
        if state.dpop:
            nonce = AS_NONCE if state.as_nonce else None
            error, jkt = check_proof(request.headers.get("DPoP"), "POST",
                                     state.token_endpoint, nonce=nonce)
            if error == "use_dpop_nonce":
                return _error(400, "use_dpop_nonce", {"DPoP-Nonce": AS_NONCE})
            if error:
                return _error(400, "invalid_dpop_proof")
            claims["cnf"] = {"jkt": jkt}
            token_type = "DPoP"
        access = sign(claims, state.token_key, typ="at+jwt")
        return web.json_response({"access_token": access, "token_type": token_type,
                                  "expires_in": state.expires_in,
                                  "scope": form.get("scope", "")})

    def jwt_bearer_subject(request: web.Request, form: dict[str, str]) -> str:
        assertion = form.get("assertion", "")
        try:
            typ = jose_header(assertion).get("typ")
        except ValueError:
            return "!invalid_grant"
        if typ == "oauth-id-jag+jwt":  # enterprise: the client authenticates too
            if basic_client(request) is None:
                return "!invalid_client"
            try:
                claims = _verify(assertion, state.jag_key, audience=state.issuer)
            except (JoseError, ValueError):
                return "!invalid_grant"
            if claims.get("client_id") != CLIENT_ID or claims.get("resource") != state.resource:
                return "!invalid_grant"
            return str(claims["sub"])
        try:
            claims = _verify(assertion, state.workload_key, audience=state.issuer)
        except (JoseError, ValueError):
            return "!invalid_grant"
        return str(claims["sub"])

    async def idp_token(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        state.requests.append(Recorded(request.path, form, dict(request.headers)))
        expected = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
                    "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
                    "audience": state.issuer, "resource": state.resource,
                    "client_id": IDP_CLIENT_ID}
        if any(form.get(k) != v for k, v in expected.items()):
            return _error(400, "invalid_request")
        try:
            claims = _verify(form.get("subject_token", ""), state.idp_key,
                             audience=IDP_CLIENT_ID)
        except (JoseError, ValueError):
            return _error(400, "invalid_grant")
        now = int(time.time())
        jag = sign({"iss": f"{state.base}/idp", "sub": claims["sub"], "aud": state.issuer,
                    "client_id": CLIENT_ID, "resource": state.resource,
                    "jti": secrets.token_hex(8), "iat": now, "exp": now + 300},
                   state.jag_key, typ="oauth-id-jag+jwt")
        return web.json_response({"access_token": jag, "token_type": "N_A",
                                  "issued_token_type": "urn:ietf:params:oauth:token-type:id-jag"})

    async def protected_resource(request: web.Request) -> web.Response:
        return web.json_response({"resource": state.resource,
                                  "authorization_servers": [state.issuer]})

    async def resource(request: web.Request) -> web.Response:
        state.resource_requests.append(Recorded(request.path, {}, dict(request.headers)))
        scheme, _, access = request.headers.get("Authorization", "").partition(" ")
        metadata = f'resource_metadata="{state.resource_base}{PRM_PATH}"'
        if not state.dpop:
            try:
                claims = _verify(access, state.token_key, audience=state.resource)
            except (JoseError, ValueError):
                claims = {}
            if scheme != "Bearer" or "cnf" in claims or not claims:
                return web.json_response({"error": "unauthorized"}, status=401,
                                         headers={"WWW-Authenticate": f"Bearer {metadata}"})
            return web.json_response({"ok": True, "sub": claims["sub"]})
        if scheme != "DPoP":
            return web.json_response(
                {"error": "unauthorized"}, status=401,
                headers={"WWW-Authenticate": f'DPoP {metadata}, algs="ES256"'})
        nonce = RS_NONCE if state.rs_nonce else None
        error, jkt = check_proof(request.headers.get("DPoP"), request.method, state.resource,
                                 access_token=access, nonce=nonce, seen=state.seen_jtis)
        if error == "use_dpop_nonce":
            return web.json_response(
                {"error": "use_dpop_nonce"}, status=401,
                headers={"WWW-Authenticate": 'DPoP error="use_dpop_nonce", algs="ES256"',
                         "DPoP-Nonce": RS_NONCE})
        if error:
            return web.json_response({"error": error}, status=401)
        claims = _verify(access, state.token_key, audience=state.resource)
        if claims.get("cnf", {}).get("jkt") != jkt:
            return web.json_response({"error": "cnf"}, status=401)
        return web.json_response({"ok": True, "sub": claims["sub"]})

    async def oversized(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "x" * 100_000, "token_type": "Bearer"})

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/oversized", oversized)
    app.router.add_post("/not-json", not_json)
    app.router.add_get("/.well-known/oauth-authorization-server", metadata)
    app.router.add_post("/token", token)
    app.router.add_post("/idp/token", idp_token)
    app.router.add_route("*", "/mcp", resource)
    app.router.add_get(PRM_PATH, protected_resource)
    return app


@pytest.fixture
async def auth_server() -> AsyncIterator[AuthServer]:
    """A test authorization server (with its IdP) and a DPoP resource, each on its own
    port of 127.0.0.1."""
    state = AuthServer()
    runner = web.AppRunner(build_app(state))
    await runner.setup()
    # Two origins, as in real deployments: the authorization server's and the resource's.
    bases = []
    for _ in range(2):
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        bases.append(f"http://127.0.0.1:{port}")
    state.base, state.resource_base = bases
    try:
        yield state
    finally:
        await runner.cleanup()


async def send(auth: Any, session: Any, url: str, *, limit: int = 6) -> int:
    """One request as an HTTP transport makes it through a RequestAuth: its headers, then
    observe, then (on 401/403) refused and the same request again; the final status."""
    status = 0
    for _ in range(limit):
        headers = await auth.headers("POST", url)
        async with session.post(url, headers=headers, json={}) as response:
            await response.read()
            status = response.status
            auth.observe("POST", url, status, response.headers)
            if status not in (401, 403) or not await auth.refused("POST", url, status,
                                                                  response.headers):
                return status
    return status
