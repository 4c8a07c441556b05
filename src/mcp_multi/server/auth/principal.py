"""The caller of a request, as the server's authorization knows it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANONYMOUS", "Principal", "principal_from_json", "principal_to_json"]


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


def principal_to_json(principal: Principal) -> dict[str, object]:
    """``principal`` as JSON-able data (a session shared with other instances carries it)."""
    return {
        "subject": principal.subject,
        "scopes": sorted(principal.scopes),
        "client_id": principal.client_id,
        "issuer": principal.issuer,
        "expires_at": principal.expires_at,
        "roles": sorted(principal.roles),
    }


def principal_from_json(data: object) -> Principal | None:
    """The principal :func:`principal_to_json` wrote; None for anything else (what a shared
    store holds is read as untrusted: a field of the wrong type refuses the whole)."""
    if not isinstance(data, dict):
        return None
    subject, client_id, issuer = data.get("subject"), data.get("client_id"), data.get("issuer")
    scopes, roles, expires = data.get("scopes", []), data.get("roles", []), data.get("expires_at")
    if (not isinstance(subject, str) or not _strings(scopes) or not _strings(roles)
            or not isinstance(client_id, str | None) or not isinstance(issuer, str | None)
            or not (expires is None or (isinstance(expires, int | float)
                                        and not isinstance(expires, bool)))):
        return None
    if subject == ANONYMOUS.subject and not scopes and not roles and issuer is None:
        return ANONYMOUS  # the one object callers compare by identity
    return Principal(subject, frozenset(scopes), client_id, issuer,
                     None if expires is None else float(expires), frozenset(roles))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
