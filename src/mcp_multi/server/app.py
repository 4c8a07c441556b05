"""The aiohttp application: routes, origin guard, CORS, and a runner for CLI, tests and demos."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import operator
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp_cors
from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import UrlMappingMatchInfo

from ..eventloop import loop_name
from ..protocol.errors import InvalidRequest
from ..protocol.jsonrpc import dumps, error_response
from ..protocol.text import for_display
from ..protocol.wire import (
    JSON_TYPE,
    LAST_EVENT_ID_HEADER,
    METHOD_HEADER,
    NAME_HEADER,
    PATH_HTTP,
    PATH_SSE,
    PATH_SSE_MESSAGE,
    PATH_WEBSOCKET,
    SESSION_HEADER,
    VERSION_HEADER,
)
from .auth.authenticator import PRINCIPAL, Refusal
from .auth.configure import build_authenticator, close_authenticator, start_authenticator
from .auth.principal import ANONYMOUS
from .cluster import start_sharing, stop_sharing
from .dispatcher import build_dispatcher
from .endpoints.sse import handle_message, handle_sse
from .endpoints.streamable_http import (
    close_http_sessions,
    handle_mcp_delete,
    handle_mcp_get,
    handle_mcp_post,
)
from .endpoints.websocket import handle_websocket
from .httplog import RequestErrorLog
from .limits import (
    ConnectionLimiter,
    GuardedSite,
    connection_budget,
    http_url,
    raise_open_file_limit,
)
from .metrics import render_metrics
from .settings import ServerSettings, is_loopback_host
from .state import STATE, ServerState
from .store import open_store

__all__ = ["RunningServer", "create_app", "start_server"]

logger = logging.getLogger(__name__)

TRANSPORTS = ("websocket", "sse", "http")
ENDPOINTS = {"websocket": PATH_WEBSOCKET, "sse": PATH_SSE, "sse_message": PATH_SSE_MESSAGE,
             "http": PATH_HTTP}
PATH_HEALTH = "/healthz"
PATH_METRICS = "/metrics"
# Paths behind the Origin and Host checks and the bearer token. /healthz stays open so that a
# load balancer's monitor needs no secret; /metrics names tools and counts traffic, so it is
# guarded like the MCP endpoints.
_GUARDED_PATHS = frozenset(ENDPOINTS.values()) | {PATH_METRICS}
# Headers read as text by the guard or the endpoints. aiohttp decodes header bytes as UTF-8
# with surrogateescape, so a byte that is no UTF-8 becomes a lone surrogate that raises
# wherever the value is encoded again (the token comparison, a reply that names it, a session
# id written back); such a request is refused before anything reads them.
_TEXT_HEADERS = (hdrs.AUTHORIZATION, hdrs.ORIGIN, hdrs.HOST, SESSION_HEADER, VERSION_HEADER,
                 METHOD_HEADER, NAME_HEADER, LAST_EVENT_ID_HEADER)


def _host_header_name(value: str) -> str | None:
    """The host name a ``Host`` header names (``name``, ``name:port``, ``[v6]:port``); None
    when it is anything else (userinfo, a path or fragment, a bad port)."""
    try:
        parts = urlsplit(f"//{value}")
        _ = parts.port  # raises ValueError for a port that is no number in range
    except ValueError:
        return None
    if not value or parts.netloc != value or "@" in value:
        return None
    return parts.hostname


@functools.lru_cache(maxsize=256)
def _loopback_host_header(value: str) -> bool:
    """Whether a ``Host`` header names a loopback host. Cached: every request on a loopback
    server asks, nearly always with the same value, and parsing it cost ~80 µs a request."""
    return is_loopback_host(_host_header_name(value) or "", subdomains=True)


def _origin_allowed(settings: ServerSettings, origin: str) -> bool:
    if "*" in settings.allowed_origins or origin in settings.allowed_origins:
        return True
    host = urlsplit(origin).hostname or ""
    return is_loopback_host(host, subdomains=True)


_VALUE = operator.itemgetter(1)  # a raw header's value


def _undecodable_header(request: web.BaseRequest) -> str | None:
    """The first of :data:`_TEXT_HEADERS` holding a byte that is not UTF-8, if any."""
    # Nearly every request's header values are ASCII: one look at the raw bytes says so
    # (joined in C, with no Python-level loop over the headers).
    if b"".join(map(_VALUE, request.raw_headers)).isascii():
        return None
    headers = request.headers
    for name in _TEXT_HEADERS:
        for value in headers.getall(name, ()):
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    return name
    return None


def _bad_request(message: str, status: int = 400,
                 headers: dict[str, str] | None = None) -> web.Response:
    """A refusal before any handler: the HTTP status with a JSON-RPC error body (id null)."""
    return web.Response(status=status, headers=headers, content_type=JSON_TYPE,
                        body=dumps(error_response(None, InvalidRequest(message))))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RequestGuard:
    """What every request meets before the application routes it: header sanity on every
    path; DNS-rebinding protection and the optional bearer token on the MCP endpoints and
    ``/metrics``; a body that cannot be read is a 400. It also tells the connection limiter
    when a request reached the application (see :mod:`~mcp_multi.server.limits`).

    A header the server reads as text must be UTF-8 (else 400, a JSON-RPC error body). A
    browser ``Origin`` must be a loopback origin or one of ``--allowed-origin``; when the
    server listens on loopback, the ``Host`` header must name a loopback host too.

    It is the aiohttp server's request handler, wrapping the application's own
    (:meth:`install`), rather than a middleware: aiohttp then runs no middleware chain at all
    (a middleware costs two coroutines and a wrapper per request), and what the guard needs
    is looked up once here, not through ``request.app`` (which is only known once the
    request is routed). The POSTs to the MCP endpoints, every call's request, skip the
    application's router too once their route is known (:meth:`_route_first`).
    """

    __slots__ = ("_authenticator", "_handle", "_limiter", "_loopback", "_metrics_token",
                 "_routed", "_settings")

    def __init__(self, app: web.Application, limiter: ConnectionLimiter) -> None:
        self._handle: Handler = app._handle  # the application: routing, then the handler
        state = app[STATE]
        self._settings = state.settings
        # The MCP POSTs' routes, found once by the application and then served from here
        # (see _route_first).
        self._routed: dict[tuple[str, str], UrlMappingMatchInfo] = {}
        self._authenticator = state.authenticator
        self._limiter = limiter
        self._loopback = is_loopback_host(state.settings.host)
        self._metrics_token = state.settings.metrics_token

    def install(self, runner: web.AppRunner) -> None:
        """Serve every request of ``runner`` (set up, not started) through this guard."""
        server = runner.server
        assert server is not None, "the runner must be set up first"
        server.request_handler = self  # read by each connection's handler when it is made

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        connection = self._limiter.connection_of(request)
        if connection is not None:
            connection.request_started()
        try:
            # An MCP endpoint or /metrics (a CORS preflight carries no credentials: it is let
            # through to the CORS handler).
            method, path = request.method, request.path
            guarded = path in _GUARDED_PATHS and method != hdrs.METH_OPTIONS
            refusal = self._refusal(request, guarded)
            if refusal is None and guarded:
                if self._metrics_token is None and not self._authenticator.active:
                    request[PRINCIPAL] = ANONYMOUS  # nobody's credentials are looked at
                else:
                    refusal = await self._credentials(request)
            if refusal is not None:
                return refusal
            if guarded and method == hdrs.METH_POST:
                # Every call's request: served by the route the application found for the
                # first such POST (see _route_first), its handler called straight away.
                # (aiohttp's server makes web.Request objects, the application's factory: no
                # cast, which is a call.)
                found = self._routed.get((method, path))
                if found is None or hdrs.EXPECT in request.headers:
                    return await self._route_first(request)  # type: ignore[arg-type]
                request._match_info = found  # type: ignore[attr-defined]
                return await found.handler(request)  # type: ignore[arg-type]
            return await self._handle(request)  # type: ignore[arg-type]
        except web.RequestPayloadError as exc:
            # Bad chunking, a compressed body that does not decompress: the peer's fault.
            cause = exc.__cause__ or exc
            detail = " ".join(str(getattr(cause, "message", cause)).split())
            return _bad_request(f"Bad Request: the body cannot be read: "
                                f"{for_display(detail, 200)}")
        finally:
            if connection is not None:
                connection.request_ended()

    async def _route_first(self, request: web.Request) -> web.StreamResponse:
        """Serve a POST to an MCP endpoint (the requests of every call) through the
        application, and remember the route it found: frozen, the same for every request to
        that method and path, it is given to the next ones, whose handler is then called
        straight away (:meth:`__call__`), without the application's router. The application
        has no middleware (CORS adds its headers as a response is prepared, by the route it
        finds on the request), and a request asking ``Expect: 100-continue`` is always left to
        it (its route answers the expectation)."""
        routed = self._routed
        response = await self._handle(request)
        match_info = request._match_info
        if (isinstance(match_info, UrlMappingMatchInfo) and match_info.http_exception is None
                and len(routed) < len(_GUARDED_PATHS)):
            routed[(request.method, request.path)] = match_info
        return response

    def _refusal(self, request: web.BaseRequest, guarded: bool) -> web.Response | None:
        """The answer refusing ``request`` before it is routed for what its headers are (not
        for its credentials: :meth:`_credentials`), or None to let it through. ``guarded``:
        it goes to an MCP endpoint or ``/metrics``."""
        bad = _undecodable_header(request)
        if bad is not None:
            return _bad_request(f"Bad Request: header {bad} is not valid UTF-8")
        if not guarded:
            return None
        headers = request.headers
        origin = headers.get(hdrs.ORIGIN)
        if origin is not None and not _origin_allowed(self._settings, origin):
            return _bad_request(f"Forbidden: origin {for_display(origin, 200)} is not allowed",
                                403)
        if self._loopback:
            host = request.host
            if not _loopback_host_header(host):
                return _bad_request(f"Forbidden: host {for_display(host, 200)} is not allowed",
                                    403)
        return None

    async def _credentials(self, request: web.BaseRequest) -> web.Response | None:
        """Check the caller of a guarded request and leave it on the request (``PRINCIPAL``);
        the refusal (401, 403, 503 with its ``WWW-Authenticate``) when it may not pass.

        ``/metrics`` takes ``--metrics-token`` when one is set (a scraper does no OAuth), else
        the MCP endpoints' credentials.
        """
        header = request.headers.get(hdrs.AUTHORIZATION)
        metrics_token = self._metrics_token
        if metrics_token is not None and request.path == PATH_METRICS:
            if hmac.compare_digest((header or "").encode(), f"Bearer {metrics_token}".encode()):
                return None
            return _bad_request("Unauthorized: a valid bearer token is required", 401,
                                {hdrs.WWW_AUTHENTICATE: "Bearer"})
        authenticator = self._authenticator
        if not authenticator.active:
            request[PRINCIPAL] = ANONYMOUS
            return None
        caller = await authenticator.authenticate(request.path, header)
        if isinstance(caller, Refusal):
            return _bad_request(caller.message, caller.status, caller.headers)
        request[PRINCIPAL] = caller
        return None


async def handle_health(request: web.Request) -> web.Response:
    """``/healthz``, open to all (a load balancer's monitor needs no secret). A server that
    checks credentials or has a policy tells strangers how many tools it has, not which: the
    names are for callers its policy lets see them."""
    state = request.app[STATE]
    settings = state.settings
    names = state.dispatcher.registry.names
    guarded = settings.authenticates or settings.policy is not None
    return web.json_response({
        "status": "ok",
        "name": settings.name,
        **({"tool_count": len(names)} if guarded else {"tools": names}),
        "connections": state.stats.connections,
        "uptime_seconds": round(time.time() - state.stats.started, 3),
        **({"worker": settings.worker} if settings.worker is not None else {}),
    })


async def handle_metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    dispatcher = state.dispatcher
    text = render_metrics(dispatcher.settings.name, dispatcher.stats,
                          dispatcher.resources.resident_memory(),
                          instance=state.store.instance if state.store.shared else None,
                          worker=dispatcher.settings.worker)
    return web.Response(text=text, content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})


async def close_streams(app: web.Application) -> None:
    """``on_shutdown``: end WebSocket (close code 1001) and SSE streams cleanly, at once."""
    handlers = list(app[STATE].stream_handlers)
    for task in handlers:
        task.cancel()
    if handlers:
        await asyncio.wait(handlers, timeout=1.0)


def create_app(settings: ServerSettings) -> web.Application:
    """Build the server application; raises ``ValueError`` for an unknown tool name or an
    authorization configuration that cannot work."""
    dispatcher = build_dispatcher(settings, TRANSPORTS, dict(ENDPOINTS))
    stats = dispatcher.stats
    app = web.Application(client_max_size=settings.max_message_size * 4)
    authenticator = build_authenticator(settings)
    permissions = dispatcher.context.permissions
    if permissions.policy is not None:  # the policy's static tokens are asked first
        authenticator.token_lookups.insert(0, permissions.principal_for_token)
    app[STATE] = ServerState(settings, dispatcher, stats, authenticator,
                             open_store(settings.session_store))
    app.on_startup.append(start_sharing)
    app.on_cleanup.append(stop_sharing)
    if authenticator.resource is not None:
        authenticator.resource.add_routes(app)
        app.on_cleanup.append(functools.partial(close_authenticator,
                                                authenticator=authenticator))
    routes = [
        app.router.add_get(PATH_WEBSOCKET, handle_websocket),
        app.router.add_get(PATH_SSE, handle_sse),
        app.router.add_post(PATH_SSE_MESSAGE, handle_message),
        app.router.add_post(PATH_HTTP, handle_mcp_post),
        app.router.add_get(PATH_HTTP, handle_mcp_get),
        app.router.add_delete(PATH_HTTP, handle_mcp_delete),
        app.router.add_get(PATH_HEALTH, handle_health),
        app.router.add_get(PATH_METRICS, handle_metrics),
    ]
    app.on_shutdown.append(close_http_sessions)
    app.on_shutdown.append(close_streams)
    if settings.allowed_origins:
        cors = aiohttp_cors.setup(app, defaults={
            origin: aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
                allow_credentials=False,
                expose_headers=(SESSION_HEADER, VERSION_HEADER),
                allow_headers="*",
            )
            for origin in settings.allowed_origins
        })
        for route in routes:
            cors.add(route)
    return app


@dataclass(slots=True)
class RunningServer:
    """A server listening on a socket; ``port`` is the real port when 0 was asked."""

    runner: web.AppRunner
    host: str
    port: int
    error_log: RequestErrorLog
    limiter: ConnectionLimiter
    _restore_loop: Callable[[], None]

    @property
    def base_url(self) -> str:
        return http_url(self.host, self.port)

    @property
    def state(self) -> ServerState:
        return self.runner.app[STATE]

    async def close(self) -> None:
        await self.runner.cleanup()
        self.error_log.flush()
        self.limiter.flush()
        self._restore_loop()


def _connection_limiter(settings: ServerSettings) -> ConnectionLimiter:
    """The cap and head deadline of a new server, under an open-file limit raised first."""
    before, open_files = raise_open_file_limit()
    budget = connection_budget(open_files)
    cap = budget if settings.max_connections is None else settings.max_connections
    if cap > budget:
        logger.warning("--max-connections %d exceeds what the open-file limit of %d allows; "
                       "using %d", cap, open_files, budget)
        cap = budget
    raised = f" (raised from {before})" if open_files != before else ""
    logger.info("open-file limit %d%s: at most %d connections, request heads within %g s, "
                "idle keep-alive %g s", open_files, raised, cap, settings.header_timeout,
                settings.keepalive_timeout)
    return ConnectionLimiter(cap, settings.header_timeout)


async def start_server(settings: ServerSettings, *, reuse_port: bool = False) -> RunningServer:
    """Start serving ``settings`` (port 0 picks a free port); stop with ``close()``.
    ``reuse_port``: listen with ``SO_REUSEPORT`` beside other processes on the same port
    (the workers of :mod:`mcp_multi.server.workers`)."""
    app = create_app(settings)
    limiter = _connection_limiter(settings)
    # handler_cancellation: a client that drops an SSE stream frees its session at once.
    # logger: aiohttp's per-request error log, made one throttled line per malformed request.
    error_log = RequestErrorLog()
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=1.0, logger=error_log,
                           keepalive_timeout=settings.keepalive_timeout)
    await runner.setup()
    RequestGuard(app, limiter).install(runner)
    site = GuardedSite(runner, settings.host, settings.port, limiter, reuse_port=reuse_port)
    await site.start()
    await start_authenticator(app[STATE].authenticator, http_url(settings.host, site.port))
    loop = asyncio.get_running_loop()
    restore_loop = limiter.quiet_accept_failures(loop)
    logger.info("%s listening on %s:%s (event loop: %s)", settings.name, settings.host,
                site.port, loop_name(loop))
    return RunningServer(runner, settings.host, site.port, error_log, limiter, restore_loop)
