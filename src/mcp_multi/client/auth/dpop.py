"""DPoP: access tokens bound to a key the client holds (RFC 9449, the MCP DPoP extension).

A bearer token works for whoever holds it; a DPoP-bound token works only with proofs signed
by the key it was issued to. :class:`DPoPProver` is that key and what it signs:

- one ephemeral key pair per client run (generated in memory, never written anywhere);
- a fresh proof JWT per HTTP request (``typ: dpop+jwt``, the public key in the ``jwk``
  header; ``jti``, ``htm``, ``htu`` without query or fragment, ``iat``; ``ath``, the hash
  of the access token, on requests to the MCP server), so no proof is ever replayed;
- the token request carries a proof too (section 5): the authorization server binds the
  token to the key's thumbprint and answers ``token_type: DPoP``; the token then travels
  as ``Authorization: DPoP <token>``, never as ``Bearer``;
- nonces (sections 8 and 9): a server may insist that proofs carry a value it chose. It
  says so with ``use_dpop_nonce`` (the token endpoint in a 400 body, the MCP server in a
  401 ``WWW-Authenticate: DPoP error=...``) and a ``DPoP-Nonce`` header; any response may
  hand out a newer one. Nonces are kept per origin (the authorization server's are not the
  MCP server's); a request refused for its nonce is sent again with the one the refusal
  brought, at most :data:`MAX_NONCE_RETRIES` refusals in a row (the token endpoint: once),
  so a server rotating nonces forever cannot make the client loop.

Nothing here does I/O: callers (the token request in :mod:`.machine`, the authorization
code flow, :class:`~.oauth.OAuthAuth` for MCP requests) put the proofs in their headers
and show the prover what came back.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from .challenge import BearerChallenge, parse_www_authenticate

__all__ = [
    "DPOP_ALGORITHMS",
    "MAX_NONCE_RETRIES",
    "DPoPProver",
    "access_token_hash",
    "choose_prover",
    "dpop_challenge",
    "is_nonce_challenge",
    "proof_target",
]

# The algorithms a prover can sign with, most preferred first (all asymmetric: RFC 9449
# section 11.6 forbids symmetric ones and ``none``).
DPOP_ALGORITHMS: tuple[str, ...] = ("ES256", "EdDSA", "ES384", "ES512", "PS256", "RS256")
MAX_NONCE_RETRIES = 3
# A nonce is 1*NQCHAR (RFC 9449 section 8.1); longer than this is no nonce we keep.
MAX_NONCE_LENGTH = 512
MAX_ORIGINS = 16
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def access_token_hash(access_token: str) -> str:
    """``ath``: the base64url SHA-256 of the access token's ASCII bytes, unpadded."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def proof_target(url: str) -> str:
    """``htu``: the request's URL without its query and fragment (RFC 9449 section 4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def _challenges(headers: Mapping[str, str]) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall("WWW-Authenticate", []))
    value = _header(headers, "WWW-Authenticate")
    return [value] if value else []


def dpop_challenge(headers: Mapping[str, str]) -> BearerChallenge | None:
    """The first ``DPoP`` challenge of a response (RFC 9449 section 7.1), read for what a
    ``Bearer`` one would say (``resource_metadata``, ``scope``, ``error``); ``None``: none."""
    for challenge in parse_www_authenticate(_challenges(headers)):
        if challenge.scheme == "dpop":
            p = challenge.params
            return BearerChallenge(resource_metadata=p.get("resource_metadata") or None,
                                   scope=p.get("scope") or None, error=p.get("error") or None,
                                   error_description=p.get("error_description") or None)
    return None


def is_nonce_challenge(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an MCP server's response asks for a DPoP nonce: a 401 whose
    ``WWW-Authenticate`` holds a ``DPoP`` challenge with ``error="use_dpop_nonce"``."""
    if status != 401:
        return False
    return any(c.scheme == "dpop" and c.params.get("error") == "use_dpop_nonce"
               for c in parse_www_authenticate(_challenges(headers)))


def _generate(algorithm: str) -> ECKey | OKPKey | RSAKey:
    if algorithm == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    if algorithm.startswith("ES"):
        curve = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[algorithm]
        return ECKey.generate_key(curve)
    return RSAKey.generate_key(2048)


class DPoPProver:
    """One run's DPoP key: it signs proofs and keeps the nonces servers gave it.

    Args:
        algorithm: one of :data:`DPOP_ALGORITHMS`.

    Raises:
        ValueError: an algorithm it cannot sign with.
    """

    def __init__(self, algorithm: str = "ES256") -> None:
        if algorithm not in DPOP_ALGORITHMS:
            raise ValueError(f"unsupported DPoP algorithm {algorithm[:40]!r}")
        self.algorithm = algorithm
        self._key = _generate(algorithm)
        self._header = {"typ": "dpop+jwt", "alg": algorithm,
                        "jwk": self._key.as_dict(private=False)}
        self._nonces: dict[str, str] = {}
        self._streaks: dict[str, int] = {}

    @classmethod
    def for_server(cls, offered: Sequence[str] | None) -> DPoPProver | None:
        """A prover for an authorization server that lists ``offered`` as its
        ``dpop_signing_alg_values_supported``: our most preferred algorithm among them, or
        ``None`` when the server offers none we can sign with (or offers no DPoP at all)."""
        if not offered:
            return None
        for algorithm in DPOP_ALGORITHMS:
            if algorithm in offered:
                return cls(algorithm)
        return None

    @property
    def thumbprint(self) -> str:
        """The key's JWK SHA-256 thumbprint (RFC 7638): the ``jkt`` a bound token names."""
        return str(self._key.thumbprint())

    def __repr__(self) -> str:
        return f"DPoPProver(algorithm={self.algorithm!r}, jkt={self.thumbprint!r})"

    def proof(self, method: str, url: str, *, access_token: str | None = None,
              now: float | None = None) -> str:
        """A new proof for one request: ``method`` and ``url`` as sent; ``access_token``
        when the request presents one (then ``ath`` binds the proof to it). The nonce last
        given by the URL's origin goes in too."""
        claims: dict[str, object] = {
            "jti": secrets.token_urlsafe(16), "htm": method.upper(),
            "htu": proof_target(url), "iat": int(time.time() if now is None else now)}
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        nonce = self._nonces.get(_origin(url))
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(self._header, claims, self._key, algorithms=[self.algorithm])

    def resource_headers(self, method: str, url: str, access_token: str) -> dict[str, str]:
        """The headers presenting a DPoP-bound token to the MCP server (RFC 9449 section
        7.1): the ``DPoP`` scheme and a fresh proof carrying ``ath``."""
        return {"Authorization": f"DPoP {access_token}",
                "DPoP": self.proof(method, url, access_token=access_token)}

    def observe(self, url: str, headers: Mapping[str, str], status: int | None = None) -> bool:
        """See a response from ``url``: keep the ``DPoP-Nonce`` it hands out. Returns
        whether that nonce is new (one the next proof to that origin will carry for the
        first time). A success (``status`` below 400) ends a streak of nonce refusals."""
        origin = _origin(url)
        if status is not None and status < 400:
            self._streaks.pop(origin, None)
        nonce = _header(headers, "DPoP-Nonce")
        if (nonce is None or len(nonce) > MAX_NONCE_LENGTH
                or not _NONCE.fullmatch(nonce) or self._nonces.get(origin) == nonce):
            return False
        if origin not in self._nonces and len(self._nonces) >= MAX_ORIGINS:
            self._nonces.pop(next(iter(self._nonces)))
        self._nonces[origin] = nonce
        return True

    def retry_for_nonce(self, url: str, status: int, headers: Mapping[str, str]) -> bool:
        """After a refusal from the MCP server: whether to send the request again because
        it asked for a nonce (``use_dpop_nonce``) and gave one, within
        :data:`MAX_NONCE_RETRIES` refusals in a row (the transport may have shown the
        response to :meth:`observe` already, so the nonce need not be new here)."""
        if not is_nonce_challenge(status, headers):
            return False
        self.observe(url, headers)
        origin = _origin(url)
        streak = self._streaks.get(origin, 0)
        if origin not in self._nonces or streak >= MAX_NONCE_RETRIES:
            return False
        if origin not in self._streaks and len(self._streaks) >= MAX_ORIGINS:
            self._streaks.pop(next(iter(self._streaks)))
        self._streaks[origin] = streak + 1
        return True


def choose_prover(setting: bool | None, offered: object, *,
                  resource_asks: bool) -> DPoPProver | None:
    """Whether (and with which algorithm) to bind this server's tokens to a key.

    Args:
        setting: ``True`` always, ``False`` never, ``None`` when the MCP server asks for
            DPoP (``resource_asks``: its challenge used the ``DPoP`` scheme) and its
            authorization server offers an algorithm we sign with.
        offered: the authorization server's ``dpop_signing_alg_values_supported`` as
            its metadata gave it (anything but a list of names: not listed).
    """
    if setting is False or (setting is None and not resource_asks):
        return None
    if not isinstance(offered, list) or not all(isinstance(a, str) for a in offered):
        offered = None  # absent, or not the list of names RFC 9449 section 5.1 defines
    prover = DPoPProver.for_server(offered)
    if prover is None and setting is True and offered is None:
        return DPoPProver()  # not advertised is not refused: try the common algorithm
    return prover
