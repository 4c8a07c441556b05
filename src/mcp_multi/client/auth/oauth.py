"""OAuth 2.1 for one MCP server: the settings, the grants kept between runs, and
:class:`OAuthAuth`, the :class:`~.hook.RequestAuth` that obtains, refreshes and steps up
access tokens.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Protocol

__all__ = [
    "MemoryTokenStore",
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
        dpop: whether to bind tokens to a DPoP key.
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
    dpop: bool = False
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
            if name == "expires_at":
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
