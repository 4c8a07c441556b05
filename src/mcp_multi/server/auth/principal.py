"""The caller of a request, as the server's authorization knows it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from, once its credentials have been checked.

    Attributes:
        subject: the token's ``sub`` claim (or introspection's ``sub``); ``"token:NAME"``
            for a static token, ``"anonymous"`` when the server asks for no credentials.
        scopes: the scopes the token grants.
        client_id: the OAuth client the token was issued to, when known.
        issuer: the authorization server that issued the token (``None``: static token).
        expires_at: the token's expiry, in seconds since the epoch (``None``: never).
        roles: the roles the policy gives this caller (empty until the policy has run).
    """

    subject: str
    scopes: frozenset[str] = frozenset()
    client_id: str | None = None
    issuer: str | None = None
    expires_at: float | None = None
    roles: frozenset[str] = frozenset()


# The caller of a server that checks no credentials (and of stdio, a local pipe).
ANONYMOUS = Principal("anonymous")
