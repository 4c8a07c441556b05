"""OAuth 2.1 for one MCP server: the settings, the grants kept between runs, and
:class:`OAuthAuth`, the :class:`~.hook.RequestAuth` that obtains, refreshes and steps up
access tokens.

How :class:`OAuthAuth` answers a transport (theory of operation):

- :meth:`~OAuthAuth.headers`: ``Authorization: Bearer`` with the token it holds, refreshed
  first when it expires within :data:`EXPIRY_LEEWAY` seconds (a short-lived one in the last
  quarter of its life) and a refresh token exists;
  nothing at all before the first authorization (the first request learns whether the
  server wants one). Holding a token costs one clock read per request.
- :meth:`~OAuthAuth.refused` after a **401**: refresh when it can (a token was sent and a
  refresh token exists); otherwise the whole flow: discovery from the challenge,
  registration, the authorization code grant through the :class:`~.agent.UserAgent`, the
  token request. Discovery runs again on every such 401, so a server that moved to another
  authorization server is followed there (and registered with anew).
- after a **403** ``insufficient_scope``: step up, asking for the union of the scopes
  requested before and the challenge's; when the token already carries every challenged
  scope, a new one would not help and the refusal stands.
- Every authorization after the last successful response counts; after
  :data:`MAX_ATTEMPTS` the refusal stands (no loop, however the server behaves). Concurrent
  refusals wait for one authorization (one lock) instead of starting their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

import aiohttp
from aiohttp import hdrs

from ...protocol.text import for_display
from .agent import AuthorizationFailed, HeadlessAgent, UserAgent
from .challenge import BearerChallenge, bearer_challenge
from .discovery import Discovery, discover, discover_metadata
from .dpop import DPoPProver, choose_prover, dpop_challenge
from .flow import PendingAuthorization, TokenResponse, exchange_code, refresh, revoke
from .machine import machine_grant
from .registration import ClientRegistration, register

__all__ = [
    "EXPIRY_LEEWAY",
    "MAX_ATTEMPTS",
    "MemoryTokenStore",
    "OAuthAuth",
    "OAuthSettings",
    "StoredGrant",
    "TokenStore",
]


@dataclass(frozen=True, slots=True)
class OAuthSettings:
    """How the client authorizes with one server (the ``oauth`` object of a config entry).

    Attributes:
        client_id, client_secret: pre-registered credentials (the first choice of the
            specification's registration order); ``None``: register otherwise.
        token_endpoint_auth_method: ``client_secret_basic``, ``client_secret_post`` or
            ``none``; ``None``: chosen from what the authorization server supports.
        scopes: the scopes to ask for; ``None``: chosen from the challenge or the protected
            resource metadata.
        redirect_port: the loopback redirect listener's port; ``None``: a random one.
        client_metadata_url: the HTTPS URL of our Client ID Metadata Document; ``None``:
            not offered.
        grant: ``authorization_code`` (a person approves) or ``client_credentials`` (a
            machine; the extension's grants are named here too).
        private_key_pem, signing_alg: the client's key for ``private_key_jwt``.
        dpop: bind tokens to a DPoP key: ``True`` always, ``False`` never, ``None`` when
            the MCP server's challenge asks for it and the authorization server offers it.
        extra: further settings of extension grants, by name.
    """

    client_id: str | None = None
    client_secret: str | None = None
    token_endpoint_auth_method: str | None = None
    scopes: tuple[str, ...] | None = None
    redirect_port: int | None = None
    client_metadata_url: str | None = None
    grant: str = "authorization_code"
    private_key_pem: str | None = None
    signing_alg: str | None = None
    dpop: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    def __repr__(self) -> str:  # never show the secret or the key
        secret = "***" if self.client_secret else None
        return (f"OAuthSettings(client_id={self.client_id!r}, client_secret={secret!r}, "
                f"grant={self.grant!r}, scopes={self.scopes!r})")


@dataclass(slots=True)
class StoredGrant:
    """What one authorization left that a later run can reuse: the tokens and the client
    registration they were issued to (the registration is reused even when the tokens are
    gone, so a client does not register again on every login).

    ``expires_at`` is a Unix time (``None``: the server did not say). :meth:`to_dict` and
    :meth:`from_dict` are the form a file store keeps.
    """

    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float | None = None
    scope: str | None = None
    token_type: str = "Bearer"
    issuer: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_endpoint_auth_method: str | None = None
    issued_at: float | None = None

    def due(self) -> bool:
        """Whether to renew the access token before using it: it expires within
        :data:`EXPIRY_LEEWAY` seconds, or, for a token that lives less than four times that,
        within the last quarter of its life (else a short-lived token would be renewed
        before every request)."""
        if self.expires_at is None:
            return False
        leeway = EXPIRY_LEEWAY
        if self.issued_at is not None:
            leeway = min(leeway, max(self.expires_at - self.issued_at, 0.0) / 4)
        return time.time() + leeway >= self.expires_at

    def expired(self, leeway: float = 0.0) -> bool:
        """Whether the access token is gone or expires within ``leeway`` seconds."""
        if self.access_token is None:
            return True
        return self.expires_at is not None and time.time() + leeway >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredGrant:
        """Read a stored grant, ignoring names it does not know and values of a wrong type."""
        known = {f.name for f in fields(cls)}
        kept: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            if name in ("expires_at", "issued_at"):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    kept[name] = float(value)
            elif isinstance(value, str):
                kept[name] = value
        return cls(**kept)

    def __repr__(self) -> str:  # tokens and secrets never reach a log
        return (f"StoredGrant(issuer={self.issuer!r}, client_id={self.client_id!r}, "
                f"scope={self.scope!r}, expires_at={self.expires_at!r}, "
                f"access_token={'***' if self.access_token else None}, "
                f"refresh_token={'***' if self.refresh_token else None})")


class TokenStore(Protocol):
    """Where grants live between runs, keyed by the resource (the MCP server's URL)."""

    def load(self, resource: str) -> StoredGrant | None: ...

    def save(self, resource: str, grant: StoredGrant) -> None: ...

    def delete(self, resource: str) -> bool: ...


class MemoryTokenStore:
    """A :class:`TokenStore` that lives as long as the process (the default)."""

    def __init__(self) -> None:
        self._grants: dict[str, StoredGrant] = {}

    def load(self, resource: str) -> StoredGrant | None:
        return self._grants.get(resource)

    def save(self, resource: str, grant: StoredGrant) -> None:
        self._grants[resource] = grant

    def delete(self, resource: str) -> bool:
        return self._grants.pop(resource, None) is not None


logger = logging.getLogger(__name__)

EXPIRY_LEEWAY = 30.0  # refresh a token this many seconds before it expires
MAX_ATTEMPTS = 3  # authorizations in a row without a successful response in between
AS_TIMEOUT = 30.0  # seconds for each request to the authorization server
OFFLINE_ACCESS = "offline_access"


def _challenge_values(headers: Mapping[str, str]) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(hdrs.WWW_AUTHENTICATE, []))
    value = headers.get(hdrs.WWW_AUTHENTICATE)
    return [value] if value else []


def _retrieve(task: asyncio.Task[bool]) -> None:
    """Mark a reaction's outcome seen: nobody may be left waiting for it."""
    if not task.cancelled():
        task.exception()


def _union(*groups: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        for scope in group:
            seen.setdefault(scope, None)
    return tuple(seen)


class OAuthAuth:
    """The :class:`~.hook.RequestAuth` of one MCP server that speaks OAuth 2.1 (the module
    docstring says how it behaves).

    Args:
        server_url: the MCP endpoint (what the token is for, and the token store's key).
        settings: the server's ``oauth`` settings (pre-registered client, scopes, ...).
        store: where grants are kept between runs (default: in memory).
        agent: who takes the authorization URL to be approved (default: a
            :class:`~.agent.HeadlessAgent`).
        timeout: seconds for each request to the authorization server.
    """

    def __init__(self, server_url: str, settings: OAuthSettings | None = None, *,
                 store: TokenStore | None = None, agent: UserAgent | None = None,
                 timeout: float = AS_TIMEOUT) -> None:
        self.server_url = server_url
        self.settings = settings or OAuthSettings()
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.agent: UserAgent = agent if agent is not None else HeadlessAgent()
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._reaction: asyncio.Task[bool] | None = None  # the refusal being handled
        self._attempts = 0
        self._redirect_uri: str | None = None
        self._discovery: Discovery | None = None
        self._registration: ClientRegistration | None = None
        self._requested: tuple[str, ...] = ()
        self._grant: StoredGrant | None = self.store.load(server_url)
        self._header: dict[str, str] | None = None
        self._dpop: DPoPProver | None = None  # this run's key, once tokens are bound to it
        self._dpop_asked = False  # the server's challenge used the DPoP scheme
        if self._grant is not None and self._grant.token_type.lower() == "dpop":
            # bound to the key of an earlier run, which is gone: only the client is reused
            self._grant.access_token = self._grant.refresh_token = None
        if self._grant is not None and self._grant.access_token:
            self._header = self._bearer(self._grant.access_token)
            self._requested = tuple((self._grant.scope or "").split())

    # -- what the transports ask -----------------------------------------------------

    async def headers(self, method: str, url: str) -> dict[str, str]:
        """The ``Authorization`` header (a shared dict: do not change it)."""
        header = self._header
        if header is None:
            return {}
        grant = self._grant
        if grant is not None and grant.due():
            async with self._lock:
                if self._header is header:  # nobody refreshed it while we waited
                    await self._refresh_or_forget()
            header = self._header or {}
        if self._dpop is not None and header and self._grant is not None \
                and self._grant.access_token:  # a fresh proof for each request
            return {**header, "DPoP": self._dpop.proof(method, url,
                                                        access_token=self._grant.access_token)}
        return header

    def observe(self, method: str, url: str, status: int,
                headers: Mapping[str, str]) -> None:
        if 200 <= status < 300:
            self._attempts = 0
        if self._dpop is not None:
            self._dpop.observe(url, headers, status)

    async def refused(self, method: str, url: str, status: int,
                      headers: Mapping[str, str]) -> bool:
        """React in a task of its own that the request only waits for: a request given up
        (its timeout, a cancelled probe) leaves the authorization running (a person may be
        at the browser), and a refusal arriving meanwhile waits for it instead of starting
        another."""
        task = self._reaction
        if task is None or task.done():
            task = self._reaction = asyncio.create_task(
                self._react(method, url, status, headers), name="mcp-oauth")
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def settle(self) -> bool:
        task = self._reaction
        if task is None:
            return False
        try:
            return bool(await asyncio.shield(task))
        except AuthorizationFailed:
            return False

    async def _react(self, method: str, url: str, status: int,
                     headers: Mapping[str, str]) -> bool:
        sent = self._header
        if self._dpop is not None and self._dpop.retry_for_nonce(url, status, headers):
            return True  # the same token, a proof with the server's nonce
        challenge = bearer_challenge(_challenge_values(headers))
        if challenge is None and (challenge := dpop_challenge(headers)) is not None:
            self._dpop_asked = True
        async with self._lock:
            if self._header is not None and self._header is not sent:
                return True  # another request authorized while this one waited
            try:
                if status == 401:
                    return await self._unauthorized(challenge, sent is not None)
                if status == 403:
                    return await self._insufficient(challenge)
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise AuthorizationFailed(
                    f"authorization for {for_display(self.server_url, 200)} failed: "
                    f"{for_display(str(exc) or type(exc).__name__, 200)}") from None
        return False

    # -- public helpers --------------------------------------------------------------

    @property
    def grant(self) -> StoredGrant | None:
        """The grant held now (tokens masked in its repr)."""
        return self._grant

    @property
    def granted_scopes(self) -> tuple[str, ...]:
        grant = self._grant
        if grant is None or grant.scope is None:
            return self._requested
        return tuple(grant.scope.split())

    async def login(self, scopes: Iterable[str] | None = None) -> StoredGrant:
        """Authorize now, without waiting for a 401 (``mcp-client login``): discovery
        through the well-known URIs, then the flow."""
        async with self._lock:
            await self._authorize(None, tuple(scopes) if scopes is not None else None)
        assert self._grant is not None
        return self._grant

    async def revoke(self) -> bool:
        """Ask the authorization server that issued the stored tokens to revoke them (RFC
        7009: the refresh token, which revokes its access tokens at most servers, then the
        access token); whether it confirmed one. Nothing is sent where the server offers no
        revocation endpoint; nothing here raises."""
        grant = self._grant or self.store.load(self.server_url)
        if grant is None or grant.issuer is None:
            return False
        tokens = [(t, hint) for t, hint in ((grant.refresh_token, "refresh_token"),
                                            (grant.access_token, "access_token")) if t]
        if not tokens:
            return False
        registration = ClientRegistration(
            grant.client_id, grant.client_secret, grant.token_endpoint_auth_method or "none",
            grant.issuer, "stored") if grant.client_id else None
        try:
            async with self._session() as http:
                metadata = await discover_metadata(http, grant.issuer)
                if metadata is None:
                    return False
                confirmed = [await revoke(http, metadata, registration, token, hint)
                             for token, hint in tokens]
        except AuthorizationFailed as exc:
            logger.info("%s: cannot revoke: %s", self.server_url, exc)
            return False
        return any(confirmed)

    def logout(self) -> bool:
        """Forget the tokens (here and in the store); whether there were any."""
        self._header = None
        self._grant = None
        self._registration = None
        return self.store.delete(self.server_url)

    async def close(self) -> None:
        """Stop an authorization in progress and release the user agent."""
        task, self._reaction = self._reaction, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.agent.close()

    # -- reactions -------------------------------------------------------------------

    async def _unauthorized(self, challenge: BearerChallenge | None, sent_token: bool) -> bool:
        if self._attempts >= MAX_ATTEMPTS:
            logger.warning("%s: still refused after %d authorizations; giving up",
                           self.server_url, self._attempts)
            return False
        self._attempts += 1
        grant = self._grant
        if sent_token and grant is not None and grant.refresh_token and (
                challenge is None or challenge.error in (None, "invalid_token")) and (
                await self._refresh()):
            return True
        await self._authorize(challenge, None)
        return True

    async def _insufficient(self, challenge: BearerChallenge | None) -> bool:
        if challenge is None or challenge.error != "insufficient_scope":
            return False
        wanted = challenge.scopes
        if wanted and set(wanted) <= set(self.granted_scopes):
            logger.warning("%s: refused for scopes the token already has (%s); not stepping "
                           "up", self.server_url, for_display(" ".join(wanted), 200))
            return False
        if self._attempts >= MAX_ATTEMPTS:
            logger.warning("%s: insufficient scope after %d authorizations; giving up",
                           self.server_url, self._attempts)
            return False
        self._attempts += 1
        logger.info("%s: stepping up to scopes %s", self.server_url,
                    for_display(" ".join(_union(self._requested, wanted)), 200))
        await self._authorize(challenge, _union(self._requested, wanted))
        return True

    # -- the flow --------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def _authorize(self, challenge: BearerChallenge | None,
                         scopes: tuple[str, ...] | None) -> None:
        """Discovery, registration, the authorization code grant; keeps the tokens."""
        machine = self.settings.grant != "authorization_code"
        if self._redirect_uri is None and not machine:
            self._redirect_uri = await self.agent.start()
        async with self._session() as http:
            discovery = await discover(http, self.server_url, challenge)
            self._discovery = discovery
            scope = self._choose_scope(challenge, discovery, scopes)
            metadata = discovery.metadata
            self._dpop = choose_prover(self.settings.dpop,
                                       metadata.raw.get("dpop_signing_alg_values_supported"),
                                       resource_asks=self._dpop_asked)
            if machine:  # a client acting as itself: no person, no registration
                tokens = await machine_grant(
                    self.settings, metadata.token_endpoint_auth_methods_supported).obtain(
                    http, token_endpoint=metadata.token_endpoint,
                    issuer=discovery.issuer or metadata.token_endpoint,
                    resource=discovery.resource, scope=scope, dpop=self._dpop,
                    timeout=self.timeout)
                self._requested = tuple(scope.split()) if scope else ()
                self._keep(tokens, None, discovery)
                return
            registration = await self._client(http, discovery, scope)
            assert self._redirect_uri is not None
            pending = PendingAuthorization(discovery.metadata, registration,
                                           self._redirect_uri, discovery.resource, scope)
            url = pending.url()
            logger.info("%s: authorizing at %s", self.server_url,
                        for_display(str(discovery.issuer or discovery.metadata
                                        .authorization_endpoint), 200))
            code = pending.check(await self.agent.authorize(url))
            tokens = await exchange_code(http, pending, code, dpop=self._dpop)
        self._requested = tuple(scope.split()) if scope else ()
        self._keep(tokens, registration, discovery)

    async def _client(self, http: aiohttp.ClientSession, discovery: Discovery,
                      scope: str | None) -> ClientRegistration:
        """The registration to use at this authorization server (reused when it is its)."""
        issuer = discovery.issuer
        known = self._registration
        if known is not None and known.usable_with(issuer):
            return known
        grant = self._grant
        if known is None and grant is not None and grant.client_id and grant.issuer == issuer \
                and not self.settings.client_id:
            known = ClientRegistration(grant.client_id, grant.client_secret,
                                       grant.token_endpoint_auth_method or "none", issuer,
                                       "stored")
        else:
            if known is not None:
                logger.info("%s: the authorization server changed to %s; registering anew",
                            self.server_url, for_display(str(issuer), 200))
            assert self._redirect_uri is not None
            known = await register(
                http, discovery.metadata, self._redirect_uri,
                client_id=self.settings.client_id, client_secret=self.settings.client_secret,
                auth_method=self.settings.token_endpoint_auth_method,
                client_metadata_url=self.settings.client_metadata_url, scope=scope)
        self._registration = known
        return known

    def _choose_scope(self, challenge: BearerChallenge | None, discovery: Discovery,
                      scopes: tuple[str, ...] | None) -> str | None:
        """The specification's scope selection: the step-up's union, else the configured
        scopes, else the challenge's, else the resource's ``scopes_supported``, else none;
        joined with what was asked before, plus ``offline_access`` where the authorization
        server offers it."""
        if scopes is not None:
            chosen = scopes
        elif self.settings.scopes is not None:
            chosen = self.settings.scopes
        elif challenge is not None and challenge.scopes:
            chosen = challenge.scopes
        elif discovery.protected_resource is not None and \
                discovery.protected_resource.scopes_supported:
            chosen = discovery.protected_resource.scopes_supported
        else:
            chosen = ()
        if self._grant is not None and self._grant.issuer == discovery.issuer:
            chosen = _union(self._requested, chosen)
        metadata = discovery.metadata
        if (chosen and OFFLINE_ACCESS not in chosen and metadata.scopes_supported
                and OFFLINE_ACCESS in metadata.scopes_supported
                and "refresh_token" in (metadata.grant_types_supported or ("refresh_token",))):
            chosen = (*chosen, OFFLINE_ACCESS)
        return " ".join(chosen) or None

    def _keep(self, tokens: TokenResponse, registration: ClientRegistration | None,
              discovery: Discovery, previous: StoredGrant | None = None) -> None:
        scheme = tokens.token_type.lower()
        if scheme != "bearer" and not (scheme == "dpop" and self._dpop is not None):
            raise AuthorizationFailed(f"the token endpoint issued a "
                                      f"'{for_display(tokens.token_type, 40)}' token; this "
                                      "client uses Bearer tokens (and DPoP ones it asked for)")
        grant = StoredGrant(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token or (previous.refresh_token if previous else None),
            expires_at=tokens.expires_at,
            issued_at=time.time(),
            scope=tokens.scope if tokens.scope is not None else (
                " ".join(self._requested) or None),
            token_type="DPoP" if scheme == "dpop" else "Bearer",
            issuer=discovery.issuer,
            client_id=registration.client_id if registration else None,
            client_secret=registration.client_secret if registration else None,
            token_endpoint_auth_method=registration.auth_method if registration else None,
        )
        self._grant = grant
        self._header = ({hdrs.AUTHORIZATION: f"DPoP {tokens.access_token}"}
                        if scheme == "dpop" else self._bearer(tokens.access_token))
        self.store.save(self.server_url, grant)
        logger.info("%s: authorized by %s (scope %s)", self.server_url,
                    for_display(str(discovery.issuer), 200),
                    for_display(grant.scope or "(none)", 200))

    async def _refresh(self) -> bool:
        """Trade the refresh token for a new access token; ``False`` when that fails."""
        grant = self._grant
        if grant is None or not grant.refresh_token:
            return False
        async with self._session() as http:
            discovery = self._discovery
            if discovery is None:
                discovery = self._discovery = await discover(http, self.server_url, None)
            if discovery.issuer != grant.issuer:
                return False  # a refresh token goes to the server that issued it, only
            registration = ClientRegistration(
                grant.client_id, grant.client_secret,
                grant.token_endpoint_auth_method or "none", grant.issuer,
                "stored") if grant.client_id else None
            try:
                tokens = await refresh(http, discovery.metadata, registration,
                                       grant.refresh_token, discovery.resource,
                                       dpop=self._dpop)
            except AuthorizationFailed as exc:
                logger.info("%s: refresh failed (%s); authorizing again", self.server_url, exc)
                grant.refresh_token = None
                return False
        self._keep(tokens, registration, discovery, grant)
        return True

    async def _refresh_or_forget(self) -> None:
        """Before expiry: refresh (a machine grant asks again: it needs nobody), or drop
        the token (the next 401 authorizes again)."""
        try:
            if self.settings.grant != "authorization_code":
                await self._authorize(None, self._requested or None)
                return
            if await self._refresh():
                return
        except AuthorizationFailed as exc:
            logger.info("%s: cannot refresh: %s", self.server_url, exc)
        if self._grant is not None and self._grant.refresh_token is None:
            self._header = None

    @staticmethod
    def _bearer(token: str) -> dict[str, str]:
        return {hdrs.AUTHORIZATION: f"Bearer {token}"}
