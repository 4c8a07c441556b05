"""A real OAuth 2.1 authorization server for the tests, built on Authlib and Flask.

Usage (the fixtures in ``tests/oauth/fixtures.py`` are available to every test)::

    async def test_something(oauth_server: OAuthServer) -> None:
        issuer = oauth_server.issuer               # http://127.0.0.1:PORT
        oauth_server.subject = "bob"               # who the "browser" logs in as
        oauth_server.allowed_scopes = {"mcp:read"} # what that user may be granted
        token = oauth_server.access_token(resource="http://127.0.0.1:9/mcp", scope="mcp:read")
        bad = oauth_server.bad_token("expired", resource="http://127.0.0.1:9/mcp")

    # or with other settings, several at once:
    async def test_other(start_oauth_server: StartOAuthServer) -> None:
        server = start_oauth_server(path="/tenant", access_token_ttl=2)

Or without pytest: ``with OAuthServer() as server: ...`` (``start()``/``stop()``).

What it offers, on 127.0.0.1 and a free port, in a thread (werkzeug, threaded):

- RFC 8414 metadata at ``/.well-known/oauth-authorization-server[path]`` and OpenID discovery at
  ``/.well-known/openid-configuration[path]`` and ``[path]/.well-known/openid-configuration``
  (``well_known`` chooses which of ``{"oauth", "openid"}`` are served, to test discovery order);
- JWKS at ``[path]/jwks``: an RS256 key and an ES256 key (``signing_alg`` picks the one that
  signs; both are always published);
- ``[path]/authorize``: authorization code with PKCE (S256 only, always required) and resource
  indicators (RFC 8707, ``resource`` may repeat). It approves at once and answers 302 to the
  client's ``redirect_uri`` with ``code``, ``state`` and ``iss`` (RFC 9207; ``redirect_iss``
  changes or, set to None, removes it). It is the tests' browser: a test GETs the authorization
  URL without following the redirect and delivers the Location to the client's listener.
  ``subject`` is the user; the granted scope is the requested one, intersected with
  ``allowed_scopes`` when that is set, or ``default_scope`` when none is requested;
  ``deny = True`` answers ``error=access_denied`` instead;
- ``[path]/token``: ``authorization_code``, ``refresh_token`` and ``client_credentials``;
  access tokens are RFC 9068 JWTs (``typ: at+jwt``; ``iss``, ``sub``, ``aud``, ``scope``,
  ``client_id``, ``exp``, ``iat``, ``jti``) whose ``aud`` is the ``resource`` asked for (at the
  token request, else at the authorization request; ``default_audience``, else the client id,
  when there is none); ``access_token_ttl`` seconds (read at each issue);
  refresh tokens: issued by the code grant to every client when ``refresh_tokens == "always"``
  (the default), or only when the granted scope holds ``offline_access`` when it is
  ``"offline_access"``; rotated at every use (the old one is then refused, ``invalid_grant``);
  a refresh keeps the first grant's resource and scope (a narrower scope may be asked).
  Client authentication: ``client_secret_basic``, ``client_secret_post``, ``none`` (the method
  the client registered with is enforced);
- ``[path]/register``: dynamic client registration (RFC 7591), open (no initial access token);
  a client registered with ``token_endpoint_auth_method: none`` gets no secret;
  ``register_client(...)`` pre-registers one from the test;
- ``[path]/revoke``: token revocation (RFC 7009) by the client the token was issued to;
- ``[path]/introspect``: token introspection (RFC 7662) for any registered confidential client;
- ``events``: what each endpoint was asked (no secrets), e.g. to prove a refresh happened.

Bad tokens for the negative tests: ``bad_token(kind, resource=...)`` with ``kind`` one of
``BAD_TOKEN_KINDS`` (expired, other audience, other issuer, unknown key, unknown key that reuses
a published ``kid``, ``alg: none``, HS256 signed with the RSA public key as the secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Error, TokenMixin, grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Flask, Response, jsonify
from flask import request as flask_request
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = [
    "BAD_TOKEN_KINDS",
    "Client",
    "OAuthServer",
    "SigningAlg",
    "running",
]

SigningAlg = Literal["RS256", "ES256"]

BAD_TOKEN_KINDS = (
    "expired",
    "other_audience",
    "other_issuer",
    "unknown_key",
    "unknown_key_same_kid",
    "alg_none",
    "hs256_public_key",
)

ALL_SCOPES = ("mcp:read", "mcp:write", "mcp:admin", "offline_access")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CODE_TTL = 120


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the resource asked for is not valid or not one the grant covers."""

    error = "invalid_target"


class _QuietHandler(WSGIRequestHandler):
    """No access log: the tests' output stays readable (and codes stay out of it)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _scopes(scope: str | None) -> list[str]:
    return list(scope_to_list(scope) or [])


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


@dataclass
class Grantee:
    """The resource owner of a grant, and the resources it was granted for."""

    subject: str
    resource: tuple[str, ...] = ()

    def get_user_id(self) -> str:
        return self.subject


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    """A registered client, kept in memory."""

    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    grant_types: list[str]
    response_types: list[str]
    token_endpoint_auth_method: str
    scope: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Lenient on purpose: a client may ask for more than it registered (step-up).
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if redirect_uri in self.redirect_uris:
            return True
        # RFC 8252 §7.3: a loopback redirect may use any port.
        asked = urlsplit(redirect_uri)
        return _is_loopback(redirect_uri) and any(
            _is_loopback(uri) and urlsplit(uri).path == asked.path for uri in self.redirect_uris
        )

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and hmac.compare_digest(
            self.client_secret, client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint in ("token", "revocation"):  # a public client may revoke its tokens
            return method == self.token_endpoint_auth_method
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        # Refresh goes with the code grant (see refresh_tokens in the module's docstring).
        if grant_type == "refresh_token":
            return "authorization_code" in self.grant_types or grant_type in self.grant_types
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    subject: str
    resource: tuple[str, ...]
    code_challenge: str
    code_challenge_method: str
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class IssuedToken(TokenMixin):  # type: ignore[misc]
    """One token response: the access token and its refresh token, if any."""

    client: Client
    access_token: str
    refresh_token: str | None
    scope: str
    subject: str
    resource: tuple[str, ...]
    claims: dict[str, Any]
    issued_at: float
    expires_in: int
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return self.client.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> Grantee:
        return Grantee(self.subject, self.resource)

    def get_client(self) -> Client:
        return self.client


def _asked_resources() -> tuple[str, ...]:
    """The ``resource`` parameters of this request (RFC 8707), checked: absolute, no fragment."""
    values = tuple(flask_request.values.getlist("resource"))
    for value in values:
        parts = urlsplit(value)
        if not parts.scheme or not parts.netloc or parts.fragment:
            raise InvalidTargetError(description="resource must be an absolute URI")
    return values


class _CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    owner: OAuthServer

    def validate_authorization_request(self) -> str:
        redirect_uri = str(super().validate_authorization_request())
        # OAuth 2.1: PKCE always, and only S256. The client and its redirect are known by now,
        # so these errors go back through the redirect.
        payload = self.request.payload
        if not payload.data.get("code_challenge") or (
                payload.data.get("code_challenge_method") != "S256"):
            raise InvalidRequestError("PKCE with code_challenge_method=S256 is required",
                                      state=payload.state, redirect_uri=redirect_uri)
        try:
            _asked_resources()
        except InvalidTargetError as error:
            error.state, error.redirect_uri = payload.state, redirect_uri
            raise
        return redirect_uri

    def save_authorization_code(self, code: str, request: Any) -> None:
        owner = self.owner
        data = request.payload.data
        owner.codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri or "",
            scope=owner.grant_scope(request.payload.scope),
            subject=request.user.subject,
            resource=_asked_resources(),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            expires_at=time.time() + CODE_TTL,
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        found = self.owner.codes.get(code)
        if found and found.client_id == client.client_id and found.expires_at > time.time():
            return found
        return None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.owner.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Grantee:
        asked = _asked_resources()
        granted = authorization_code.resource
        if granted and any(value not in granted for value in asked):
            raise InvalidTargetError(description="resource was not part of the authorization")
        return Grantee(authorization_code.subject, asked or granted)

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(
        self, authorization_code: AuthorizationCode
    ) -> str:
        return authorization_code.code_challenge_method


class _RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)
    INCLUDE_NEW_REFRESH_TOKEN = True
    owner: OAuthServer

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        found = self.owner.by_refresh_token.get(refresh_token)
        return found if found and not found.revoked else None

    def authenticate_user(self, refresh_token: IssuedToken) -> Grantee:
        asked = _asked_resources()
        if asked and any(value not in refresh_token.resource for value in asked):
            raise InvalidTargetError(description="resource was not part of the grant")
        return Grantee(refresh_token.subject, asked or refresh_token.resource)

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        refresh_token.revoked = True


class _ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def generate_token(self, **kwargs: Any) -> dict[str, Any]:
        # No resource owner: the subject is the client itself, and the resource comes from
        # the token request.
        kwargs["user"] = Grantee(self.request.client.client_id, _asked_resources())
        return dict(super().generate_token(**kwargs))


class _Registration(ClientRegistrationEndpoint):  # type: ignore[misc]
    owner: OAuthServer

    def authenticate_token(self, request: Any) -> bool:
        return True  # open registration

    def get_server_metadata(self) -> dict[str, Any]:
        metadata = self.owner.metadata()
        metadata.pop("scopes_supported", None)  # any scope may be registered
        return metadata

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        info = dict(super().generate_client_info(request))
        if request.payload.data.get("token_endpoint_auth_method") == "none":
            info.pop("client_secret", None)
            info.pop("client_secret_expires_at", None)
        return info

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any],
                    request: Any) -> Client:
        client = Client(
            client_id=client_info["client_id"],
            client_secret=client_info.get("client_secret"),
            redirect_uris=list(client_metadata.get("redirect_uris", [])),
            grant_types=list(client_metadata.get("grant_types", ["authorization_code"])),
            response_types=list(client_metadata.get("response_types", ["code"])),
            token_endpoint_auth_method=client_metadata.get(
                "token_endpoint_auth_method", "client_secret_basic"
            ),
            scope=client_metadata.get("scope", ""),
            metadata=dict(client_metadata),
        )
        self.owner.clients[client.client_id] = client
        self.owner.record("register", client_id=client.client_id,
                          auth_method=client.token_endpoint_auth_method)
        return client


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    owner: OAuthServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        owner = self.owner
        found = owner.by_access_token.get(token_string)
        if found is None and token_type_hint != "access_token":
            found = owner.by_refresh_token.get(token_string)
        return found

    def check_permission(self, token: IssuedToken, client: Client, request: Any) -> bool:
        return True

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        claims = token.claims
        self.owner.record("introspect", client_id=token.client.client_id)
        return {
            "active": True,
            "token_type": "Bearer",
            **{k: claims[k] for k in ("iss", "sub", "aud", "scope", "client_id", "exp", "iat",
                                      "jti") if k in claims},
        }


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: a revoked refresh token takes its access token with it (and a revoked
    access token its refresh token): both stop working, and introspection says so."""

    CLIENT_AUTH_METHODS = list(AUTH_METHODS)
    owner: OAuthServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        owner = self.owner
        return owner.by_refresh_token.get(token_string) or owner.by_access_token.get(
            token_string)

    def revoke_token(self, token: IssuedToken, request: Any) -> None:
        token.revoked = True
        self.owner.record("revoke", client_id=token.client.client_id)


class _Issuer(IssuerParameter):  # type: ignore[misc]
    def __init__(self, owner: OAuthServer) -> None:
        self.owner = owner

    def get_issuer(self) -> str | None:
        return self.owner.redirect_iss


class _TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 access tokens whose ``aud`` is the resource (RFC 8707), with a ``kid``."""

    def __init__(self, owner: OAuthServer) -> None:
        super().__init__(owner.issuer, alg=owner.signing_alg,
                         refresh_token_generator=self._refresh_token,
                         expires_generator=lambda client, grant_type: owner.access_token_ttl)
        self.owner = owner

    @staticmethod
    def _refresh_token(**_: Any) -> str:
        return secrets.token_urlsafe(32)

    def get_jwks(self) -> KeySet:
        return KeySet([self.owner.signing_key])

    def get_audiences(self, client: Client, user: Grantee | None, scope: str) -> str | list[str]:
        resource = user.resource if user else ()
        if len(resource) == 1:
            return resource[0]
        if resource:
            return list(resource)
        return self.owner.default_audience or client.client_id

    def generate(self, grant_type: str, client: Client, user: Grantee | None = None,
                 scope: str | None = None, expires_in: int | None = None,
                 include_refresh_token: bool = True) -> dict[str, Any]:
        self.issuer = self.owner.issuer
        self.alg = self.owner.signing_alg
        if grant_type == "authorization_code" and self.owner.refresh_tokens == "offline_access":
            include_refresh_token = "offline_access" in _scopes(scope)
        token = super().generate(grant_type, client, user, scope, expires_in,
                                 include_refresh_token)
        return dict(token)


class OAuthServer:
    """The authorization server: configure with attributes, start, mint, inspect, stop."""

    def __init__(
        self,
        *,
        path: str = "",
        scopes_supported: tuple[str, ...] = ALL_SCOPES,
        access_token_ttl: int = 3600,
        signing_alg: SigningAlg = "RS256",
        refresh_tokens: Literal["always", "offline_access"] = "always",
        subject: str = "alice",
        allowed_scopes: set[str] | None = None,
        default_scope: str = "",
        default_audience: str | None = None,
        well_known: frozenset[str] = frozenset({"oauth", "openid"}),
    ) -> None:
        self.path = path.rstrip("/")
        self.scopes_supported = scopes_supported
        self.access_token_ttl = access_token_ttl
        self.signing_alg: SigningAlg = signing_alg
        self.refresh_tokens = refresh_tokens
        self.subject = subject
        self.allowed_scopes = allowed_scopes
        self.default_scope = default_scope
        self.default_audience = default_audience
        self.well_known = well_known
        self.deny = False
        self.rsa_key = RSAKey.generate_key(2048, {"kid": "rs-" + secrets.token_hex(4),
                                                  "use": "sig", "alg": "RS256"})
        self.ec_key = ECKey.generate_key("P-256", {"kid": "ec-" + secrets.token_hex(4),
                                                   "use": "sig", "alg": "ES256"})
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.by_access_token: dict[str, IssuedToken] = {}
        self.by_refresh_token: dict[str, IssuedToken] = {}
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._http: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.redirect_iss: str | None = None
        self.app = self._build_app()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.origin + self.path

    def url(self, endpoint: str) -> str:
        return f"{self.issuer}/{endpoint}"

    def start(self) -> OAuthServer:
        self._http = make_server("127.0.0.1", 0, self.app, threaded=True,
                                 request_handler=_QuietHandler)
        self.port = self._http.socket.getsockname()[1]
        self.redirect_iss = self.issuer
        self._thread = threading.Thread(target=self._http.serve_forever,
                                        name="oauth-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- configuration and inspection ------------------------------------------------------

    @property
    def signing_key(self) -> RSAKey | ECKey:
        return self.rsa_key if self.signing_alg == "RS256" else self.ec_key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.rsa_key.as_dict(private=False),
                         self.ec_key.as_dict(private=False)]}

    def metadata(self, openid: bool = False) -> dict[str, Any]:
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("authorize"),
            "token_endpoint": self.url("token"),
            "registration_endpoint": self.url("register"),
            "introspection_endpoint": self.url("introspect"),
            "revocation_endpoint": self.url("revoke"),
            "jwks_uri": self.url("jwks"),
            "scopes_supported": list(self.scopes_supported),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(GRANT_TYPES),
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }
        if openid:
            document["subject_types_supported"] = ["public"]
            document["id_token_signing_alg_values_supported"] = ["RS256", "ES256"]
        return document

    def register_client(
        self,
        *,
        redirect_uris: list[str] | None = None,
        grant_types: list[str] | None = None,
        token_endpoint_auth_method: str = "client_secret_basic",
        scope: str = "",
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> Client:
        """Pre-register a client (a confidential one gets a secret unless one is given)."""
        if token_endpoint_auth_method != "none" and client_secret is None:
            client_secret = secrets.token_urlsafe(24)
        client = Client(
            client_id=client_id or "client-" + secrets.token_hex(6),
            client_secret=client_secret if token_endpoint_auth_method != "none" else None,
            redirect_uris=list(redirect_uris or ["http://127.0.0.1/callback"]),
            grant_types=list(grant_types or ["authorization_code", "refresh_token"]),
            response_types=["code"],
            token_endpoint_auth_method=token_endpoint_auth_method,
            scope=scope,
        )
        self.clients[client.client_id] = client
        return client

    def grant_scope(self, asked: str | None) -> str:
        """The scope the auto-approving user grants for a request of ``asked``."""
        scopes = _scopes(asked) or _scopes(self.default_scope)
        if self.allowed_scopes is not None:
            scopes = [scope for scope in scopes if scope in self.allowed_scopes]
        return " ".join(scopes)

    def record(self, endpoint: str, **details: Any) -> None:
        with self._lock:
            self.events.append({"endpoint": endpoint, **details})

    def token_requests(self, grant_type: str | None = None) -> list[dict[str, Any]]:
        """The token endpoint's successful issues so far (of one grant type, if given)."""
        return [event for event in self.events if event["endpoint"] == "token"
                and (grant_type is None or event["grant_type"] == grant_type)]

    # -- minting tokens directly -----------------------------------------------------------

    def claims(self, *, resource: str, scope: str = "", subject: str | None = None,
               client_id: str = "test-client", ttl: int | None = None) -> dict[str, Any]:
        """The claims of an access token this server would issue (RFC 9068)."""
        now = int(time.time())
        return {
            "iss": self.issuer,
            "sub": subject or self.subject,
            "aud": resource,
            "scope": scope,
            "client_id": client_id,
            "iat": now,
            "exp": now + (self.access_token_ttl if ttl is None else ttl),
            "jti": secrets.token_hex(16),
        }

    def sign(self, claims: dict[str, Any], *, key: RSAKey | ECKey | None = None,
             kid: str | None = None) -> str:
        """A JWS of ``claims`` with ``key`` (default: the current signing key)."""
        key = key or self.signing_key
        alg = "RS256" if isinstance(key, RSAKey) else "ES256"
        header = {"alg": alg, "typ": "at+jwt", "kid": kid or key.kid}
        return str(jwt.encode(header, claims, key))

    def access_token(self, *, resource: str, scope: str = "", subject: str | None = None,
                     client_id: str = "test-client", ttl: int | None = None) -> str:
        """A valid access token minted without a flow (recorded for introspection)."""
        claims = self.claims(resource=resource, scope=scope, subject=subject,
                             client_id=client_id, ttl=ttl)
        token = self.sign(claims)
        client = self.clients.get(client_id) or Client(client_id, None, [], [], [], "none")
        with self._lock:
            self.by_access_token[token] = IssuedToken(
                client=client, access_token=token, refresh_token=None, scope=scope,
                subject=claims["sub"], resource=(resource,), claims=claims,
                issued_at=claims["iat"], expires_in=claims["exp"] - claims["iat"])
        return token

    def bad_token(self, kind: str, *, resource: str, scope: str = "",
                  subject: str | None = None) -> str:
        """A token a resource server must refuse with 401; ``kind`` in ``BAD_TOKEN_KINDS``."""
        claims = self.claims(resource=resource, scope=scope, subject=subject)
        if kind == "expired":
            claims["iat"] -= 7200
            claims["exp"] = claims["iat"] + 60
            return self.sign(claims)
        if kind == "other_audience":
            claims["aud"] = "https://other.example/mcp"
            return self.sign(claims)
        if kind == "other_issuer":
            claims["iss"] = "https://other-issuer.example"
            return self.sign(claims)
        if kind in ("unknown_key", "unknown_key_same_kid"):
            stranger = RSAKey.generate_key(2048, {"kid": "unknown-" + secrets.token_hex(4)})
            same = self.signing_key.kid if kind == "unknown_key_same_kid" else None
            return self.sign(claims, key=stranger, kid=same)
        if kind == "alg_none":
            header = {"alg": "none", "typ": "at+jwt", "kid": self.signing_key.kid}
            return ".".join([_b64(orjson.dumps(header)), _b64(orjson.dumps(claims)), ""])
        if kind == "hs256_public_key":
            header = {"alg": "HS256", "typ": "at+jwt", "kid": self.rsa_key.kid}
            signing_input = _b64(orjson.dumps(header)) + "." + _b64(orjson.dumps(claims))
            secret = self.rsa_key.as_pem(private=False)
            mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
            return signing_input + "." + _b64(mac)
        raise ValueError(f"unknown bad token kind: {kind}")

    # -- the Flask application -------------------------------------------------------------

    def _save_token(self, token: dict[str, Any], request: Any) -> None:
        user: Grantee | None = request.user
        client: Client = request.client
        claims = jwt.decode(token["access_token"], self.signing_key).claims
        issued = IssuedToken(
            client=client, access_token=token["access_token"],
            refresh_token=token.get("refresh_token"), scope=token.get("scope", ""),
            subject=user.subject if user else client.client_id,
            resource=user.resource if user else (), claims=claims,
            issued_at=time.time(), expires_in=int(token.get("expires_in", 0)))
        with self._lock:
            self.by_access_token[issued.access_token] = issued
            if issued.refresh_token:
                self.by_refresh_token[issued.refresh_token] = issued
        self.record("token", grant_type=request.payload.grant_type, client_id=client.client_id,
                    scope=issued.scope, resource=list(issued.resource),
                    refresh_token=issued.refresh_token is not None)

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        server = AuthorizationServer(
            app,
            query_client=self.clients.get,
            save_token=self._save_token,
        )
        server.register_token_generator("default", _TokenGenerator(self))
        server.register_extension(_Issuer(self))
        # Authlib instantiates grants and endpoints from their classes: a subclass per
        # server carries the server it belongs to.
        def own(cls: type[Any]) -> type[Any]:
            return type(cls.__name__, (cls,), {"owner": self})

        challenge = CodeChallenge(required=True)
        challenge.SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
        server.register_grant(own(_CodeGrant), [challenge])
        server.register_grant(own(_RefreshGrant))
        server.register_grant(own(_ClientCredentialsGrant))
        server.register_endpoint(own(_Registration))
        server.register_endpoint(own(_Introspection))
        server.register_endpoint(own(_Revocation))
        self._add_routes(app, server)
        return app

    def _add_routes(self, app: Flask, server: AuthorizationServer) -> None:
        path = self.path

        def oauth_metadata() -> Response:
            if "oauth" not in self.well_known:
                return Response("not found", status=404)
            return jsonify(self.metadata())

        def openid_configuration() -> Response:
            if "openid" not in self.well_known:
                return Response("not found", status=404)
            return jsonify(self.metadata(openid=True))

        def jwks() -> Response:
            return jsonify(self.jwks())

        def authorize() -> Any:
            self.record("authorize", client_id=flask_request.args.get("client_id"),
                        scope=flask_request.args.get("scope"),
                        resource=flask_request.args.getlist("resource"))
            grant = server.get_consent_grant(end_user=None)
            user = None if self.deny else Grantee(self.subject)
            return server.create_authorization_response(grant_user=user, grant=grant)

        def token() -> Any:
            return server.create_token_response()

        def register() -> Any:
            return server.create_endpoint_response("client_registration")

        def introspect() -> Any:
            return server.create_endpoint_response("introspection")

        def revoke() -> Any:
            return server.create_endpoint_response("revocation")

        app.add_url_rule(f"/.well-known/oauth-authorization-server{path}", "oauth_metadata",
                         oauth_metadata)
        app.add_url_rule(f"/.well-known/openid-configuration{path}", "openid_configuration",
                         openid_configuration)
        if path:
            app.add_url_rule(f"{path}/.well-known/openid-configuration", "openid_appended",
                             openid_configuration)
        app.add_url_rule(f"{path}/jwks", "jwks", jwks)
        app.add_url_rule(f"{path}/authorize", "authorize", authorize)
        app.add_url_rule(f"{path}/token", "token", token, methods=["POST"])
        app.add_url_rule(f"{path}/register", "register", register, methods=["POST"])
        app.add_url_rule(f"{path}/introspect", "introspect", introspect, methods=["POST"])
        app.add_url_rule(f"{path}/revoke", "revoke", revoke, methods=["POST"])

        @app.errorhandler(OAuth2Error)
        def oauth_error(error: OAuth2Error) -> Any:
            return server.handle_error_response(None, error)


@contextmanager
def running(**settings: Any) -> Iterator[OAuthServer]:
    """An :class:`OAuthServer` started for the ``with`` block."""
    server = OAuthServer(**settings).start()
    try:
        yield server
    finally:
        server.stop()
