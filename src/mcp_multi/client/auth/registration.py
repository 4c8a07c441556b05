"""Client registration in the specification's order of preference.

1. **Pre-registered** credentials (the ``oauth`` settings of the server's config entry);
2. a **Client ID Metadata Document**: when the authorization server says
   ``client_id_metadata_document_supported`` and the client has a document URL, that URL is
   the ``client_id`` (a public client: no secret);
3. **Dynamic registration** (RFC 7591) at the ``registration_endpoint``: a native
   application (``application_type``) whose redirect URI is the loopback one, asking for the
   ``authorization_code`` and ``refresh_token`` grants.

A registration belongs to the authorization server that issued it: a stored one is reused
only with the same issuer (:meth:`ClientRegistration.usable_with`), so a server that moved
to another authorization server gets a fresh registration there, never the old client id.

The token endpoint authentication method is the one the registration answered, else the
first of ``client_secret_basic``, ``client_secret_post`` (with a secret) or ``none`` that
the authorization server lists (:func:`choose_auth_method`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import hdrs

from ... import __version__
from ...protocol.text import for_display
from .agent import AuthorizationFailed
from .discovery import AuthServerMetadata, oauth_error_text, read_bounded

__all__ = [
    "AUTH_METHODS",
    "CLIENT_NAME",
    "MAX_REGISTRATION_BYTES",
    "ClientRegistration",
    "choose_auth_method",
    "register",
]

logger = logging.getLogger(__name__)

CLIENT_NAME = "mcp-multi-client"
MAX_REGISTRATION_BYTES = 64 * 1024
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True, slots=True)
class ClientRegistration:
    """A client id at one authorization server (``issuer``), with its secret and the token
    endpoint authentication method it uses."""

    client_id: str
    client_secret: str | None
    auth_method: str
    issuer: str | None
    how: str = "pre-registered"

    def usable_with(self, issuer: str | None) -> bool:
        return self.issuer == issuer

    def __repr__(self) -> str:
        return (f"ClientRegistration(client_id={self.client_id!r}, issuer={self.issuer!r}, "
                f"auth_method={self.auth_method!r}, how={self.how!r})")


def choose_auth_method(supported: tuple[str, ...] | None, has_secret: bool,
                       wanted: str | None = None) -> str:
    """The token endpoint authentication method to use.

    Raises:
        AuthorizationFailed: the method asked for (``wanted``) cannot be used.
    """
    if wanted is not None:
        if wanted not in AUTH_METHODS:
            raise AuthorizationFailed(f"unsupported token endpoint auth method {wanted!r}")
        if wanted != "none" and not has_secret:
            raise AuthorizationFailed(f"{wanted} needs a client secret")
        return wanted
    # RFC 8414: an absent list means client_secret_basic only.
    listed = supported if supported else ("client_secret_basic",)
    if has_secret:
        for method in ("client_secret_basic", "client_secret_post"):
            if method in listed:
                return method
    return "none" if "none" in listed or not has_secret else "client_secret_basic"


def _is_document_url(url: str) -> bool:
    """A Client ID Metadata Document URL must be https with a path."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.path not in ("", "/"):
        return True
    logger.warning("ignoring the client metadata URL %s: it must be https with a path",
                   for_display(url, 200))
    return False


def is_loopback(uri: str) -> bool:
    host = (urlsplit(uri).hostname or "").lower()
    return host in ("127.0.0.1", "localhost", "::1")


async def register(
    http: aiohttp.ClientSession,
    metadata: AuthServerMetadata,
    redirect_uri: str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    auth_method: str | None = None,
    client_metadata_url: str | None = None,
    scope: str | None = None,
) -> ClientRegistration:
    """A client registration at the authorization server ``metadata`` describes, in the
    order of the module docstring.

    Raises:
        AuthorizationFailed: no way to register, or the registration was refused.
    """
    supported = metadata.token_endpoint_auth_methods_supported
    if client_id:
        method = choose_auth_method(supported, bool(client_secret), auth_method)
        return ClientRegistration(client_id, client_secret, method, metadata.issuer)
    if client_metadata_url and metadata.client_id_metadata_document_supported and (
            _is_document_url(client_metadata_url)):
        return ClientRegistration(client_metadata_url, None, "none", metadata.issuer,
                                  "client id metadata document")
    if metadata.registration_endpoint is None:
        raise AuthorizationFailed(
            f"the authorization server {for_display(str(metadata.issuer), 200)} offers no "
            "dynamic registration; configure a client id for it (oauth.client_id)")
    return await _register_dynamically(http, metadata, redirect_uri, auth_method, scope)


async def _register_dynamically(http: aiohttp.ClientSession, metadata: AuthServerMetadata,
                                redirect_uri: str, auth_method: str | None,
                                scope: str | None) -> ClientRegistration:
    assert metadata.registration_endpoint is not None
    supported = metadata.token_endpoint_auth_methods_supported or ("client_secret_basic",)
    asked = auth_method or ("none" if "none" in supported else
                            next((m for m in AUTH_METHODS if m in supported), "none"))
    body: dict[str, object] = {
        "client_name": CLIENT_NAME,
        "software_id": "mcp-multi-server",
        "software_version": __version__,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": asked,
        "application_type": "native" if is_loopback(redirect_uri) else "web",
    }
    if scope:
        body["scope"] = scope
    url = metadata.registration_endpoint
    try:
        async with http.post(url, data=orjson.dumps(body), allow_redirects=False,
                             headers={hdrs.CONTENT_TYPE: "application/json",
                                      hdrs.ACCEPT: "application/json"}) as response:
            raw = await read_bounded(response, MAX_REGISTRATION_BYTES, url)
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise AuthorizationFailed(f"cannot register at {for_display(url, 300)}: "
                                  f"{for_display(str(exc) or type(exc).__name__, 200)}") from None
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if status not in (200, 201) or not isinstance(answer, dict):
        detail = oauth_error_text(answer)
        raise AuthorizationFailed(f"dynamic registration at {for_display(url, 300)} failed: "
                                  f"HTTP {status}{detail}")
    client_id = answer.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise AuthorizationFailed(f"dynamic registration at {for_display(url, 300)} "
                                  "answered no client_id")
    secret = answer.get("client_secret")
    secret = secret if isinstance(secret, str) and secret else None
    answered = answer.get("token_endpoint_auth_method")
    if isinstance(answered, str) and answered in AUTH_METHODS and (
            answered == "none" or secret is not None):
        method = answered
    else:
        method = choose_auth_method(metadata.token_endpoint_auth_methods_supported,
                                    secret is not None)
    logger.info("registered at %s as client %s (%s)", for_display(str(metadata.issuer), 200),
                for_display(client_id, 200), method)
    return ClientRegistration(client_id, secret, method, metadata.issuer, "dynamic registration")
