"""This server as an OAuth protected resource (RFC 9728): its resource identifiers and the
metadata document that tells a client which authorization server to ask for a token.

**Which URL is the resource.** The identifier is what tokens are checked against (their
``aud``), so it must never come from the request: a ``Host`` header is the client's to
choose, and a server that believed it would accept a token minted for another server the
attacker names in ``Host`` (the token passthrough MCP forbids). It is therefore fixed when
the server starts: ``--auth-audience`` when given (the public URL of a server behind a proxy
or on a public interface, where the server cannot know its own name), else derived from the
loopback address it listens on (``http://127.0.0.1:PORT``). Without ``--auth-audience`` each
MCP endpoint is its own resource (``http://127.0.0.1:PORT/mcp``, ``/ws``, ``/sse``), the
identifier a client derives from the URL it was given, and the root names the server as a
whole; a token for any of them is accepted. With ``--auth-audience`` there is one resource.

**Where the document is.** At ``/.well-known/oauth-protected-resource`` and at the
path-aware form, the well-known prefix inserted before the resource's path
(``/.well-known/oauth-protected-resource/mcp``); each answers the resource that its URL was
built from, as RFC 9728 section 3.3 requires clients to check. It is public: no token, any
origin (CORS ``*``, no credentials), cacheable.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from ...protocol.wire import PATH_HTTP, PATH_SSE, PATH_SSE_MESSAGE, PATH_WEBSOCKET
from .verifier import canonical_resource

__all__ = ["WELL_KNOWN", "ProtectedResource", "metadata_url"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"
# The MCP endpoints a client may have been given; POST /message belongs to the SSE stream.
_ENDPOINTS = (PATH_HTTP, PATH_WEBSOCKET, PATH_SSE)
_RESOURCE_OF_PATH = {PATH_SSE_MESSAGE: PATH_SSE}
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "*",
    "Access-Control-Max-Age": "3600",
}


def metadata_url(resource: str) -> str:
    """The metadata URL of ``resource``: the well-known prefix inserted between its
    authority and its path (RFC 9728 section 3.1)."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{parts.path.rstrip('/')}"


class ProtectedResource:
    """The resource identifiers of one server and its metadata document.

    Args:
        issuer: the authorization server (``authorization_servers``).
        scopes: ``scopes_supported`` (also what the 401 challenge asks for).
        audience: ``--auth-audience``; ``None`` to derive identifiers from the listening
            address, given to :meth:`bind` once the server listens (the port may be 0).
        name: ``resource_name``, for people reading a consent screen.
    """

    def __init__(self, issuer: str, scopes: tuple[str, ...], audience: str | None = None,
                 name: str | None = None) -> None:
        self.issuer = issuer
        self.scopes = scopes
        self.audience = audience.rstrip("/") if audience else None
        self.name = name
        self._origin: str | None = None

    def bind(self, origin: str) -> None:
        """The server listens at ``origin`` (``http://host:port``); identifiers derive from
        it unless ``--auth-audience`` was given."""
        self._origin = origin

    @property
    def bound(self) -> bool:
        return self.audience is not None or self._origin is not None

    def resource_for(self, path: str) -> str:
        """The resource a request to ``path`` (an MCP endpoint, or ``""`` for the server as
        a whole) is for."""
        if self.audience is not None:
            return self.audience
        if self._origin is None:
            raise RuntimeError("the protected resource is not bound to an address yet")
        path = _RESOURCE_OF_PATH.get(path, path)
        return self._origin + (path if path in _ENDPOINTS else "")

    @property
    def audiences(self) -> frozenset[str]:
        """Every identifier a token's ``aud`` may name, canonical."""
        if self.audience is not None:
            return frozenset({canonical_resource(self.audience)})
        return frozenset(canonical_resource(self.resource_for(p)) for p in ("", *_ENDPOINTS))

    def document(self, resource: str) -> dict[str, Any]:
        """The metadata of ``resource``."""
        doc: dict[str, Any] = {
            "resource": resource,
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
        }
        if self.scopes:
            doc["scopes_supported"] = list(self.scopes)
        if self.name:
            doc["resource_name"] = self.name
        return doc

    def resource_at(self, well_known_path: str) -> str | None:
        """The resource whose metadata URL has ``well_known_path``; None for no resource."""
        tail = well_known_path.removeprefix(WELL_KNOWN)
        if self.audience is not None:
            own = urlsplit(self.audience).path.rstrip("/")
            return self.audience if tail in ("", own) else None
        if tail == "" or tail in _ENDPOINTS:
            return self.resource_for(tail)
        return None

    async def handle(self, request: web.Request) -> web.Response:
        """``GET`` (or a CORS preflight) of a well-known metadata URL."""
        if request.method == hdrs.METH_OPTIONS:
            return web.Response(status=204, headers=_CORS)
        resource = self.resource_at(request.path)
        if resource is None:
            return web.json_response({"error": "not_found"}, status=404, headers=_CORS)
        return web.json_response(self.document(resource), headers={
            **_CORS, "Cache-Control": "public, max-age=300"})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route(hdrs.METH_GET, WELL_KNOWN, self.handle)
        app.router.add_route(hdrs.METH_OPTIONS, WELL_KNOWN, self.handle)
        app.router.add_route(hdrs.METH_GET, WELL_KNOWN + "/{tail:.+}", self.handle)
        app.router.add_route(hdrs.METH_OPTIONS, WELL_KNOWN + "/{tail:.+}", self.handle)
