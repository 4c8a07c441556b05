"""A lean keep-alive HTTP/1.1 client pool: the hot path of POSTs over Streamable HTTP.

The Streamable HTTP transport POSTs every message through it (over plain ``http://``, see
:mod:`.streamable_http`), and so does the load mode, which must drive a server about as hard
as ``wrk`` does from one Python process. A general client (aiohttp's ``ClientSession``)
spends most of a call on things a POST to one MCP endpoint does not need: building header
multidicts, tracing hooks, redirects, a stream reader per answer. This module does one
thing: send a request whose header bytes the caller encoded, and read the answer with
httptools (llhttp, in C) over a plain :class:`asyncio.Protocol`.

Theory of operation
-------------------
An :class:`HTTP1Pool` holds at most ``limit`` connections to one ``host:port``, opened lazily.
:meth:`HTTP1Pool.request` takes an idle connection (the one used last, so a light load keeps
few connections warm), or opens one while fewer than ``limit`` are open, or waits in line for
one. The request goes out in ONE write: the request line and ``Host`` line (encoded once per
method and target), the caller's header lines, ``Content-Length`` and the body, joined once.

Each connection is a :class:`_Connection` protocol with one exchange in flight at most (no
pipelining). Its parser calls back as the answer arrives: header lines go into a small dict
(lower-case names; a repeated name is joined with ``", "``), body pieces into a list joined
once at the end. When the answer is complete, its future gets the :class:`HTTP1Response` and
the connection goes back to the pool: straight to the first caller waiting in line, or onto
the idle stack. It is closed instead when the answer said ``Connection: close`` (or was
HTTP/1.0 without keep-alive), when the body ran until the peer closed, after a ``HEAD``, or
when the request was still being written when the answer came.

Streamed answers
----------------
A request may name a media type to stream (``stream_type="text/event-stream"``). An answer
of that type is handed over as soon as its head has come, with :attr:`HTTP1Response.stream`
to read its body from as it arrives (:meth:`BodyStream.readany`); the connection carries the
body there and goes back to the pool when the body is whole. Closing the stream before
that closes the connection (the way a client cancels a request on Streamable HTTP). A
reader that falls behind pauses the connection's reading (more than :data:`STREAM_HIGH_WATER`
bytes waiting), so a fast server costs buffered bytes, not memory without end. The size
of a streamed body is not bounded (its reader bounds its events); the timeout covers the
wait for the head only.

A connection that has anything wrong with it is closed, never reused: a timeout, a body over
``max_body``, too many or too long header lines, bytes the parser refuses, bytes arriving
while no request is in flight, a caller cancelled midway. Its slot is freed at once, so the
next caller in line opens a fresh connection. Nothing is retried: a load generator reports
what happened.

Timeouts cost no timer per request. Each connection keeps one timer and a deadline: a request
moves the deadline; the timer, when it fires, either finds the exchange over (and goes away),
or the deadline moved on (and waits again), or the deadline passed (the exchange fails with
:class:`TimeoutError` and the connection is closed). Only a request with a shorter deadline
than the armed timer's moves the timer.

Errors
------
::

    HTTP1Error            a bad answer, the pool closed
     +-- TooLarge         a body over max_body
     +-- ConnectionLost   the peer closed or reset the connection before the whole
                          answer came
          +-- ConnectFailed   it could not be connected at all
    TimeoutError          (the builtin asyncio uses) no whole answer within the timeout,
                          or no connection within it

Every message is one line naming ``host:port``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

__all__ = ["MAX_HEADERS", "MAX_HEAD_BYTES", "STREAM_HIGH_WATER", "BodyStream", "ConnectFailed",
           "ConnectionLost", "HTTP1Error", "HTTP1Pool", "HTTP1Response", "TooLarge",
           "header_lines", "media_type"]

logger = logging.getLogger(__name__)

MAX_HEADERS = 100
"""Most header (and trailer) lines an answer may have."""

MAX_HEAD_BYTES = 64 * 1024
"""Most bytes an answer's status line and header lines may take together."""

STREAM_HIGH_WATER = 256 * 1024
"""Bytes of a streamed body waiting for its reader beyond which the connection stops reading
(it reads again once fewer than a quarter of them wait)."""

_SHOWN_BYTES = 64  # of an answer that does not parse, in the error (escaped)
_MAX_CACHED_HEADS = 256
_MAX_CACHED_NAMES = 256
_NAMES: dict[bytes, str] = {}  # header names as sent -> lower-case str (servers repeat theirs)
_MEDIA_TYPES: dict[str, str] = {}  # Content-Type values -> their media types
_GOOD_NAMES: set[str] = set()  # header names header_lines() found to be tokens
_NEVER = float("inf")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value: lower case, without its parameters
    (``application/json; charset=utf-8`` -> ``application/json``)."""
    kind = _MEDIA_TYPES.get(content_type)
    if kind is None:
        kind = content_type.partition(";")[0].strip().lower()
        if len(_MEDIA_TYPES) < _MAX_CACHED_NAMES:
            _MEDIA_TYPES[content_type] = kind
    return kind


def header_lines(headers: Mapping[str, str]) -> bytes:
    """``headers`` as the header lines :meth:`HTTP1Pool.request` takes (UTF-8).

    Raises:
        ValueError: a name that is not a token, or a value with a line break or a NUL (which
            would end the line early: a header of the peer's choosing in the request).
    """
    for name in headers:
        if name not in _GOOD_NAMES:
            if not name or not _TOKEN.issuperset(name):
                raise ValueError(f"not an HTTP header name: {name!r}")
            if len(_GOOD_NAMES) < _MAX_CACHED_NAMES:
                _GOOD_NAMES.add(name)
    text = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    lines = len(headers)
    if text.count("\n") != lines or text.count("\r") != lines or "\0" in text:
        bad = next(name for name, value in headers.items()
                   if "\r" in value or "\n" in value or "\0" in value)
        raise ValueError(f"the value of header {bad} has a line break or a NUL")
    return text.encode("utf-8")


class HTTP1Error(Exception):
    """The exchange failed: a bad answer, a body over ``max_body``, or the pool is closed."""


class TooLarge(HTTP1Error):
    """The answer's body is over the pool's ``max_body``."""


class ConnectionLost(HTTP1Error):
    """The peer closed or reset the connection before the whole answer came."""


class ConnectFailed(ConnectionLost):
    """The connection could not be opened at all (refused, unreachable, a name not found);
    ``reason`` says why in a few words (``Connection refused``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class HTTP1Response:
    """An answer: its status, its header lines by lower-case name (a repeated one joined with
    ``", "``), its body; its reason phrase and ``Set-Cookie`` lines (each whole). A streamed
    answer's ``body`` is empty and ``stream`` gives it."""

    status: int
    headers: dict[str, str]
    body: bytes
    reason: str = ""
    cookies: tuple[str, ...] = ()
    stream: BodyStream | None = None


class BodyStream:
    """The body of a streamed answer, read as it arrives (one reader at a time)."""

    __slots__ = ("_chunks", "_conn", "_done", "_error", "_size", "_waiter")

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._error: HTTP1Error | None = None

    @property
    def at_eof(self) -> bool:
        """Whether the whole body has been read."""
        return self._done and not self._chunks

    async def readany(self) -> bytes:
        """The next piece of the body as it came, ``b""`` once it is all read.

        Raises:
            ConnectionLost: the connection broke before the body was whole (after the pieces
                that did come were read).
            HTTP1Error: a bad body, or the stream was closed.
        """
        chunks = self._chunks
        while not chunks:
            if self._done:
                if self._error is not None:
                    raise self._error
                return b""
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        chunk = chunks.popleft()
        self._size -= len(chunk)
        conn = self._conn
        if conn is not None and conn.paused and self._size < STREAM_HIGH_WATER // 4:
            conn.resume()
        return chunk

    def close(self) -> None:
        """Stop reading: a body not yet whole closes its connection."""
        conn = self._conn
        if not self._done:
            self._end(HTTP1Error("the stream was closed"))
        self._chunks.clear()
        if conn is not None:
            conn.abandon_stream()

    # -- the connection's side -------------------------------------------------------------

    def _feed(self, piece: bytes) -> None:
        self._chunks.append(piece)
        self._size += len(piece)
        conn = self._conn
        if self._size > STREAM_HIGH_WATER and conn is not None and not conn.paused:
            conn.pause()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, error: HTTP1Error | None) -> None:
        """The body is whole (``error`` None) or broke with ``error``."""
        self._done = True
        self._error = error
        self._conn = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class HTTP1Pool:
    """Keep-alive HTTP/1.1 connections to one ``host:port``, at most ``limit`` open at once.

    Args:
        host: the server's name or address.
        port: its TCP port.
        limit: most connections open at once; callers beyond wait for a free one.
        connect_timeout: longest wait for a connection to open (the request's own timeout
            bounds it too).
        max_body: longest answer body accepted; a longer one fails the request with
            :class:`HTTP1Error` and closes its connection.

    The pool belongs to the event loop of its first request. :meth:`close` it when done.
    """

    def __init__(self, host: str, port: int, *, limit: int = 16,
                 connect_timeout: float = 10.0, max_body: int = 16 * 2**20) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._host = host
        self._port = port
        self._limit = limit
        self._connect_timeout = connect_timeout
        self.max_body = max_body
        name = f"[{host}]" if ":" in host else host
        self.where = f"{name}:{port}"
        if not name.isascii():
            name = name.encode("idna").decode("ascii")
        self._host_line = f"Host: {name if port == 80 else f'{name}:{port}'}\r\n".encode()
        # Idle connections, the one released last at the end (a dict: LIFO and O(1) removal).
        self._idle: dict[_Connection, None] = {}
        self._all: set[_Connection] = set()
        self._open = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._heads: dict[tuple[str, str], bytes] = {}
        self._closed = False
        self._shut: list[_Connection] = []  # the connections close() closed

    async def request(self, method: str, target: str, headers: bytes, body: bytes, *,
                      timeout: float | None, stream_type: str | None = None) -> HTTP1Response:
        """Send one request and return its whole answer (or, for ``stream_type``, its head).

        Args:
            method: ``POST``, ``GET``, ...
            target: the request target, e.g. ``/mcp`` (ASCII, no spaces).
            headers: pre-encoded header lines, each ending with ``\\r\\n``, e.g.
                ``b"Content-Type: application/json\\r\\n"``; the pool adds ``Host`` and
                ``Content-Length``.
            body: the request body (may be empty).
            timeout: seconds for the whole exchange, waiting for a connection included
                (for a streamed answer: until its head came); ``None``: no limit.
            stream_type: a media type (lower case, no parameters) whose answers are handed
                over once their head came, the body to be read from their ``stream``.

        Raises:
            ConnectFailed: the connection could not be opened.
            ConnectionLost: the peer closed or reset the connection before the whole answer
                came.
            TimeoutError: no whole answer within ``timeout`` (the connection is closed).
            TooLarge: a body over ``max_body``.
            HTTP1Error: a bad answer, or the pool is closed.
            ValueError: a method, target or header block that cannot be sent.
        """
        loop = asyncio.get_running_loop()
        deadline = _NEVER if timeout is None else loop.time() + timeout
        head = self._heads.get((method, target))
        if head is None:
            head = self._head_for(method, target)
        if headers and not headers.endswith(b"\r\n"):
            raise ValueError("header lines must each end with \\r\\n")
        if body or method in _METHODS_WITH_BODY:
            data = b"".join((head, headers, b"Content-Length: %d\r\n\r\n" % len(body), body))
        else:
            data = b"".join((head, headers, b"\r\n"))
        idle = self._idle
        conn = idle.popitem()[0] if idle else await self._acquire(loop, deadline, timeout)
        answer = conn.send(data, deadline, timeout, method == "HEAD", stream_type)
        try:
            return await answer
        except asyncio.CancelledError:
            if conn.waiter is answer:
                conn.abandon()
            elif answer.done() and not answer.cancelled() and answer.exception() is None:
                stream = answer.result().stream  # a head came just as the caller gave up
                if stream is not None:
                    stream.close()
            raise

    async def close(self) -> None:
        """Close every connection; requests in flight fail with :class:`ConnectionLost`,
        callers waiting for a connection (and any later request) with :class:`HTTP1Error`."""
        if not self._closed:
            self._closed = True
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(HTTP1Error(f"the pool for {self.where} is closed"))
            self._idle.clear()
            self._shut = list(self._all)
            for conn in self._shut:
                conn.shut(ConnectionLost(f"the pool for {self.where} was closed"))
        gone = [conn.gone for conn in self._shut if not conn.gone.done()]
        if gone:
            await asyncio.wait(gone, timeout=1.0)

    def _head_for(self, method: str, target: str) -> bytes:
        """The request line and Host line for ``method`` and ``target``, checked and cached."""
        if not method or not _TOKEN.issuperset(method):
            raise ValueError(f"not an HTTP method: {method!r}")
        if not target or not target.isascii() or any(c <= " " or c == "\x7f" for c in target):
            raise ValueError(f"not a request target: {target!r}")
        head = f"{method} {target} HTTP/1.1\r\n".encode("ascii") + self._host_line
        if len(self._heads) >= _MAX_CACHED_HEADS:
            self._heads.clear()
        self._heads[(method, target)] = head
        return head

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float,
                       timeout: float | None) -> _Connection:
        """An idle connection, a new one if fewer than ``limit`` are open, or the first one
        released while this caller waits in line."""
        while True:
            if self._closed:
                raise HTTP1Error(f"the pool for {self.where} is closed")
            if self._idle:
                return self._idle.popitem()[0]
            if self._open < self._limit:
                return await self._connect(loop, deadline)
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(None if deadline == _NEVER else deadline):
                    conn = await waiter
            except BaseException as exc:
                # A connection (or slot) handed over just as this caller gave up goes on.
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._pass_on(waiter.result())
                if isinstance(exc, TimeoutError):
                    raise TimeoutError(
                        f"no free connection to {self.where} within {timeout:g} s") from None
                raise
            if conn is not None:
                return conn

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        """Open a new connection, counted against ``limit`` from the start."""
        self._open += 1
        conn = _Connection(self, loop)
        wait = max(min(self._connect_timeout, deadline - loop.time()), 0.0)
        try:
            async with asyncio.timeout(wait):
                await self._open_socket(loop, conn)
        except BaseException as exc:
            self._open -= 1
            self._pass_on(None)
            if isinstance(exc, TimeoutError):
                raise TimeoutError(
                    f"could not connect to {self.where} within {wait:.3g} s") from None
            if isinstance(exc, OSError):
                if isinstance(exc, socket.gaierror):
                    reason = f"cannot resolve host {self._host!r}"
                elif exc.errno:
                    reason = os.strerror(exc.errno)
                else:
                    reason = exc.strerror or str(exc) or type(exc).__name__
                raise ConnectFailed(f"could not connect to {self.where}: {reason}",
                                    reason) from None
            raise
        if self._closed:
            conn.shut(ConnectionLost(f"the pool for {self.where} was closed"))
            raise HTTP1Error(f"the pool for {self.where} is closed")
        if conn.closed:  # the peer hung up at once
            self._open -= 1
            self._pass_on(None)
            raise ConnectionLost(f"{self.where} closed the connection as soon as it opened")
        conn.counted = True
        self._all.add(conn)
        logger.debug("http1: connection %d to %s opened", len(self._all), self.where)
        return conn

    async def _open_socket(self, loop: asyncio.AbstractEventLoop, conn: _Connection) -> None:
        """Connect ``conn`` to the first address of the host that takes it. Raises the last
        address's error (asyncio's own loop over them words a mixed failure as "Multiple
        exceptions", with no reason to show)."""
        infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM,
                                       proto=socket.IPPROTO_TCP)
        error: OSError = OSError(f"no address for {self._host!r}")
        for family, _, _, _, address in infos:
            try:
                await loop.create_connection(lambda: conn, str(address[0]),
                                             int(address[1]), family=family)
                return
            except OSError as exc:
                error = exc
        raise error

    def _pass_on(self, conn: _Connection | None) -> None:
        """Give a released connection (or, with None, a freed slot) to the first caller in
        line; with nobody waiting, a connection goes onto the idle stack."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle[conn] = None

    def _release(self, conn: _Connection) -> None:
        """``conn`` finished an exchange and may carry another."""
        if self._closed:
            conn.shut(ConnectionLost(f"the pool for {self.where} was closed"))
        else:
            self._pass_on(conn)

    def _forget(self, conn: _Connection) -> None:
        """``conn`` is closed: its slot is free."""
        if not conn.counted:
            return
        conn.counted = False
        self._all.discard(conn)
        self._open -= 1
        self._idle.pop(conn, None)
        if not self._closed:
            self._pass_on(None)


class _Connection(asyncio.Protocol):
    """One connection: at most one exchange in flight, its answer parsed by httptools.

    The parser calls :meth:`on_message_begin`, :meth:`on_status`, :meth:`on_header`,
    :meth:`on_headers_complete`, :meth:`on_body` and :meth:`on_message_complete`; an error
    raised there stops the parser and is kept in ``_error``. An exchange is in flight while
    ``waiter`` waits for its answer, and then, for a streamed answer, while ``_stream`` takes
    its body.
    """

    __slots__ = ("_body", "_body_size", "_cookies", "_deadline", "_error", "_head_only",
                 "_header_count", "_headers", "_headers_done", "_loop", "_max_body",
                 "_max_wire", "_parser", "_pool", "_reason", "_reusable", "_status", "_stream",
                 "_stream_type", "_timeout", "_timer", "_timer_at", "_transport", "_until_close",
                 "_wire", "closed", "counted", "gone", "paused", "waiter")

    def __init__(self, pool: HTTP1Pool, loop: asyncio.AbstractEventLoop) -> None:
        self._pool = pool
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = HttpResponseParser(self)
        self._max_body = pool.max_body
        # Most bytes an answer may take on the wire: its head, a body in small chunks, trailers.
        self._max_wire = 4 * pool.max_body + 2 * MAX_HEAD_BYTES
        self.waiter: asyncio.Future[HTTP1Response] | None = None
        self._stream: BodyStream | None = None
        self._stream_type: str | None = None
        self._status = 0
        self._reason = ""
        self._headers: dict[str, str] = {}
        self._cookies: list[str] = []
        self._header_count = 0
        self._wire = 0
        self._headers_done = False
        self._body: list[bytes] = []
        self._body_size = 0
        self._until_close = False
        self._head_only = False
        self._reusable: bool | None = None
        self._error: HTTP1Error | None = None
        self._deadline = 0.0
        self._timeout: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = _NEVER  # when the timer fires
        self.closed = False
        self.counted = False
        self.paused = False
        self.gone: asyncio.Future[None] = loop.create_future()

    # -- the pool's side -------------------------------------------------------------------

    def send(self, data: bytes, deadline: float, timeout: float | None, head_only: bool,
             stream_type: str | None) -> asyncio.Future[HTTP1Response]:
        """Write one request; the future gets its answer or its error."""
        waiter: asyncio.Future[HTTP1Response] = self._loop.create_future()
        if self.closed or self._transport is None:
            waiter.set_exception(ConnectionLost(
                f"{self._pool.where} closed the connection before the request was sent"))
            self._pool._forget(self)
            return waiter
        self.waiter = waiter
        self._stream_type = stream_type
        self._status = 0
        self._reason = ""
        self._headers = {}
        if self._cookies:
            self._cookies = []
        self._header_count = 0
        self._wire = 0
        self._headers_done = False
        self._body = []
        self._body_size = 0
        self._until_close = False
        self._head_only = head_only
        self._reusable = None
        self._deadline = deadline
        self._timeout = timeout
        if deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
        self._transport.write(data)
        return waiter

    def abandon(self) -> None:
        """The caller gave up on the exchange in flight: the connection cannot be reused."""
        self.waiter = None
        self._drop()

    def abandon_stream(self) -> None:
        """The reader closed a streamed body before it was whole."""
        if self._stream is not None:
            self._stream = None
            self._drop()

    def shut(self, error: HTTP1Error) -> None:
        """Close the connection; an exchange in flight fails with ``error``."""
        self._fail(error)

    def pause(self) -> None:
        """A streamed body's reader fell behind: stop reading from the socket."""
        if not self.paused and self._transport is not None and not self.closed:
            self.paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        """Read from the socket again."""
        if self.paused:
            self.paused = False
            if self._transport is not None and not self.closed:
                self._transport.resume_reading()

    # -- asyncio's side --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None and self._stream is None:
            if not self.closed:
                logger.debug("http1: %s sent bytes with no request in flight", self._pool.where)
                self._drop()
            return
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade:
            self._fail(HTTP1Error(f"{self._pool.where} switched protocols"))
            return
        except HttpParserError as exc:
            if self._error is not None:
                self._fail(self._error)
            elif self.waiter is None and self._stream is None:  # bytes after a whole answer
                self._drop()
            else:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                self._fail(HTTP1Error(f"bad answer from {self._pool.where}: {reason}, in "
                                      f"{str(data[:_SHOWN_BYTES])[1:]}"))
            return
        reusable = self._reusable
        if reusable is not None:
            self._reusable = None
            if reusable:
                self._pool._release(self)
            else:
                self._drop()
        elif self.waiter is not None:  # more of the answer to come: is it still bounded?
            self._wire += len(data)
            if not self._headers_done:
                if self._wire > MAX_HEAD_BYTES:
                    self._fail(HTTP1Error(
                        f"{self._pool.where} sent a head over {MAX_HEAD_BYTES} bytes"))
            elif self._wire > self._max_wire:
                self._fail(HTTP1Error(
                    f"{self._pool.where} sent an answer over {self._max_wire} bytes"))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        stream = self._stream
        if self.waiter is not None or stream is not None:
            if exc is None and self._until_close and self._headers_done:
                self._complete()
            elif exc is None:
                self._fail(ConnectionLost(
                    f"{self._pool.where} closed the connection before the whole answer"))
            else:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                self._fail(ConnectionLost(
                    f"the connection to {self._pool.where} was lost: {reason}"))
        self._drop()
        if not self.gone.done():
            self.gone.set_result(None)

    # -- the parser's side -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.waiter is None and self._stream is None:
            raise HttpParserError("bytes after the answer")

    def on_status(self, reason: bytes) -> None:
        self._reason += reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            raise self._stop(f"{self._pool.where} sent over {MAX_HEADERS} header lines")
        if self._headers_done:  # a trailer line of a chunked body
            return
        key = _NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_NAMES) < _MAX_CACHED_NAMES:
                _NAMES[name] = key
        text = value.decode("latin-1")
        headers = self._headers
        old = headers.get(key)
        headers[key] = text if old is None else f"{old}, {text}"
        if key == "set-cookie":  # its lines cannot be joined: a date has a comma
            self._cookies.append(text)

    def on_headers_complete(self) -> None:
        self._headers_done = True
        headers = self._headers
        self._status = status = self._parser.get_status_code()
        if status < 200 or status == 204 or status == 304:
            return
        if self._head_only:
            self._complete()
            return
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        if self._stream_type is not None and self._stream_type == media_type(
                headers.get("content-type", "")):
            self._until_close = length is None and not chunked
            self._hand_stream()
            return
        if length is not None and length.isdigit() and int(length) > self._max_body:
            raise self._stop(f"{self._pool.where} announced a body of {length} bytes, "
                             f"over the limit of {self._max_body}", TooLarge)
        if length is None and not chunked:
            self._until_close = True

    def on_body(self, piece: bytes) -> None:
        stream = self._stream
        if stream is not None:
            stream._feed(piece)
            return
        self._body_size += len(piece)
        if self._body_size > self._max_body:
            raise self._stop(
                f"{self._pool.where} sent a body over the limit of {self._max_body} bytes",
                TooLarge)
        self._body.append(piece)

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim answer: the real one follows
            self._headers = {}
            self._header_count = 0
            self._headers_done = False
            self._reason = ""
            if self._cookies:
                self._cookies = []
            return
        if self.waiter is not None or self._stream is not None:
            self._complete()

    # -- inside ----------------------------------------------------------------------------

    def _hand_stream(self) -> None:
        """Give the caller the answer's head now, its body to come through a stream."""
        waiter = self.waiter
        assert waiter is not None
        if waiter.done():  # the caller gave up as the head came: nobody will read the body
            raise self._stop(f"the caller of {self._pool.where} gave up")
        self.waiter = None
        stream = self._stream = BodyStream(self)
        waiter.set_result(HTTP1Response(self._status, self._headers, b"", self._reason,
                                        tuple(self._cookies), stream))

    def _complete(self) -> None:
        """The whole answer is in: hand it to the caller (or end its stream); decide whether
        the connection goes back."""
        stream = self._stream
        if stream is not None:
            self._stream = None
            stream._end(None)
            self.resume()
        else:
            waiter = self.waiter
            assert waiter is not None
            self.waiter = None
            body = self._body
            answer = HTTP1Response(self._status, self._headers,
                                   body[0] if len(body) == 1 else b"".join(body), self._reason,
                                   tuple(self._cookies) if self._cookies else ())
            if not waiter.done():
                waiter.set_result(answer)
        transport = self._transport
        self._reusable = (
            not self.closed and not self._until_close and not self._head_only
            and transport is not None and self._parser.should_keep_alive()
            and not transport.get_write_buffer_size())

    def _stop(self, message: str, kind: type[HTTP1Error] = HTTP1Error) -> HTTP1Error:
        """An error to raise inside a parser callback; :meth:`data_received` fails with it."""
        self._error = kind(message)
        return self._error

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = _NEVER
        if self.waiter is None or self.closed:
            return
        if self._deadline - self._loop.time() > 0.001:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
            self._timer_at = self._deadline
            return
        self._fail(TimeoutError(
            f"no whole answer from {self._pool.where} within {self._timeout:g} s"))

    def _fail(self, error: Exception) -> None:
        """End the exchange in flight (if any) with ``error`` and close the connection."""
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        stream = self._stream
        if stream is not None:
            self._stream = None
            stream._end(error if isinstance(error, HTTP1Error) else ConnectionLost(str(error)))
        self._drop()

    def _drop(self) -> None:
        """Close the connection at once and free its slot in the pool."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = _NEVER
        if not self.closed:
            self.closed = True
            if self._transport is not None:
                self._transport.abort()
        self._pool._forget(self)
