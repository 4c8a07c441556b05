"""Discovery: from an MCP server's URL (and its 401) to the authorization server's endpoints.

The chain, as the MCP authorization specification orders it:

1. **Protected resource metadata** (RFC 9728): the ``resource_metadata`` URL of the
   challenge when it names one; otherwise the path-aware well-known URI
   (``/.well-known/oauth-protected-resource/<path of the MCP endpoint>``), then the root
   one. Its ``resource`` must name the server we talk to (:func:`resource_matches`): a
   document for another resource is refused, as the token would be.
2. **Authorization server metadata** for the first of its ``authorization_servers``: RFC
   8414 and OpenID Connect discovery at the URLs :func:`metadata_urls` lists, in the
   specification's order (path insertion first for an issuer with a path). A document is
   used only when its ``issuer`` is exactly the issuer it was fetched for (RFC 8414 section
   3.3): a mismatch is refused, not skipped.
3. **The 2025-03-26 fallbacks**, for servers older than protected resource metadata: no
   such document means the MCP server's origin is the authorization server; its metadata
   is looked for there, and without any, the default endpoints ``/authorize``, ``/token``
   and ``/register`` at that origin are used.

Everything read from a peer is bounded: each document's size (:data:`MAX_METADATA_BYTES`),
each request's time (the session's timeout), and what is shown of it in errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
from aiohttp import hdrs

from ...protocol.text import for_display
from .agent import AuthorizationFailed
from .challenge import BearerChallenge

__all__ = [
    "MAX_METADATA_BYTES",
    "AuthServerMetadata",
    "Discovery",
    "ProtectedResource",
    "discover",
    "fetch_json",
    "http_form",
    "metadata_urls",
    "oauth_error_text",
    "origin_of",
    "prm_urls",
    "resource_matches",
]

logger = logging.getLogger(__name__)

MAX_METADATA_BYTES = 256 * 1024
PRM_WELL_KNOWN = "/.well-known/oauth-protected-resource"
OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class ProtectedResource:
    """The parts of an RFC 9728 document the client uses."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] | None = None
    url: str = ""


@dataclass(frozen=True, slots=True)
class AuthServerMetadata:
    """An authorization server's endpoints and what it supports (RFC 8414).

    ``issuer`` is ``None`` only for the 2025-03-26 default endpoints (no metadata at all).
    """

    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    revocation_endpoint: str | None = None
    scopes_supported: tuple[str, ...] | None = None
    grant_types_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    code_challenge_methods_supported: tuple[str, ...] | None = None
    iss_parameter_supported: bool = False
    client_id_metadata_document_supported: bool = False
    raw: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def defaults(cls, origin: str) -> AuthServerMetadata:
        """The 2025-03-26 default endpoints of a server without metadata."""
        return cls(issuer=None, authorization_endpoint=f"{origin}/authorize",
                   token_endpoint=f"{origin}/token", registration_endpoint=f"{origin}/register")

    @classmethod
    def from_document(cls, doc: dict[str, Any], issuer: str) -> AuthServerMetadata:
        """Read a metadata document fetched for ``issuer``.

        Raises:
            AuthorizationFailed: its ``issuer`` differs, or an endpoint is missing.
        """
        if doc.get("issuer") != issuer:
            raise AuthorizationFailed(
                f"the authorization server metadata names issuer "
                f"'{for_display(str(doc.get('issuer')), 200)}', not "
                f"'{for_display(issuer, 200)}' it was fetched for; refusing it")
        # An https issuer's endpoints are https too: its metadata cannot downgrade them.
        plain = issuer.startswith("http://")
        authorize = _url(doc, "authorization_endpoint", plain)
        token = _url(doc, "token_endpoint", plain)
        if authorize is None or token is None:
            raise AuthorizationFailed(f"the metadata of {for_display(issuer, 200)} lacks the "
                                      "authorization or token endpoint")
        return cls(
            issuer=issuer,
            authorization_endpoint=authorize,
            token_endpoint=token,
            registration_endpoint=_url(doc, "registration_endpoint", plain),
            revocation_endpoint=_url(doc, "revocation_endpoint", plain),
            scopes_supported=_strings(doc.get("scopes_supported")),
            grant_types_supported=_strings(doc.get("grant_types_supported")),
            token_endpoint_auth_methods_supported=_strings(
                doc.get("token_endpoint_auth_methods_supported")),
            code_challenge_methods_supported=_strings(
                doc.get("code_challenge_methods_supported")),
            iss_parameter_supported=doc.get(
                "authorization_response_iss_parameter_supported") is True,
            client_id_metadata_document_supported=doc.get(
                "client_id_metadata_document_supported") is True,
            raw=doc,
        )


@dataclass(frozen=True, slots=True)
class Discovery:
    """Where to authorize for one MCP server.

    Attributes:
        resource: the ``resource`` indicator to send (RFC 8707): the protected resource
            metadata's ``resource``, or the server URL without one.
        protected_resource: the RFC 9728 document (``None``: the 2025-03-26 fallback).
        metadata: the authorization server's metadata.
    """

    resource: str
    protected_resource: ProtectedResource | None
    metadata: AuthServerMetadata

    @property
    def issuer(self) -> str | None:
        return self.metadata.issuer


def _url(doc: dict[str, Any], name: str, plain: bool) -> str | None:
    """The endpoint ``name`` of a metadata document: https, or http when ``plain``."""
    value = doc.get(name)
    if isinstance(value, str) and value.startswith(("https://", "http://") if plain
                                                   else ("https://",)):
        return value
    return None


def _strings(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(v for v in value[:200] if isinstance(v, str))


def http_form(url: str) -> str:
    """``url`` as the HTTP URL it is reached through: a WebSocket endpoint (``ws://``,
    ``wss://``) is the resource ``http://`` (``https://``) of the same host and path, whose
    metadata lives at that origin's well-known URLs (its upgrade is an HTTP ``GET``)."""
    parts = urlsplit(url)
    scheme = _HTTP_OF_WS.get(parts.scheme.lower())
    return urlunsplit(parts._replace(scheme=scheme)) if scheme else url


_HTTP_OF_WS = {"ws": "http", "wss": "https"}


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def _path_of(url: str) -> str:
    path = urlsplit(url).path
    return "" if path in ("", "/") else path.rstrip("/")


def prm_urls(server_url: str, from_challenge: str | None) -> list[str]:
    """Where to look for the protected resource metadata, in order."""
    if from_challenge:
        return [from_challenge]
    origin, path = origin_of(server_url), _path_of(server_url)
    urls = [f"{origin}{PRM_WELL_KNOWN}{path}"] if path else []
    urls.append(f"{origin}{PRM_WELL_KNOWN}")
    return urls


def metadata_urls(issuer: str) -> list[str]:
    """Where to look for an issuer's metadata, in the specification's order."""
    origin, path = origin_of(issuer), _path_of(issuer)
    if not path:
        return [f"{origin}{OAUTH_WELL_KNOWN}", f"{origin}{OIDC_WELL_KNOWN}"]
    return [f"{origin}{OAUTH_WELL_KNOWN}{path}", f"{origin}{OIDC_WELL_KNOWN}{path}",
            f"{origin}{path}{OIDC_WELL_KNOWN}"]


def resource_matches(server_url: str, resource: str) -> bool:
    """Whether a protected resource metadata ``resource`` covers ``server_url``: the same
    origin (scheme and host compared without case) and a path that is the server's path or
    one of its parents, segment-wise."""
    want, have = urlsplit(server_url), urlsplit(resource)
    if (want.scheme.lower(), want.netloc.lower()) != (have.scheme.lower(), have.netloc.lower()):
        return False
    if have.query or have.fragment:
        return False
    prefix = have.path.rstrip("/")
    path = want.path.rstrip("/")
    return path == prefix or path.startswith(prefix + "/")


async def fetch_json(http: aiohttp.ClientSession, url: str, *,
                     limit: int = MAX_METADATA_BYTES) -> dict[str, Any] | None:
    """GET ``url`` as a JSON object; ``None`` when it answers 4xx (no such document).

    Raises:
        AuthorizationFailed: unreachable, a server error, too big, or not a JSON object.
    """
    try:
        async with http.get(url, headers={hdrs.ACCEPT: "application/json"},
                            allow_redirects=False) as response:
            if 400 <= response.status < 500 or 300 <= response.status < 400:
                logger.debug("no metadata at %s (HTTP %s)", url, response.status)
                return None
            if response.status != 200:
                raise AuthorizationFailed(f"{for_display(url, 300)} answered HTTP "
                                          f"{response.status}")
            body = await read_bounded(response, limit, url)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise AuthorizationFailed(f"cannot fetch {for_display(url, 300)}: "
                                  f"{for_display(str(exc) or type(exc).__name__, 200)}") from None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AuthorizationFailed(f"{for_display(url, 300)} is not JSON") from None
    if not isinstance(doc, dict):
        raise AuthorizationFailed(f"{for_display(url, 300)} is not a JSON object")
    return doc


def oauth_error_text(answer: object) -> str:
    """``": error (description)"`` of an OAuth error answer (RFC 6749 section 5.2), escaped
    and cut; ``""`` when ``answer`` holds no ``error``."""
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
        return ""
    description = answer.get("error_description")
    text = f": {for_display(answer['error'], 100)}"
    if isinstance(description, str) and description:
        text += f" ({for_display(description, 200)})"
    return text


async def read_bounded(response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The whole body, refusing one over ``limit`` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise AuthorizationFailed(f"{for_display(what, 300)} sent over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise AuthorizationFailed(f"{for_display(what, 300)} sent over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def discover_resource(http: aiohttp.ClientSession, server_url: str,
                            challenge: BearerChallenge | None) -> ProtectedResource | None:
    """The protected resource metadata of ``server_url`` (``None``: it has none).

    Raises:
        AuthorizationFailed: a document was found but is unusable or names another resource.
    """
    from_header = challenge.resource_metadata if challenge else None
    urls = prm_urls(server_url, from_header)
    if from_header:
        urls += [u for u in prm_urls(server_url, None) if u not in urls]
    for url in urls:
        doc = await fetch_json(http, url)
        if doc is None:
            continue
        resource = doc.get("resource")
        servers = _strings(doc.get("authorization_servers")) or ()
        servers = tuple(s for s in servers if s.startswith(("https://", "http://")))
        if not isinstance(resource, str) or not servers:
            raise AuthorizationFailed(f"the protected resource metadata at "
                                      f"{for_display(url, 300)} lacks resource or "
                                      "authorization_servers")
        if not resource_matches(server_url, resource):
            raise AuthorizationFailed(
                f"the protected resource metadata is for '{for_display(resource, 200)}', "
                f"not {for_display(server_url, 200)}; refusing to authorize")
        return ProtectedResource(resource, servers, _strings(doc.get("scopes_supported")), url)
    return None


async def discover_metadata(http: aiohttp.ClientSession, issuer: str) -> AuthServerMetadata | None:
    """The metadata of ``issuer`` from the first URL that has it (``None``: none does)."""
    for url in metadata_urls(issuer):
        doc = await fetch_json(http, url)
        if doc is not None:
            return AuthServerMetadata.from_document(doc, issuer)
    return None


async def discover(http: aiohttp.ClientSession, server_url: str,
                   challenge: BearerChallenge | None) -> Discovery:
    """The whole chain of the module docstring.

    Raises:
        AuthorizationFailed: a check failed, or the authorization server has no metadata.
    """
    server_url = http_form(server_url)
    prm = await discover_resource(http, server_url, challenge)
    if prm is None:
        # 2025-03-26: the MCP server's origin is the authorization server.
        origin = origin_of(server_url)
        logger.info("%s has no protected resource metadata; trying the 2025-03-26 discovery "
                    "at %s", server_url, origin)
        metadata = await discover_metadata(http, origin)
        return Discovery(server_url, None, metadata or AuthServerMetadata.defaults(origin))
    issuer = prm.authorization_servers[0]
    metadata = await discover_metadata(http, issuer)
    if metadata is None:
        raise AuthorizationFailed(f"the authorization server {for_display(issuer, 200)} "
                                  "publishes no metadata")
    return Discovery(prm.resource, prm, metadata)
