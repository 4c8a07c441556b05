"""The authorization code grant with PKCE, resource indicators and issuer identification,
and the token endpoint requests (code exchange, refresh).

One :class:`PendingAuthorization` is the per-request record the specification asks for:
the PKCE verifier (S256 only), the ``state``, the ``resource`` and the issuer recorded from
the validated metadata before the user agent leaves. :meth:`~PendingAuthorization.check`
applies, in this order, before the code goes anywhere:

1. the ``state`` must be ours (compared in constant time), or nothing else is looked at;
2. RFC 9207: with ``authorization_response_iss_parameter_supported`` an ``iss`` must be
   present; a present ``iss`` must equal the recorded issuer as a plain string (no case
   folding, no trailing-slash or port normalisation), advertised or not. On a mismatch the
   response's ``error`` is neither acted on nor shown;
3. an ``error`` ends the flow (shown escaped and clipped);
4. a ``code`` must be there.

Token requests authenticate the client by the registration's method:
``client_secret_basic`` (RFC 6749 section 2.3.1: both parts form-encoded, then Base64),
``client_secret_post`` or ``none`` (``client_id`` in the body), and always carry
``resource``. A token response is bounded (:data:`MAX_TOKEN_BYTES`) and must be a JSON
object with an ``access_token`` of type Bearer; ``expires_in`` becomes an absolute time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import aiohttp
import orjson
from aiohttp import hdrs

from ...protocol.text import for_display
from .agent import AuthorizationFailed
from .client_auth import PublicClient, client_authentication
from .discovery import AuthServerMetadata, oauth_error_text, read_bounded
from .dpop import DPoPProver
from .registration import ClientRegistration

__all__ = [
    "MAX_TOKEN_BYTES",
    "PendingAuthorization",
    "TokenResponse",
    "code_challenge",
    "exchange_code",
    "refresh",
    "request_token",
    "revoke",
]

logger = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 64 * 1024
MAX_TOKEN_LIFETIME = 10 * 365 * 86400  # an expires_in beyond this is read as "no expiry"


def code_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of a verifier (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(slots=True)
class PendingAuthorization:
    """One authorization in flight (see the module docstring)."""

    metadata: AuthServerMetadata
    registration: ClientRegistration
    redirect_uri: str
    resource: str
    scope: str | None
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def issuer(self) -> str | None:
        return self.metadata.issuer

    def url(self) -> str:
        """The authorization request URL (the endpoint's own query is kept)."""
        if self.metadata.code_challenge_methods_supported is not None and (
                "S256" not in self.metadata.code_challenge_methods_supported):
            raise AuthorizationFailed("the authorization server does not support PKCE with "
                                      "S256; refusing to authorize without it")
        if self.metadata.issuer is not None and (
                self.metadata.code_challenge_methods_supported is None):
            raise AuthorizationFailed("the authorization server's metadata does not list "
                                      "code_challenge_methods_supported (no PKCE); refusing")
        params = {
            "response_type": "code",
            "client_id": self.registration.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": code_challenge(self.verifier),
            "code_challenge_method": "S256",
            "state": self.state,
            "resource": self.resource,
        }
        if self.scope:
            params["scope"] = self.scope
        parts = urlsplit(self.metadata.authorization_endpoint)
        query = f"{parts.query}&" if parts.query else ""
        query += urlencode(params, quote_via=quote)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def check(self, query: dict[str, str]) -> str:
        """The authorization code of the redirect's ``query``, after the checks of the
        module docstring.

        Raises:
            AuthorizationFailed: a check failed or the server refused.
        """
        state = query.get("state", "")
        if not hmac.compare_digest(state.encode(), self.state.encode()):
            raise AuthorizationFailed("the authorization response's state is not ours; "
                                      "ignoring it")
        iss = query.get("iss")
        if iss is None:
            if self.metadata.iss_parameter_supported:
                raise AuthorizationFailed("the authorization response lacks the iss parameter "
                                          "its server promised (RFC 9207); refusing it")
        elif self.issuer is None or iss != self.issuer:
            raise AuthorizationFailed(
                f"the authorization response comes from issuer '{for_display(iss, 200)}', "
                f"not '{for_display(str(self.issuer), 200)}' (RFC 9207); refusing it")
        if "error" in query:
            description = query.get("error_description")
            raise AuthorizationFailed(
                f"the authorization server refused: {for_display(query['error'], 100)}"
                + (f" ({for_display(description, 200)})" if description else ""))
        code = query.get("code")
        if not code:
            raise AuthorizationFailed("the authorization response carries no code")
        return code


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A token endpoint's answer (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str
    expires_at: float | None
    refresh_token: str | None
    scope: str | None

    def __repr__(self) -> str:
        return (f"TokenResponse(token_type={self.token_type!r}, scope={self.scope!r}, "
                f"expires_at={self.expires_at!r}, refresh_token="
                f"{'***' if self.refresh_token else None})")


def _client_auth(registration: ClientRegistration, form: dict[str, str],
                 headers: dict[str, str], audience: str) -> None:
    """Authenticate one token request as ``registration`` (a method whose credentials are
    missing, or one this client cannot perform, sends the client id alone)."""
    try:
        how = client_authentication(registration.auth_method,
                                    client_id=registration.client_id,
                                    client_secret=registration.client_secret)
    except ValueError:
        how = PublicClient(registration.client_id)
    how.apply(form, headers, audience=audience)


async def request_token(http: aiohttp.ClientSession, metadata: AuthServerMetadata,
                        registration: ClientRegistration | None, form: dict[str, str],
                        *, extra_headers: dict[str, str] | None = None,
                        dpop: DPoPProver | None = None) -> TokenResponse:
    """POST ``form`` to the token endpoint, authenticated as ``registration``.

    Raises:
        AuthorizationFailed: unreachable, refused, or an answer we cannot use.
    """
    headers = {hdrs.ACCEPT: "application/json", **(extra_headers or {})}
    form = dict(form)
    if registration is not None:
        _client_auth(registration, form, headers, metadata.issuer or "")
    url = metadata.token_endpoint
    try:
        for _attempt in range(2):  # DPoP (RFC 9449 section 8): once more with its nonce
            if dpop is not None:
                headers["DPoP"] = dpop.proof("POST", url)
            async with http.post(url, data=form, headers=headers,
                                 allow_redirects=False) as response:
                raw = await read_bounded(response, MAX_TOKEN_BYTES, url)
                status = response.status
                fresh = dpop is not None and dpop.observe(url, response.headers, status)
            if not (fresh and status == 400 and b"use_dpop_nonce" in raw):
                break
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise AuthorizationFailed(f"cannot reach the token endpoint "
                                  f"{for_display(url, 300)}: "
                                  f"{for_display(str(exc) or type(exc).__name__, 200)}") from None
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if status != 200 or not isinstance(answer, dict):
        raise AuthorizationFailed(f"the token endpoint refused {form.get('grant_type')}: "
                                  f"HTTP {status}{oauth_error_text(answer)}")
    return parse_token_response(answer)


def parse_token_response(answer: dict[str, Any]) -> TokenResponse:
    """A token response read and checked (see the module docstring)."""
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise AuthorizationFailed("the token endpoint answered no access_token")
    token_type = answer.get("token_type")
    if not isinstance(token_type, str):
        raise AuthorizationFailed("the token endpoint answered no token_type")
    expires_in = answer.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and (
            0 <= expires_in <= MAX_TOKEN_LIFETIME):
        expires_at = time.time() + float(expires_in)
    refresh_token = answer.get("refresh_token")
    scope = answer.get("scope")
    return TokenResponse(
        access_token=token,
        token_type=token_type,
        expires_at=expires_at,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token
        else None,
        scope=scope if isinstance(scope, str) else None,
    )


async def exchange_code(http: aiohttp.ClientSession, pending: PendingAuthorization,
                        code: str, *, dpop: DPoPProver | None = None) -> TokenResponse:
    """Trade an authorization code (and the PKCE verifier) for tokens."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": pending.redirect_uri,
        "code_verifier": pending.verifier,
        "resource": pending.resource,
    }
    return await request_token(http, pending.metadata, pending.registration, form, dpop=dpop)


async def revoke(http: aiohttp.ClientSession, metadata: AuthServerMetadata,
                 registration: ClientRegistration | None, token: str, hint: str) -> bool:
    """Ask the authorization server to revoke ``token`` (RFC 7009; ``hint`` is
    ``refresh_token`` or ``access_token``); whether it said so (200). Never raises: a token
    the server cannot revoke is forgotten by the client all the same."""
    url = metadata.revocation_endpoint
    if url is None:
        return False
    headers: dict[str, str] = {hdrs.ACCEPT: "application/json"}
    form = {"token": token, "token_type_hint": hint}
    if registration is not None:
        _client_auth(registration, form, headers, metadata.issuer or "")
    try:
        async with http.post(url, data=form, headers=headers,
                             allow_redirects=False) as response:
            await read_bounded(response, MAX_TOKEN_BYTES, url)
            if response.status != 200:
                logger.info("revocation at %s refused: HTTP %s", for_display(url, 300),
                            response.status)
            return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError, AuthorizationFailed) as exc:
        logger.info("revocation at %s failed: %s", for_display(url, 300),
                    for_display(str(exc) or type(exc).__name__, 200))
        return False


async def refresh(http: aiohttp.ClientSession, metadata: AuthServerMetadata,
                  registration: ClientRegistration | None, refresh_token: str,
                  resource: str, scope: str | None = None, *,
                  dpop: DPoPProver | None = None) -> TokenResponse:
    """A new access token for a refresh token (RFC 6749 section 6)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "resource": resource}
    if scope:
        form["scope"] = scope
    return await request_token(http, metadata, registration, form, dpop=dpop)
