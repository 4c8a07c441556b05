"""The server's authorization built from its settings: checked at start-up, then the
:class:`~.authenticator.Authenticator` the app's guard asks, and its lifecycle (bound to the
listening address, warmed up, closed)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web

from ...protocol.text import for_display
from ..settings import ServerSettings, is_loopback_host
from .authenticator import Authenticator, TokenLookup, static_token_lookup
from .metadata import ProtectedResource
from .verifier import IssuerClient, IssuerUnavailable, IssuerVerifier

__all__ = ["build_authenticator", "check_auth_settings", "close_authenticator",
           "start_authenticator"]

logger = logging.getLogger(__name__)

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "\\"}


def _check_url(option: str, url: str, *, https_unless_loopback: bool = True) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        raise ValueError(f"{option} {for_display(url, 200)} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{option} {for_display(url, 200)} must be an http(s) URL")
    if parts.fragment or parts.query or "@" in parts.netloc:
        raise ValueError(f"{option} {for_display(url, 200)} must have no query, fragment "
                         "or user name")
    if https_unless_loopback and parts.scheme != "https" \
            and not is_loopback_host(parts.hostname):
        raise ValueError(f"{option} {for_display(url, 200)} must use https (plain http is "
                         "allowed on loopback only)")


def check_auth_settings(settings: ServerSettings) -> None:
    """Refuse (``ValueError``, naming the option) an authorization configuration that
    cannot work or would not be safe."""
    issuer = settings.auth_issuer
    if settings.metrics_token is not None and not settings.metrics_token:
        raise ValueError("--metrics-token must not be empty")
    if issuer is None:
        for option, value in (("--auth-audience", settings.auth_audience),
                              ("--auth-scopes", settings.auth_scopes),
                              ("--auth-introspection-client",
                               settings.auth_introspection_client)):
            if value:
                raise ValueError(f"{option} needs --auth-issuer")
        return
    _check_url("--auth-issuer", issuer)
    if settings.auth_audience is not None:
        _check_url("--auth-audience", settings.auth_audience)
    elif not settings.is_loopback:
        raise ValueError(f"--auth-issuer on --host {settings.host} needs --auth-audience "
                         "(the public URL clients reach this server at: tokens are checked "
                         "against it)")
    for scope in settings.auth_scopes:
        if not scope or not set(scope) <= _SCOPE_CHARS:
            raise ValueError(f"--auth-scopes: {for_display(scope, 100)!r} is not a scope")
    client = settings.auth_introspection_client
    if client is not None and not (client[0] and client[1]):
        raise ValueError("--auth-introspection-client must be CLIENT_ID:CLIENT_SECRET")


def build_authenticator(settings: ServerSettings) -> Authenticator:
    """The authenticator of ``settings`` (checked by :func:`check_auth_settings`)."""
    check_auth_settings(settings)
    lookups: list[TokenLookup] = []
    if settings.auth_token:
        lookups.append(static_token_lookup(settings.auth_token))
    if settings.auth_issuer is None:
        return Authenticator(token_lookups=lookups, required=settings.authenticates)
    client = IssuerClient(settings.auth_issuer, timeout=settings.auth_fetch_timeout)
    resource = ProtectedResource(settings.auth_issuer, settings.auth_scopes,
                                 settings.auth_audience, settings.name)
    return Authenticator(token_lookups=lookups,
                         verifier=IssuerVerifier(client, settings.auth_introspection_client),
                         resource=resource, required_scopes=settings.auth_scopes,
                         required=True)


async def start_authenticator(authenticator: Authenticator, origin: str) -> None:
    """The server listens at ``origin``: fix its resource identifiers and ask the issuer
    for its metadata now, so the first request does not wait for it. An issuer that does
    not answer is logged (clearly, once) and asked again when a token needs it."""
    verifier, resource = authenticator.verifier, authenticator.resource
    if not isinstance(verifier, IssuerVerifier) or resource is None:
        return
    resource.bind(origin)
    verifier.audiences = resource.audiences
    try:
        verifier.choose(await verifier.issuer.discover())
    except IssuerUnavailable:
        pass  # logged by the issuer client


async def close_authenticator(app: web.Application, authenticator: Authenticator) -> None:
    """``on_cleanup``: close the connections to the authorization server."""
    if isinstance(authenticator.verifier, IssuerVerifier):
        await authenticator.verifier.issuer.close()
