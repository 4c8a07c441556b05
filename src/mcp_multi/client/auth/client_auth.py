"""How a client proves who it is to a token endpoint (RFC 6749 section 2.3, RFC 7523).

One small class per method, each adding its credentials to one request's form and headers:
:class:`PublicClient` (``none``), :class:`ClientSecretBasic`, :class:`ClientSecretPost` and
:class:`PrivateKeyJWT` (a fresh assertion signed with the client's key for each request).
:func:`choose_auth_method` picks one from what the authorization server lists and what the
client holds; :func:`client_authentication` builds it by name. Secrets and keys never
appear in a ``repr``.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote_plus

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from ...protocol.text import for_display

__all__ = [
    "ASSERTION_LIFETIME",
    "CLIENT_ASSERTION_TYPE",
    "ClientAuthentication",
    "ClientSecretBasic",
    "ClientSecretPost",
    "PrivateKeyJWT",
    "PublicClient",
    "choose_auth_method",
    "client_authentication",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# A signed client assertion lives this long: long enough for clock skew, short enough that
# a copy is soon worthless (RFC 7523 section 3 asks for an expiry; each request signs anew).
ASSERTION_LIFETIME = 300
# Signing algorithms for private_key_jwt, by key type, the first one preferred.
_ALGORITHMS_BY_KEY: dict[str, tuple[str, ...]] = {
    "EC": ("ES256", "ES384", "ES512"),
    "RSA": ("RS256", "PS256", "RS384", "PS384", "RS512", "PS512"),
    "OKP": ("EdDSA", "Ed25519"),
}



class ClientAuthentication(Protocol):
    """How a client proves who it is to a token endpoint (RFC 6749 section 2.3)."""

    def apply(self, form: dict[str, str], headers: dict[str, str], *, audience: str) -> None:
        """Add the client's credentials to one request's ``form`` and ``headers``.

        ``audience`` is the authorization server's issuer identifier (what a signed
        assertion is addressed to). Called once per request: an assertion is never reused.
        """
        ...


@dataclass(frozen=True, slots=True)
class PublicClient:
    """No credentials (``none``): the client id goes in the form when there is one."""

    client_id: str | None = None

    def apply(self, form: dict[str, str], headers: dict[str, str], *, audience: str) -> None:
        if self.client_id is not None:
            form["client_id"] = self.client_id


@dataclass(frozen=True, slots=True)
class ClientSecretBasic:
    """``client_secret_basic``: HTTP Basic with the form-encoded id and secret (RFC 6749
    section 2.3.1 encodes both before joining them, so a ``:`` in an id cannot split it)."""

    client_id: str
    client_secret: str = field(repr=False)

    def apply(self, form: dict[str, str], headers: dict[str, str], *, audience: str) -> None:
        pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")


@dataclass(frozen=True, slots=True)
class ClientSecretPost:
    """``client_secret_post``: the id and secret as form parameters."""

    client_id: str
    client_secret: str = field(repr=False)

    def apply(self, form: dict[str, str], headers: dict[str, str], *, audience: str) -> None:
        form["client_id"] = self.client_id
        form["client_secret"] = self.client_secret


_SigningKey = ECKey | RSAKey | OKPKey


@dataclass(frozen=True, slots=True)
class PrivateKeyJWT:
    """``private_key_jwt`` (RFC 7523 section 2.2): a JWT signed with the client's private
    key, ``iss`` and ``sub`` the client id, ``aud`` the authorization server's issuer, a
    fresh ``jti`` and a short ``exp``. The client id itself is not sent (section 3: the
    assertion's ``sub`` names the client)."""

    client_id: str
    key: _SigningKey = field(repr=False)
    algorithm: str

    @classmethod
    def from_pem(cls, client_id: str, private_key_pem: str,
                 algorithm: str | None = None) -> PrivateKeyJWT:
        """Load the client's key from PEM (PKCS#8 or the key type's own form).

        ``algorithm``: the JWS algorithm (``None``: the first one the key's type signs).

        Raises:
            ValueError: the PEM holds no private key, or the algorithm does not fit it.
        """
        key = _load_private_key(private_key_pem)
        allowed = _ALGORITHMS_BY_KEY[key.key_type]
        chosen = algorithm or allowed[0]
        if chosen not in allowed:
            raise ValueError(f"a {key.key_type} key cannot sign {for_display(chosen, 40)}")
        return cls(client_id, key, chosen)

    def assertion(self, audience: str, *, now: float | None = None) -> str:
        """A freshly signed client assertion for ``audience``."""
        issued = int(time.time() if now is None else now)
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": audience,
                  "jti": secrets.token_urlsafe(24), "iat": issued,
                  "exp": issued + ASSERTION_LIFETIME}
        return jwt.encode({"alg": self.algorithm, "typ": "JWT"}, claims, self.key,
                          algorithms=[self.algorithm])

    def apply(self, form: dict[str, str], headers: dict[str, str], *, audience: str) -> None:
        form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
        form["client_assertion"] = self.assertion(audience)


def _load_private_key(pem: str) -> _SigningKey:
    key_types: tuple[type[_SigningKey], ...] = (ECKey, RSAKey, OKPKey)
    for key_type in key_types:
        try:
            key = key_type.import_key(pem.encode())
        except (JoseError, ValueError, TypeError):
            continue
        if not key.is_private:
            raise ValueError("the PEM holds no private key")
        return key
    raise ValueError("the private key is not a PEM private key")


def choose_auth_method(supported: list[str] | None, *, has_secret: bool,
                       has_key: bool) -> str:
    """The token endpoint authentication method to use, given what the authorization
    server lists (``token_endpoint_auth_methods_supported``; ``None``: not listed, which
    RFC 8414 says means ``client_secret_basic``) and what credentials the client holds.

    A key is preferred (the client credentials extension recommends JWT authentication),
    then a secret by Basic, then by POST; without either the client is public.
    """
    offered = supported if supported is not None else ["client_secret_basic"]
    if has_key and "private_key_jwt" in offered:
        return "private_key_jwt"
    if has_secret:
        for method in ("client_secret_basic", "client_secret_post"):
            if method in offered:
                return method
        return "client_secret_basic"
    if has_key:
        return "private_key_jwt"
    return "none"


def client_authentication(method: str, *, client_id: str | None,
                          client_secret: str | None = None,
                          private_key_pem: str | None = None,
                          signing_alg: str | None = None) -> ClientAuthentication:
    """The :class:`ClientAuthentication` for a method name.

    Raises:
        ValueError: the method is unknown or its credentials are missing.
    """
    if method == "none":
        return PublicClient(client_id)
    if client_id is None:
        raise ValueError(f"{method} needs a client id")
    if method in ("client_secret_basic", "client_secret_post"):
        if client_secret is None:
            raise ValueError(f"{method} needs a client secret")
        if method == "client_secret_basic":
            return ClientSecretBasic(client_id, client_secret)
        return ClientSecretPost(client_id, client_secret)
    if method == "private_key_jwt":
        if private_key_pem is None:
            raise ValueError("private_key_jwt needs a private key")
        return PrivateKeyJWT.from_pem(client_id, private_key_pem, signing_alg)
    raise ValueError(f"unknown token endpoint auth method {for_display(method, 60)}")
