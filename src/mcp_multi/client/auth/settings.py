"""OAuth settings as people write them: a config entry's ``oauth`` object and the command
line's ``--oauth-*`` options, turned into :class:`~.oauth.OAuthSettings`.

The ``oauth`` object takes the names other MCP clients use (Claude Code, Cursor, VS Code),
in camelCase or snake_case (Cursor's ``auth`` object with ``CLIENT_ID``/``CLIENT_SECRET``
too: names are compared without case and ``_``)::

    "oauth": {
        "clientId": "my-app",                    # pre-registered client (else CIMD or DCR)
        "clientSecret": "…",                     # confidential clients only
        "scopes": ["read", "write"],             # or "read write"; default: the server's
        "callbackPort": 33418,                   # or redirectPort: a fixed loopback port
        "clientMetadataUrl": "https://app.example/client.json",   # a CIMD client id
        "tokenEndpointAuthMethod": "client_secret_post"            # default: chosen
    }

``grantType`` (``authorization_code`` by default, ``client_credentials`` for a machine),
``privateKeyPem``, ``signingAlg`` and ``dpop`` serve the machine-to-machine grants; any other
name is kept in ``extra`` for them.

A static ``Authorization`` header (``--header``, or the entry's ``headers``) means the
server is reached with that credential and no OAuth at all (:func:`static_authorization`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from .oauth import OAuthSettings

__all__ = ["AUTH_METHODS", "OAuthConfigError", "merge_oauth", "parse_oauth", "parse_scopes",
           "static_authorization"]

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none", "private_key_jwt")
_MAX_SCOPES = 64
_MAX_TEXT = 4096
_MAX_KEY = 64 * 1024  # a PEM private key

# Each accepted spelling (lower case, without "_" and "-") -> the OAuthSettings field.
_FIELDS = {
    "clientid": "client_id",
    "clientsecret": "client_secret",
    "scopes": "scopes",
    "scope": "scopes",
    "callbackport": "redirect_port",
    "redirectport": "redirect_port",
    "clientmetadataurl": "client_metadata_url",
    "tokenendpointauthmethod": "token_endpoint_auth_method",
    "granttype": "grant",
    "grant": "grant",
    "privatekeypem": "private_key_pem",
    "privatekey": "private_key_pem",
    "signingalg": "signing_alg",
    "dpop": "dpop",
}


class OAuthConfigError(ValueError):
    """An ``oauth`` object or an ``--oauth-*`` option is not understood (the message names
    the field, never its value when it is a secret)."""


def parse_scopes(value: Any) -> tuple[str, ...]:
    """Scopes as a list of strings or one space-separated string.

    Raises:
        OAuthConfigError: another type, a scope with spaces or quotes, too many.
    """
    if isinstance(value, str):
        scopes = value.split()
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        scopes = [item.strip() for item in value if item.strip()]
    else:
        raise OAuthConfigError("scopes must be a list of strings or a space-separated string")
    if len(scopes) > _MAX_SCOPES:
        raise OAuthConfigError(f"more than {_MAX_SCOPES} scopes")
    for scope in scopes:  # RFC 6749 §3.3: printable ASCII but space, '"' and '\\'
        if any(not 0x21 <= ord(c) <= 0x7e or c in '"\\' for c in scope) or " " in scope:
            raise OAuthConfigError(f"bad scope {scope!r}")
    return tuple(dict.fromkeys(scopes))


def parse_oauth(value: Any) -> OAuthSettings:
    """The settings an ``oauth`` object describes (see the module docstring).

    Raises:
        OAuthConfigError: not an object, or a field of the wrong type or out of range.
    """
    if not isinstance(value, dict):
        raise OAuthConfigError("must be an object (clientId, clientSecret, scopes, "
                               "callbackPort, clientMetadataUrl)")
    settings: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, item in value.items():
        key = _FIELDS.get(str(name).lower().replace("_", "").replace("-", ""))
        if key is None:
            extra[str(name)] = item
        elif item is not None:
            settings[key] = _field(key, str(name), item)
    return OAuthSettings(**settings, extra=extra)


def _field(key: str, name: str, value: Any) -> Any:
    if key == "scopes":
        return parse_scopes(value)
    if key == "redirect_port":
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
            raise OAuthConfigError(f"{name} must be a port number (1-65535)")
        return value
    if key == "dpop":
        if not isinstance(value, bool):
            raise OAuthConfigError(f"{name} must be true or false")
        return value
    limit = _MAX_KEY if key == "private_key_pem" else _MAX_TEXT
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise OAuthConfigError(f"{name} must be a non-empty string")
    value = value.strip()
    if key == "token_endpoint_auth_method" and value not in AUTH_METHODS:
        raise OAuthConfigError(f"{name} must be one of {', '.join(AUTH_METHODS)}")
    if key == "client_metadata_url":
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc or parts.path in ("", "/"):
            raise OAuthConfigError(f"{name} must be an https URL with a path "
                                   "(a Client ID Metadata Document)")
    return value


def merge_oauth(own: OAuthSettings | None, fallback: OAuthSettings | None
                ) -> OAuthSettings | None:
    """A server's own settings, with the fields it leaves unset taken from ``fallback``
    (the command line's ``--oauth-*`` options), as a server's own headers win over
    ``--header``."""
    if own is None or fallback is None:
        return own if fallback is None else fallback
    defaults = OAuthSettings()
    changes = {name: getattr(fallback, name) for name in (
        "client_id", "client_secret", "token_endpoint_auth_method", "scopes", "redirect_port",
        "client_metadata_url") if getattr(own, name) == getattr(defaults, name)}
    if own.client_id is not None and own.client_id != fallback.client_id:
        changes.pop("client_secret", None)  # a secret belongs to its client id only
    return replace(own, **changes)


def static_authorization(*header_sets: Mapping[str, str]) -> bool:
    """Whether any of these header sets carries a static ``Authorization`` header (then the
    server gets that credential and no OAuth)."""
    return any(name.lower() == "authorization" for headers in header_sets for name in headers)
