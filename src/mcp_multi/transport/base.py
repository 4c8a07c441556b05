"""The one small interface every client transport implements, and the error mapping at its edge.

A transport moves whole JSON-RPC messages between us and one server; it knows nothing about
ids, futures, timeouts of requests, tools or output. The session layer
(:class:`mcp_multi.client.connection.MCPConnection`) drives it like this::

    await transport.connect()          # raises TransportError when the server is unreachable
    reader: frame = await transport.receive()   # repeatedly, from one task
    writers: await transport.send(message)      # from any task, concurrently
    transport.negotiated(version)      # after initialize, for transports that carry it
    await transport.close()            # idempotent; a blocked receive() then raises

``receive`` returns the text of one frame (one message, or a batch) and raises
:class:`ConnectionClosed` once the server is gone; a transport whose requests travel apart
(Streamable HTTP) raises :class:`RequestFailed` when one request's answer can no longer come,
and the session fails that request alone. Errors of aiohttp and the OS are mapped to our
tree here, at the edge, by :func:`map_transport_errors` (or, on the paths every request
takes, by a plain ``try`` that calls :func:`transport_error`: a context manager costs a
generator per message).

A transport whose answers come back to the very task that sent the request (Streamable
HTTP's JSON body) hands them to :attr:`ClientTransport.direct` when the session layer set
it: the session resolves the request there and then, with no hop through its reader task.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp

from ..protocol.errors import ConnectionClosed, MCPError, TransportError
from ..protocol.text import for_display
from .http1 import HTTP1Error

if TYPE_CHECKING:  # the hook is a Protocol: nothing of the client is imported at run time
    from ..client.auth.hook import RequestAuth
    from .plain_http import Answer

__all__ = [
    "AUTH_STATUSES",
    "DEFAULT_CONNECT_TIMEOUT",
    "ERROR_BODY_BYTES",
    "ERROR_TEXT_LIMIT",
    "MAX_AUTH_ROUNDS",
    "ClientTransport",
    "authorized",
    "describe_error",
    "map_transport_errors",
    "one_line",
    "peer_text",
    "read_error_body",
    "transport_error",
]

DEFAULT_CONNECT_TIMEOUT = 10.0
# The most characters of a server's text (an error page, a reason) one error message holds,
# and the most bytes of an error body read to find them.
ERROR_TEXT_LIMIT = 300
ERROR_BODY_BYTES = 64 * 1024
# The statuses an HTTP transport hands to its RequestAuth, and how many times one request
# is sent again after the hook asked for it (the hook bounds itself too).
AUTH_STATUSES = (401, 403)
MAX_AUTH_ROUNDS = 3


class ClientTransport(ABC):
    """One connection to one server, moving whole JSON-RPC messages.

    Attributes:
        kind: the transport's name on the command line (``websocket``, ``sse``, ...).
        scheme, default_path: how :meth:`url_for` makes a URL of ``host:port``.
        url: where the server is.
        era_probe: whether a client that was not told a protocol version asks
            ``server/discover`` first (2026-07-28) before falling back to ``initialize``; the
            transports that carry both eras in the wild (Streamable HTTP, stdio) do.
    """

    kind: ClassVar[str]
    era_probe: ClassVar[bool] = False
    # How a ``host:port`` target reads as a URL of this transport: ``scheme://host:port`` and
    # the path our server serves it at. Empty for transports that have no host:port form.
    scheme: ClassVar[str] = ""
    default_path: ClassVar[str] = ""

    @classmethod
    def url_for(cls, host: str, port: int) -> str:
        """The URL a server at ``host:port`` serves this transport at."""
        if not cls.scheme:
            raise NotImplementedError(f"{cls.kind} has no host:port form")
        return f"{cls.scheme}://{host}:{port}{cls.default_path}"

    # The authorization an HTTP transport's requests go through (set by its constructor).
    _auth: RequestAuth | None = None
    # Set by the session layer to take a frame answering a request in the task that sent it
    # (see the module docstring); returns ``False`` when the frame is not JSON at all.
    direct: Callable[[bytes | str], bool] | None = None

    @property
    def auth(self) -> RequestAuth | None:
        """The authorization this transport's HTTP requests go through (``None``: none)."""
        return self._auth

    def __init__(self, url: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        self.url = url
        self.connect_timeout = connect_timeout

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection.

        Raises:
            TransportError: the server cannot be reached or refused us.
            ProtocolError: the server answered but broke the transport's rules.
        """

    @abstractmethod
    async def send(self, message: dict[str, Any]) -> None:
        """Send one JSON-RPC message (a request, notification or response).

        Raises:
            ConnectionClosed: the connection is gone.
            TransportError: the server did not accept the message.
        """

    @abstractmethod
    async def receive(self) -> bytes | str:
        """Wait for the next frame from the server and return its JSON text.

        Raises:
            ConnectionClosed: the connection ended (by either side).
        """

    @abstractmethod
    async def close(self) -> None:
        """Close the connection and free its resources; safe to call more than once."""

    def negotiated(self, protocol_version: str) -> None:
        """Learn the protocol version the handshake settled on (for transports that send it)."""
        return None

    def forget_session(self) -> None:
        """The server no longer knows our session, as a request sent around this transport
        found: drop it (for transports that keep one; the others have nothing to forget)."""
        return None

    def accept_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Learn the server's tools; return those this transport can call (all, unless the
        transport has rules about them, as Streamable HTTP has for ``x-mcp-header``)."""
        return tools

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


def one_line(text: str) -> str:
    """``text`` with line breaks and runs of blanks folded: our error messages are one line
    (aiohttp's parser errors and servers' error pages span several)."""
    return " ".join(text.split())


def peer_text(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """A server's text made fit for an error message: one line, control characters escaped,
    clipped to ``limit`` characters saying how many were cut (a garbage server's error page
    can run to megabytes, and hold terminal escapes)."""
    return for_display(one_line(text), limit)


async def read_error_body(response: Answer, limit: int = ERROR_BODY_BYTES) -> str:
    """At most ``limit`` bytes of an error response's body, decoded (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.readany():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit].decode("utf-8", "replace")


def describe_error(exc: BaseException) -> str:
    """A short, readable, one-line reason for an error of aiohttp or the OS
    (``Connection refused``), escaped and clipped (aiohttp quotes what the server sent)."""
    return peer_text(_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return f"cannot resolve host {exc.host!r}"
        if os_error.errno:
            return os.strerror(os_error.errno)
        return os_error.strerror or str(os_error)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the server cut the stream off"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server disconnected"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"WebSocket handshake failed: HTTP {exc.status} {exc.message}".rstrip()
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status} {exc.message}".rstrip()
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, HTTP1Error):  # its own words say it all, on one line
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def map_transport_errors(what: str, *, closed: bool = False) -> Iterator[None]:
    """Turn errors of aiohttp and the OS into :class:`TransportError` with a readable message.

    Args:
        what: what we were doing, e.g. ``"connect to ws://localhost:8080/ws"``.
        closed: raise :class:`ConnectionClosed` (the connection is gone) rather than the
            plain :class:`TransportError`.
    """
    try:
        yield
    except MCPError:
        raise
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise transport_error(what, exc, closed=closed) from exc


def transport_error(what: str, exc: BaseException, *, closed: bool = False) -> TransportError:
    """The error :func:`map_transport_errors` raises for ``exc`` (an error of aiohttp or the
    OS) met while doing ``what``, for a hot path to raise from a plain ``except``."""
    klass = ConnectionClosed if closed else TransportError
    return klass(f"Cannot {what}: {describe_error(exc)}")


async def authorized(
    auth: RequestAuth,
    method: str,
    url: str,
    send: Callable[[dict[str, str]], Awaitable[aiohttp.ClientResponse]],
) -> aiohttp.ClientResponse:
    """Send one HTTP request through ``auth``: its headers on the request (``send`` gets
    them to add), the response shown to it, and after a 401 or 403 the request sent again
    while the hook says so, at most :data:`MAX_AUTH_ROUNDS` times. Returns the last
    response (unreleased); a refusal the hook gave up on is the caller's to report.
    """
    for round_ in range(MAX_AUTH_ROUNDS + 1):
        response = await send(await auth.headers(method, url))
        auth.observe(method, url, response.status, response.headers)
        if response.status not in AUTH_STATUSES or round_ == MAX_AUTH_ROUNDS:
            return response
        try:
            again = await auth.refused(method, url, response.status, response.headers)
        except BaseException:
            response.release()
            raise
        if not again:
            return response
        response.release()
    raise AssertionError("unreachable")
