"""Connection-level limits of the HTTP server: a cap on open connections, a deadline for each
request head, and the open-file limit they are measured against.

Theory of operation. aiohttp gives every accepted socket a ``RequestHandler`` (an asyncio
protocol) and bounds neither how many there are nor how long a request head may take: a peer
that sends ``GET / HTTP/1.1`` and then a byte every few seconds (or nothing) holds a socket
for an hour, and a few thousand of them exhaust the descriptors, after which nobody connects
and asyncio logs a traceback per failed ``accept``. So :class:`GuardedSite` listens with a
protocol factory that wraps each ``RequestHandler`` in a :class:`GuardedConnection`, which

- refuses a connection past ``max_connections`` at once (a fixed 503, then close), before
  aiohttp sees it; the cap defaults to the soft ``RLIMIT_NOFILE`` (raised to the hard limit at
  start-up) minus a reserve for the files, pipes and sessions the server itself opens;
- gives every request head ``header_timeout`` seconds, counted from the connection's first
  byte (or its opening) and, on a keep-alive connection, from the first byte after the last
  request ended; the request guard (found through
  :meth:`ConnectionLimiter.connection_of`) tells it when a request reached the application,
  so a WebSocket or an SSE stream, which is a request in progress for its whole life, is
  never cut by it;
- forwards everything else to aiohttp unchanged.

Idle keep-alive connections are aiohttp's own ``keepalive_timeout``, which the runner is
given. Refusals, expired heads and failed accepts are logged through a :class:`LogThrottle`.

A response that streams for as long as its client listens (a legacy SSE stream) need not
keep aiohttp's machinery for its whole life: :func:`hand_over` gives the connection, once
the response head is out, to a protocol of the caller's, and makes aiohttp forget it (its
request handler, parser, tasks and timers go; the socket stays open and still counts under
the cap). From then on the guarded connection forwards the transport's callbacks to that
protocol, and no request head is timed on it any more.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..protocol.errors import InvalidRequest
from ..protocol.jsonrpc import dumps, error_response
from ..protocol.wire import JSON_TYPE
from .httplog import LogThrottle

__all__ = [
    "ConnectionLimiter",
    "GuardedConnection",
    "GuardedSite",
    "connection_budget",
    "hand_over",
    "http_url",
    "open_file_warning",
    "open_files_needed",
    "raise_open_file_limit",
]

logger = logging.getLogger(__name__)

# The message asyncio's event loop reports for EMFILE/ENFILE/ENOBUFS/ENOMEM in accept().
_ACCEPT_FAILED = "socket.accept() out of system resource"


def _refusal_bytes() -> bytes:
    body = dumps(error_response(None, InvalidRequest(
        "Service Unavailable: too many connections; try again later")))
    head = ("HTTP/1.1 503 Service Unavailable\r\n"
            f"Content-Type: {JSON_TYPE}\r\nContent-Length: {len(body)}\r\n"
            "Retry-After: 1\r\nConnection: close\r\n\r\n")
    return head.encode() + body


_REFUSAL = _refusal_bytes()


def http_url(host: str, port: int) -> str:
    """``http://host:port`` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return (before, after).

    Where the hard limit is unlimited, the soft one goes to 1,048,576 (what Linux allows by
    default). Where it cannot be raised, both numbers are what it is.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        logger.info("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
        return soft, soft
    return soft, target


def connection_budget(open_files: int) -> int:
    """Connections a server may hold under an open-file limit of ``open_files``: the limit
    minus a reserve (an eighth, between 16 and 256) for everything else the process opens."""
    reserve = max(16, min(256, open_files // 8))
    return max(1, open_files - reserve)


def open_files_needed(sessions: int, listeners: int = 1) -> int:
    """The smallest open-file limit under which a server can hold ``sessions`` open streams
    (a socket each) besides its ``listeners`` listening sockets, with the reserve of
    :func:`connection_budget` for everything else it opens."""
    wanted = sessions + listeners
    eighths = -(-wanted * 8 // 7)
    candidates = (wanted + 16, eighths, eighths + 1, wanted + 256)
    return min(n for n in candidates if connection_budget(n) >= wanted)


def open_file_warning(open_files: int, hard: int, sessions: int,
                      listeners: int = 1) -> str | None:
    """What to say when an open-file limit of ``open_files`` (hard limit ``hard``) is too
    low for ``sessions`` open sessions (``--max-sessions``), or None when it is enough."""
    needed = open_files_needed(sessions, listeners)
    if open_files >= needed:
        return None
    hard_text = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return (f"the open-file limit of {open_files} (hard limit {hard_text}) is too low for "
            f"--max-sessions {sessions}: each open session holds a socket, and with "
            f"{listeners} listening socket{'s' if listeners != 1 else ''} and the server's "
            f"own files {needed} are needed, so at most {connection_budget(open_files)} "
            f"connections will be served; raise the limit (`ulimit -n {needed}` in the shell "
            f"that starts the server, LimitNOFILE={needed} in its systemd unit, or nofile in "
            "/etc/security/limits.conf) or lower --max-sessions")


class ConnectionLimiter:
    """The connection cap and head deadline of one server, and its throttled log lines.

    Args:
        max_connections: connections held at once; more are refused with a 503.
        header_timeout: seconds a request head may take, from its first byte.
    """

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.active = 0
        self._by_handler: dict[RequestHandler, GuardedConnection] = {}
        # These come in floods, where one line per interval and a count say it all.
        self.refusals = LogThrottle(logger, "connections refused", limit=1)
        self.slow_heads = LogThrottle(logger, "connections closed for a slow request head",
                                      limit=3)
        self.accept_failures = LogThrottle(logger, "failed accepts", limit=1)

    def protocol_factory(self, make_handler: Callable[[], RequestHandler]
                         ) -> Callable[[], GuardedConnection]:
        """What ``loop.create_server`` is given: each connection a guarded aiohttp handler."""
        return lambda: GuardedConnection(self, make_handler)

    def admit(self, peer: Any) -> bool:
        """Whether a new connection from ``peer`` fits under the cap (and now counts)."""
        if self.active >= self.max_connections:
            self.refusals.log(logging.WARNING, "refused a connection from %s: %d connections "
                              "open (--max-connections)", _address(peer), self.active)
            return False
        self.active += 1
        return True

    def connection_of(self, request: web.BaseRequest) -> GuardedConnection | None:
        """The guarded connection serving ``request``, which the application tells when a
        request reaches it (:meth:`GuardedConnection.request_started`, then
        :meth:`~GuardedConnection.request_ended`); None for one it does not guard."""
        return self._by_handler.get(request.protocol)

    def register(self, handler: RequestHandler, connection: GuardedConnection) -> None:
        self._by_handler[handler] = connection

    def forget(self, handler: RequestHandler) -> None:
        """aiohttp no longer serves this connection (it was handed over); it still counts."""
        self._by_handler.pop(handler, None)

    def release(self) -> None:
        self.active -= 1

    def flush(self) -> None:
        """Report what the throttles held back."""
        for throttle in (self.refusals, self.slow_heads, self.accept_failures):
            throttle.flush()

    def quiet_accept_failures(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Route the loop's "out of system resource" accept errors through a throttle (asyncio
        reports each with a traceback); returns what undoes it."""
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if context.get("message") == _ACCEPT_FAILED:
                self.accept_failures.log(logging.WARNING, "cannot accept a connection: %s",
                                         context.get("exception"))
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)

        def undo() -> None:
            if loop.get_exception_handler() is handle:
                loop.set_exception_handler(previous)

        return undo


def _address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def hand_over(request: web.BaseRequest, protocol: asyncio.Protocol) -> bool:
    """Give the connection of ``request``, whose response head has been sent, to
    ``protocol``, and make aiohttp forget it (module docstring). False, changing nothing,
    when the connection is already closing.

    After this the caller owns the connection: it writes to ``request.transport`` itself
    (the rest of the response, in the framing its head announced), gets the transport's
    callbacks on ``protocol``, and closes it. The request's handler should return at once
    (aiohttp cancels its task): nothing it writes through aiohttp reaches the client.
    """
    transport = request.transport
    handler = request.protocol
    if transport is None or transport.is_closing():
        return False
    current = transport.get_protocol()
    if isinstance(current, GuardedConnection):
        current.hand_over(protocol)
    else:
        transport.set_protocol(protocol)
    # aiohttp closes the transport of a connection it drops, unless it has none any more.
    handler.transport = None
    handler.connection_lost(None)
    return True


class GuardedConnection(asyncio.Protocol):
    """One accepted socket: admitted under the cap, its request heads under a deadline, all
    else handed to aiohttp's ``RequestHandler`` as it comes (or, once :func:`hand_over`
    gave the connection away, to the protocol it was given to)."""

    __slots__ = ("_handed_over", "_handler", "_head_since", "_head_timer", "_in_request",
                 "_limiter", "_loop", "_make_handler", "_transport", "reads")

    def __init__(self, limiter: ConnectionLimiter,
                 make_handler: Callable[[], RequestHandler]) -> None:
        self._limiter, self._make_handler = limiter, make_handler
        # aiohttp's handler, made only for an admitted connection: a refusal costs no parser.
        self._handler: RequestHandler | None = None
        # The protocol the connection was handed over to, which then gets every callback.
        self._handed_over: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        # The head deadline is kept lazily: ``_head_since`` is when the head being awaited
        # began (None when none is), and the one timer, armed for the first head, is not
        # cancelled when a head arrives whole; when it fires it re-arms itself for what is
        # left of the current head's time, if a head is awaited at all. A busy keep-alive
        # connection so costs a clock read per request, not a timer made and cancelled.
        self._head_since: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._in_request = 0
        # Chunks received so far: a WebSocket's liveness is that this moves (its pinger
        # compares it between looks, which costs the connection nothing per frame).
        self.reads = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream socket's transport (uvloop's is one without deriving from asyncio's class).
        transport = cast(asyncio.Transport, transport)
        if not self._limiter.admit(transport.get_extra_info("peername")):
            transport.write(_REFUSAL)
            transport.close()
            return
        self._transport = transport
        self._handler = handler = self._make_handler()
        self._limiter.register(handler, self)
        handler.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        if self._handed_over is not None:
            self._handed_over.data_received(data)
            return
        if self._handler is None:
            return
        if not self._in_request and self._head_since is None:
            self._arm()  # the first byte of the next request head on a kept-alive connection
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        if self._handed_over is not None:
            return self._handed_over.eof_received()
        if self._handler is not None:
            self._handler.eof_received()
        return None

    def pause_writing(self) -> None:
        if self._handed_over is not None:
            self._handed_over.pause_writing()
        elif self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handed_over is not None:
            self._handed_over.resume_writing()
        elif self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        handed_over, self._handed_over = self._handed_over, None
        if handed_over is not None:
            self._limiter.release()
            handed_over.connection_lost(exc)
            return
        handler, self._handler = self._handler, None
        if handler is None:
            return
        self._stop_timer()
        self._limiter.forget(handler)
        self._limiter.release()
        handler.connection_lost(exc)

    def hand_over(self, protocol: asyncio.Protocol) -> None:
        """From now on every callback goes to ``protocol`` (see :func:`hand_over`, which
        also tells aiohttp's handler)."""
        handler, self._handler = self._handler, None
        if handler is not None:
            self._limiter.forget(handler)
        self._stop_timer()
        self._handed_over = protocol

    def request_started(self) -> None:
        """A request head arrived whole and reached the application."""
        self._in_request += 1
        self._head_since = None  # no request head is awaited (the timer is left to lapse)

    def request_ended(self) -> None:
        self._in_request -= 1

    def _arm(self) -> None:
        """A request head is awaited from now on."""
        self._head_since = self._loop.time()
        if self._head_timer is None:
            self._head_timer = self._loop.call_later(self._limiter.header_timeout,
                                                     self._head_check)

    def _stop_timer(self) -> None:
        self._head_since = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_check(self) -> None:
        self._head_timer = None
        since = self._head_since
        if since is None or self._in_request or self._transport is None \
                or self._handler is None:
            return
        left = since + self._limiter.header_timeout - self._loop.time()
        if left > 0:
            self._head_timer = self._loop.call_later(left, self._head_check)
            return
        self._head_since = None
        peer = self._transport.get_extra_info("peername")
        self._limiter.slow_heads.log(logging.INFO, "closed the connection from %s: no whole "
                                     "request head within %g s", _address(peer),
                                     self._limiter.header_timeout)
        self._handler.force_close()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through ``limiter`` (``web.TCPSite`` otherwise).
    ``reuse_port`` listens with ``SO_REUSEPORT``, so that sibling processes (``--workers``)
    listen on the same port and the kernel spreads new connections among them."""

    __slots__ = ("_bound_port", "_host", "_limiter", "_port", "_reuse_address", "_reuse_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int,
                 limiter: ConnectionLimiter, *, reuse_address: bool = True,
                 reuse_port: bool = False, backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port, self._limiter = host, port, limiter
        self._reuse_address, self._reuse_port = reuse_address, reuse_port
        self._bound_port = port

    @property
    def name(self) -> str:
        return http_url(self._host, self._bound_port)

    @property
    def port(self) -> int:
        """The port listened on (the real one once started on port 0)."""
        return self._bound_port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._limiter.protocol_factory(server), self._host, self._port,
            backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port)
        if self._server.sockets:
            self._bound_port = int(self._server.sockets[0].getsockname()[1])
