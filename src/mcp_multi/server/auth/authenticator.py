"""Who is calling: the bearer token of an MCP request turned into a
:class:`~.principal.Principal`, or the refusal that tells the client how to get a good one.

The app's guard asks :meth:`Authenticator.authenticate` for every request to an MCP endpoint
(``/mcp``, the WebSocket upgrade, the SSE ``GET`` and its ``POST``\\ s) and puts the caller on
the request under :data:`PRINCIPAL`; each endpoint binds it to the session it opens
(``ServerSession.principal``) and refuses a later request on that session from anyone else
(see :func:`same_caller`).

A token is asked, in order, of:

1. the **token lookups** (:attr:`Authenticator.token_lookups`): static tokens, each a
   callable ``token -> Principal | None`` that compares in constant time. The policy's
   ``principal_for_token`` is registered first when a policy is loaded; ``--auth-token`` is
   one too (its caller is ``token:static``);
2. the **verifier** (JWT or introspection, :mod:`.verifier`), when ``--auth-issuer`` is set.

Refusals (RFC 6750 section 3, RFC 9728 section 5.1)::

    no token                 401  Bearer resource_metadata="…", scope="…"
    a token that is no good  401  Bearer error="invalid_token", resource_metadata=…, scope=…
    token lacks --auth-scopes 403 Bearer error="insufficient_scope", scope="…", resource_metadata=…
    issuer cannot be asked   503  Retry-After (the token may be fine: a client keeps it)

The client learns nothing of why a token failed (expired, signature, audience...): that goes
to the server's debug log, never with the token.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from .metadata import ProtectedResource, metadata_url
from .principal import ANONYMOUS, Principal
from .verifier import InvalidToken, IssuerUnavailable, TokenVerifier

__all__ = [
    "PRINCIPAL",
    "STATIC_PRINCIPAL",
    "Authenticator",
    "Refusal",
    "TokenLookup",
    "bearer_token",
    "caller_of",
    "challenge",
    "continues",
    "same_caller",
    "static_token_lookup",
]

logger = logging.getLogger(__name__)

# Where the guard leaves the caller on an aiohttp request (read it with caller_of).
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
# The caller of the --auth-token token.
STATIC_PRINCIPAL = Principal("token:static")

TokenLookup = Callable[[str], Principal | None]


@dataclass(frozen=True, slots=True)
class Refusal:
    """How to refuse a request: status, the JSON-RPC error's message, headers."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (the scheme is
    case-insensitive); ``""`` for a header of another scheme or none at all."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(*, error: str | None = None, scope: str | None = None,
              resource_metadata: str | None = None) -> str:
    """A ``WWW-Authenticate: Bearer`` challenge with the parameters given."""
    params = [f"{name}={_quoted(value)}" for name, value in (
        ("error", error), ("scope", scope), ("resource_metadata", resource_metadata))
        if value]
    return "Bearer " + ", ".join(params) if params else "Bearer"


def static_token_lookup(token: str, principal: Principal = STATIC_PRINCIPAL) -> TokenLookup:
    """A lookup that knows one static ``token`` (compared in constant time)."""
    expected = token.encode()

    def lookup(given: str) -> Principal | None:
        return principal if hmac.compare_digest(given.encode(), expected) else None

    return lookup


def same_caller(a: Principal, b: Principal) -> bool:
    """Whether two principals are the same caller (the subject, at the same issuer: a
    static token's ``token:NAME`` never matches a subject some issuer chose)."""
    return a.subject == b.subject and a.issuer == b.issuer


class _Owned(Protocol):
    principal: Principal


def caller_of(request: web.BaseRequest) -> Principal:
    """The caller the guard found for an aiohttp request (anonymous when none is checked)."""
    try:  # (Mapping.get would raise and catch a KeyError for every anonymous request)
        caller: Principal = request[PRINCIPAL]
    except KeyError:
        return ANONYMOUS
    return caller


def continues(session: _Owned, request: web.BaseRequest) -> bool:
    """Whether ``request`` may go on with ``session``: it comes from the caller that opened
    it. If so the session takes the request's principal (a refreshed token may carry new
    scopes or a later expiry); if not, the endpoint answers as for a session that does not
    exist, so nobody learns that another caller's session id is live."""
    caller = caller_of(request)
    if caller is session.principal:
        return True
    if not same_caller(caller, session.principal):
        logger.info("a request for a session of another caller was refused")
        return False
    session.principal = caller
    return True


class Authenticator:
    """The server's answer to "who sends this request?".

    Attributes:
        token_lookups: static token lookups, asked in order before the verifier (the seam
            the policy plugs into: ``authenticator.token_lookups.insert(0, lookup)``).
        verifier: JWT or introspection verifier; ``None`` without ``--auth-issuer``.
        resource: the protected resource metadata; ``None`` without ``--auth-issuer``.
        required_scopes: scopes every token from the issuer must grant (``--auth-scopes``);
            static tokens are trusted as configured and need none.
        required: whether a request without a token is refused. False on a server with no
            credentials of its own (a policy's static tokens only): a request without a
            token is then :data:`~.principal.ANONYMOUS`, but a token nobody knows is still
            refused (401), never taken for no token.
    """

    def __init__(self, *, token_lookups: list[TokenLookup] | None = None,
                 verifier: TokenVerifier | None = None,
                 resource: ProtectedResource | None = None,
                 required_scopes: tuple[str, ...] = (), required: bool | None = None) -> None:
        self.token_lookups = list(token_lookups or ())
        self.verifier = verifier
        self.resource = resource
        self.required_scopes = frozenset(required_scopes)
        self._scope_text = " ".join(required_scopes)
        self.required = bool(self.token_lookups or verifier) if required is None else required

    @property
    def active(self) -> bool:
        """Whether requests are looked at at all (else every caller is anonymous)."""
        return self.required or bool(self.token_lookups)

    async def authenticate(self, path: str, authorization: str | None) -> Principal | Refusal:
        """The caller of a request to ``path`` with this ``Authorization`` header."""
        token = bearer_token(authorization)
        if not token:
            if self.required:
                return self._unauthorized(path, invalid=False)
            return ANONYMOUS
        for lookup in self.token_lookups:
            principal = lookup(token)
            if principal is not None:
                return principal
        if self.verifier is None:
            return self._unauthorized(path, invalid=True)
        try:
            principal = await self.verifier.verify(token)
        except InvalidToken as exc:
            logger.debug("bearer token refused: %s", exc)
            return self._unauthorized(path, invalid=True)
        except IssuerUnavailable:
            return Refusal(503, "Service Unavailable: the authorization server cannot be "
                                "reached; retry later", {"Retry-After": "5"})
        if not self.required_scopes <= principal.scopes:
            return Refusal(403, "Forbidden: the access token lacks a required scope",
                           {"WWW-Authenticate": self._challenge(path, "insufficient_scope")})
        return principal

    def _unauthorized(self, path: str, *, invalid: bool) -> Refusal:
        error = "invalid_token" if invalid else None
        return Refusal(401, "Unauthorized: a valid bearer token is required",
                       {"WWW-Authenticate": self._challenge(path, error)})

    def _challenge(self, path: str, error: str | None) -> str:
        resource = self.resource
        if resource is None or not resource.bound:
            return challenge(error=error)
        return challenge(error=error, scope=self._scope_text or None,
                         resource_metadata=metadata_url(resource.resource_for(path)))
