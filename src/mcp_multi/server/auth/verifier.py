"""Access tokens checked against the authorization server that issued them.

The server trusts one issuer (``--auth-issuer``). Its metadata is discovered the way MCP
clients discover it (RFC 8414 first, then OpenID Connect Discovery; path insertion before
path appending) and must name that very issuer. Tokens are then checked one of two ways:

- **JWT** (RFC 9068): the signature against the issuer's published keys (``jwks_uri``), with
  an allow-list of asymmetric algorithms (never ``none``, never HMAC: a public key is no
  secret), and the claims: ``iss`` exactly the issuer, ``aud`` naming this resource, ``exp``
  and ``nbf`` with a small leeway. The keys are cached; a token signed with a key the cache
  does not know makes it fetch them again, at most once per :data:`KEY_REFRESH_INTERVAL`, so
  a flood of tokens with made-up ``kid`` values costs the issuer one request, not thousands.
- **Introspection** (RFC 7662), when the issuer offers an ``introspection_endpoint`` and the
  server was given client credentials for it: the issuer says whether the token is active;
  its answer is cached briefly (bounded), by the token's digest.

Everything fetched is bounded (:data:`MAX_DOCUMENT_BYTES`, ``fetch_timeout``). An issuer that
cannot be reached is :class:`IssuerUnavailable` (the guard answers 503: the token may be
fine), and after a failure the issuer is left alone for :data:`RETRY_AFTER` seconds, so
requests are answered at once instead of each waiting for the same timeout.

Errors::

    TokenError
     ├── InvalidToken        the token is not good here (401 invalid_token); no detail
     └── IssuerUnavailable   the issuer could not be asked (503)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from ...protocol.text import for_display
from .principal import Principal

__all__ = [
    "ALLOWED_ALGORITHMS",
    "InvalidToken",
    "IssuerClient",
    "IssuerUnavailable",
    "IssuerVerifier",
    "JWTVerifier",
    "TokenError",
    "TokenIntrospector",
    "TokenVerifier",
    "canonical_resource",
    "discovery_urls",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# Asymmetric signatures only: a verifier holding a public key must never accept a MAC made
# with it (HS256 "signed" with the PEM of the public key), nor an unsigned token.
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                "ES256", "ES384", "ES512", "EdDSA", "Ed25519"})
# RFC 9068 asks for "at+jwt"; many issuers still write "JWT" or nothing.
_ACCEPTED_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})
LEEWAY = 30  # seconds of clock skew allowed on exp / nbf / iat
MAX_TOKEN_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 256 * 1024  # metadata, JWKS, an introspection answer
MAX_KEYS = 64
KEY_REFRESH_INTERVAL = 30.0  # at most one JWKS fetch per this many seconds for unknown kids
KEY_MAX_AGE = 3600.0  # keys are fetched again after this long anyway
RETRY_AFTER = 5  # seconds the issuer is left alone after it could not be reached
INTROSPECTION_TTL = 30.0  # an active answer is reused at most this long (and never past exp)
INTROSPECTION_NEGATIVE_TTL = 5.0
INTROSPECTION_CACHE_SIZE = 4096
VERIFIED_CACHE_SIZE = 1024


class TokenError(Exception):
    """A bearer token could not be accepted."""


class InvalidToken(TokenError):
    """The token is malformed, forged, expired, or not meant for this server. Its message is
    for the server's log at debug level only: the client is told nothing more than
    ``invalid_token``."""


class IssuerUnavailable(TokenError):
    """The authorization server's metadata, keys or introspection could not be had."""


class TokenVerifier(Protocol):
    """What the guard asks about a bearer token it does not know."""

    async def verify(self, token: str) -> Principal:
        """The caller ``token`` stands for; raises :class:`TokenError`."""
        ...


def canonical_resource(url: str) -> str:
    """``url`` as a resource identifier is compared: scheme and host lowercased, no default
    port spelled out differently, no trailing slash, no fragment (RFC 8707, MCP's
    "canonical server URI")."""
    parts = urlsplit(url.strip())
    netloc = parts.netloc.lower()
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{netloc}{path}{query}"


def discovery_urls(issuer: str) -> list[str]:
    """Where the metadata of ``issuer`` may be, in the order MCP gives (RFC 8414 with path
    insertion, OpenID with path insertion, OpenID appended to the path)."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if not path:
        return [f"{origin}/.well-known/oauth-authorization-server",
                f"{origin}/.well-known/openid-configuration"]
    return [f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}/.well-known/openid-configuration{path}",
            f"{origin}{path}/.well-known/openid-configuration"]


class _NotThere(Exception):
    """A discovery URL answered, but not with metadata (404, not JSON...): try the next."""


@dataclass(slots=True)
class _Keys:
    by_kid: dict[str, Key]
    anonymous: list[Key]  # keys without a kid (used only for a token without one)
    fetched: float


class IssuerClient:
    """The server's view of its authorization server: metadata, keys, and the HTTP client
    that fetches them (bounded in size and time). One per server; ``close`` at shutdown."""

    def __init__(self, issuer: str, *, timeout: float = 5.0) -> None:
        self.issuer = issuer
        self.timeout = timeout
        self.metadata: dict[str, Any] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._keys: _Keys | None = None
        self._last_key_fetch = -KEY_REFRESH_INTERVAL
        self._lock = asyncio.Lock()
        self._down_until = 0.0
        self._down_logged = False

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Accept": "application/json"})
        return self._http

    # ------------------------------------------------------------------ fetching

    async def _read_json(self, resp: aiohttp.ClientResponse, url: str) -> dict[str, Any]:
        body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
        if len(body) > MAX_DOCUMENT_BYTES:
            raise IssuerUnavailable(f"{for_display(url, 200)}: answer over "
                                    f"{MAX_DOCUMENT_BYTES} bytes")
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _NotThere(f"{for_display(url, 200)}: not JSON") from None
        if not isinstance(obj, dict):
            raise _NotThere(f"{for_display(url, 200)}: not a JSON object")
        return obj

    async def get_json(self, url: str) -> dict[str, Any]:
        """GET ``url`` as JSON; :class:`_NotThere` for a non-200 answer."""
        async with self._session().get(url, allow_redirects=False) as resp:
            if resp.status != 200:
                raise _NotThere(f"{for_display(url, 200)}: HTTP {resp.status}")
            return await self._read_json(resp, url)

    async def post_form(self, url: str, form: dict[str, str],
                        auth: aiohttp.BasicAuth) -> dict[str, Any]:
        """POST ``form`` to ``url`` with client credentials; the JSON answer."""
        async with self._session().post(url, data=form, auth=auth,
                                        allow_redirects=False) as resp:
            if resp.status != 200:
                raise IssuerUnavailable(f"{for_display(url, 200)}: HTTP {resp.status}")
            return await self._read_json(resp, url)

    async def guarded(self, what: str, fetch: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``fetch()``; network trouble becomes :class:`IssuerUnavailable`, logged once
        per outage, and the issuer is left alone for :data:`RETRY_AFTER` seconds."""
        now = time.monotonic()
        if now < self._down_until:
            raise IssuerUnavailable("the authorization server was unreachable moments ago")
        try:
            result = await fetch()
        except (aiohttp.ClientError, TimeoutError, IssuerUnavailable, _NotThere) as exc:
            self._down_until = time.monotonic() + RETRY_AFTER
            reason = for_display(str(exc) or type(exc).__name__, 300)
            if not self._down_logged:
                self._down_logged = True
                logger.warning("authorization server %s cannot be reached (%s while fetching "
                               "%s); requests needing it are answered 503 until it answers",
                               for_display(self.issuer, 200), reason, what)
            raise IssuerUnavailable(reason) from None
        if self._down_logged:
            self._down_logged = False
            logger.info("authorization server %s answers again",
                        for_display(self.issuer, 200))
        return result

    # ------------------------------------------------------------------ metadata

    async def discover(self) -> dict[str, Any]:
        """The issuer's metadata (fetched once, then kept); raises
        :class:`IssuerUnavailable` when no discovery URL gives metadata for this issuer."""
        if self.metadata is not None:
            return self.metadata
        async with self._lock:
            if self.metadata is None:
                self.metadata = await self.guarded("its metadata", self._discover)
        assert self.metadata is not None
        return self.metadata

    async def _discover(self) -> dict[str, Any]:
        misses: list[str] = []
        for url in discovery_urls(self.issuer):
            try:
                metadata = await self.get_json(url)
            except _NotThere as exc:
                misses.append(str(exc))
                continue
            if metadata.get("issuer") != self.issuer:
                # RFC 8414 section 3.3: metadata naming another issuer must not be used.
                raise IssuerUnavailable(f"{for_display(url, 200)} names another issuer")
            return metadata
        raise IssuerUnavailable("no authorization server metadata (" + "; ".join(misses) + ")")

    # ------------------------------------------------------------------ keys

    async def key_for(self, kid: str | None) -> Key:
        """The issuer's public key ``kid`` (the only key without a kid, for a token that
        names none); fetches the key set when it is missing, old, or lacks ``kid`` (at most
        once per :data:`KEY_REFRESH_INTERVAL`). Raises :class:`InvalidToken` for a key the
        issuer does not publish, :class:`IssuerUnavailable` when it cannot be asked (unless
        the old key set still holds ``kid``: keys past their age are used while the issuer
        is down)."""
        keys = self._keys
        if keys is not None and not self._stale(keys):
            found = _pick(keys, kid)
            if found is not None:
                return found
            if not self._may_refresh():
                raise InvalidToken("unknown key id (key set fetched moments ago)")
        async with self._lock:  # one fetch at a time; the others then read its keys
            keys = self._keys
            if keys is None or self._stale(keys) or (_pick(keys, kid) is None
                                                     and self._may_refresh()):
                try:
                    keys = await self.guarded("its keys", self._fetch_keys)
                except IssuerUnavailable:
                    if keys is None or _pick(keys, kid) is None:
                        raise
        found = _pick(keys, kid)
        if found is None:
            raise InvalidToken("unknown key id")
        return found

    @staticmethod
    def _stale(keys: _Keys) -> bool:
        return time.monotonic() - keys.fetched >= KEY_MAX_AGE

    def _may_refresh(self) -> bool:
        return time.monotonic() - self._last_key_fetch >= KEY_REFRESH_INTERVAL

    async def _fetch_keys(self) -> _Keys:
        metadata = await self._discover() if self.metadata is None else self.metadata
        self.metadata = metadata
        uri = metadata.get("jwks_uri")
        if not isinstance(uri, str) or not uri:
            raise IssuerUnavailable("the authorization server's metadata has no jwks_uri")
        self._last_key_fetch = time.monotonic()
        document = await self.get_json(uri)
        keys = _import_keys(document)
        self._keys = keys
        logger.debug("fetched %d keys of %s", len(keys.by_kid) + len(keys.anonymous),
                     for_display(self.issuer, 200))
        return keys


_KEY_TYPES: dict[str, Callable[[dict[str, Any]], Key]] = {
    "RSA": RSAKey.import_key, "EC": ECKey.import_key, "OKP": OKPKey.import_key}


def _pick(keys: _Keys, kid: str | None) -> Key | None:
    if kid is None:
        return keys.anonymous[0] if len(keys.anonymous) == 1 else None
    return keys.by_kid.get(kid)


def _import_keys(document: dict[str, Any]) -> _Keys:
    """The signature keys of a JWKS: RSA, EC and OKP public keys meant for signing; the rest
    (symmetric keys, encryption keys, what does not parse) is skipped."""
    raw = document.get("keys")
    if not isinstance(raw, list):
        raise IssuerUnavailable("the key set has no keys list")
    by_kid: dict[str, Key] = {}
    anonymous: list[Key] = []
    for entry in raw[:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        try:
            key: Key = _KEY_TYPES[entry["kty"]](public)
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        kid = entry.get("kid")
        if isinstance(kid, str):
            by_kid[kid] = key
        else:
            anonymous.append(key)
    return _Keys(by_kid, anonymous, time.monotonic())


# ---------------------------------------------------------------------- claims


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """Scopes from ``scope`` (space-separated, RFC 9068) or ``scp`` (a list or a string)."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(s for s in value if isinstance(s, str))
    return frozenset()


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"claim {name} is not a number")
    return float(value)


def _check_times(claims: dict[str, Any], *, require_exp: bool) -> float | None:
    now = time.time()
    exp = _number(claims, "exp")
    if exp is None and require_exp:
        raise InvalidToken("no exp claim")
    if exp is not None and exp <= now - LEEWAY:
        raise InvalidToken("expired")
    nbf = _number(claims, "nbf")
    if nbf is not None and nbf > now + LEEWAY:
        raise InvalidToken("not yet valid")
    iat = _number(claims, "iat")
    if iat is not None and iat > now + LEEWAY:
        raise InvalidToken("issued in the future")
    return exp


def _check_audience(claims: dict[str, Any], audiences: frozenset[str]) -> None:
    aud = claims.get("aud")
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(v, str) and canonical_resource(v) in audiences for v in values):
        raise InvalidToken("audience is not this server")


def _principal(claims: dict[str, Any], issuer: str, exp: float | None) -> Principal:
    """The caller a checked token names: ``sub``, else (a client acting for itself) its
    ``client_id`` as ``client:ID`` so that it can never pass for a user of that name."""
    sub = claims.get("sub")
    client_id = claims.get("client_id")
    client = client_id if isinstance(client_id, str) else None
    if isinstance(sub, str) and sub:
        subject = sub
    elif client:
        subject = f"client:{client}"
    else:
        raise InvalidToken("no sub claim")
    return Principal(subject, _scopes(claims), client, issuer, exp)


class JWTVerifier:
    """Checks JWT access tokens (RFC 9068) signed by the issuer's published keys.

    ``audiences`` are the canonical resource identifiers (see :func:`canonical_resource`)
    that name this server; the token's ``aud`` must hold one of them.
    """

    def __init__(self, issuer: IssuerClient, audiences: frozenset[str]) -> None:
        self.issuer = issuer
        self.audiences = audiences
        self._verified: OrderedDict[str, Principal] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """The caller of ``token``. A token once verified is remembered (bounded) until it
        expires: its signature is checked once, not on every call of the hot path."""
        known = self._verified.get(token)
        if known is not None:
            if known.expires_at is not None and known.expires_at > time.time() - LEEWAY:
                return known
            del self._verified[token]
        principal = await self._check(token)
        self._verified[token] = principal
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _check(self, token: str) -> Principal:
        raw = token.encode()
        if len(raw) > MAX_TOKEN_BYTES or raw.count(b".") != 2:
            raise InvalidToken("not a compact JWS")
        try:
            header = jws.extract_compact(raw).headers()
        except (JoseError, ValueError, TypeError):
            raise InvalidToken("unreadable header") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidToken("algorithm not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES):
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("bad kid")
        key = await self.issuer.key_for(kid)
        try:
            claims = jwt.decode(raw, key, algorithms=[alg]).claims
        except (JoseError, ValueError, TypeError):
            raise InvalidToken("bad signature or payload") from None
        if claims.get("iss") != self.issuer.issuer:
            raise InvalidToken("issuer is not ours")
        _check_audience(claims, self.audiences)
        exp = _check_times(claims, require_exp=True)
        return _principal(claims, self.issuer.issuer, exp)


class TokenIntrospector:
    """Asks the issuer's introspection endpoint (RFC 7662) about each token, with client
    credentials; answers are cached by the token's SHA-256 (never the token itself) for
    :data:`INTROSPECTION_TTL` seconds (an inactive one for less), at most
    :data:`INTROSPECTION_CACHE_SIZE` of them."""

    def __init__(self, issuer: IssuerClient, audiences: frozenset[str], endpoint: str,
                 client_id: str, client_secret: str) -> None:
        self.issuer = issuer
        self.audiences = audiences
        self.endpoint = endpoint
        self._auth = aiohttp.BasicAuth(client_id, client_secret)
        self._cache: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too long")
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            if cached[1] is None:
                raise InvalidToken("inactive (cached)")
            if cached[1].expires_at is None or cached[1].expires_at > time.time() - LEEWAY:
                return cached[1]
        answer = await self.issuer.guarded(
            "token introspection", lambda: self.issuer.post_form(
                self.endpoint, {"token": token, "token_type_hint": "access_token"},
                self._auth))
        try:
            principal = self._judge(answer)
        except InvalidToken:
            self._remember(digest, now + INTROSPECTION_NEGATIVE_TTL, None)
            raise
        ttl = INTROSPECTION_TTL
        if principal.expires_at is not None:
            ttl = min(ttl, max(0.0, principal.expires_at - time.time()))
        self._remember(digest, now + ttl, principal)
        return principal

    def _judge(self, answer: dict[str, Any]) -> Principal:
        if answer.get("active") is not True:
            raise InvalidToken("inactive")
        iss = answer.get("iss")
        if iss is not None and iss != self.issuer.issuer:
            raise InvalidToken("issuer is not ours")
        _check_audience(answer, self.audiences)
        exp = _check_times(answer, require_exp=False)
        return _principal(answer, self.issuer.issuer, exp)

    def _remember(self, digest: bytes, until: float, principal: Principal | None) -> None:
        self._cache[digest] = (until, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > INTROSPECTION_CACHE_SIZE:
            self._cache.popitem(last=False)


class IssuerVerifier:
    """The verifier of ``--auth-issuer``: introspection when the issuer offers an
    ``introspection_endpoint`` and the server has client credentials for it, JWT otherwise.
    The choice waits for the issuer's metadata (the issuer may be down when the server
    starts); ``audiences`` is set once the server knows its resource identifiers."""

    def __init__(self, issuer: IssuerClient,
                 introspection_client: tuple[str, str] | None = None) -> None:
        self.issuer = issuer
        self.audiences: frozenset[str] = frozenset()
        self._introspection_client = introspection_client
        self._chosen: JWTVerifier | TokenIntrospector | None = None

    async def verify(self, token: str) -> Principal:
        chosen = self._chosen or self.choose(await self.issuer.discover())
        return await chosen.verify(token)

    def choose(self, metadata: dict[str, Any]) -> JWTVerifier | TokenIntrospector:
        """Pick (once) how tokens are checked, given the issuer's metadata."""
        if self._chosen is not None:
            return self._chosen
        endpoint = metadata.get("introspection_endpoint")
        if self._introspection_client is not None and isinstance(endpoint, str) and endpoint:
            self._chosen = TokenIntrospector(self.issuer, self.audiences, endpoint,
                                             *self._introspection_client)
            how = "token introspection"
        else:
            if self._introspection_client is not None:
                logger.warning("authorization server %s offers no introspection_endpoint: "
                               "access tokens are checked as JWTs against its keys",
                               for_display(self.issuer.issuer, 200))
            self._chosen = JWTVerifier(self.issuer, self.audiences)
            how = "JWT signatures against its keys"
        logger.info("access tokens of %s are checked by %s, for %s",
                    for_display(self.issuer.issuer, 200), how,
                    ", ".join(sorted(self.audiences)))
        return self._chosen
