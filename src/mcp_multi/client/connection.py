"""The session layer: one MCP server over one transport, with request futures and timeouts.

Theory of operation: :meth:`MCPConnection.connect` opens the transport, starts one reader
task and opens the session. Every request gets a fresh integer id and a future in
``_pending``; the reader decodes each frame with the protocol core and resolves the future
its id names. Requests the server sends us (``ping``) are answered from
:mod:`mcp_multi.protocol.lifecycle`; notifications update state (``tools/list_changed``
drops the cached tool list) and are logged and handed to an optional hook.

Opening the session picks the protocol era (:mod:`mcp_multi.client.opening`). In
the 2026-07-28 era every request carries the ``_meta`` envelope and ``ping`` (which that
revision removed) becomes a ``server/discover`` round trip. When a Streamable HTTP server
forgets our session (:class:`SessionExpired`) the connection initializes again and resends.

Failure rules, which make hangs impossible:

- every request is bounded by a timeout (the connection's, or the call's own); on expiry
  the server is told ``notifications/cancelled`` and the caller gets :class:`RequestTimeout`;
- when the reader ends (the server closed, the network failed, or we closed) every pending
  future fails at once with :class:`ConnectionClosed`, and so does every later request;
- a request whose answer can no longer come (its HTTP stream broke) fails alone with
  :class:`RequestFailed`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..protocol import methods
from ..protocol.envelope import with_envelope
from ..protocol.errors import (
    ConnectionClosed,
    JSONRPCError,
    MCPError,
    ProtocolError,
    RequestFailed,
    RequestTimeout,
    SessionExpired,
)
from ..protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    decode,
    encode,
    error_response,
)
from ..protocol.lifecycle import (
    InitializeResult,
    cancelled_params,
    parse_tools_page,
    reply_to_server_request,
    tool_call_params,
    unwrap_result,
)
from ..protocol.versions import (
    LATEST_HANDSHAKE_VERSION,
    is_supported,
)
from ..transport import ClientTransport
from .opening import SessionOpening

__all__ = ["DEFAULT_TIMEOUT", "FrameHook", "MCPConnection", "NotificationHook"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
MAX_TOOL_PAGES = 1000
# Requests that negotiate: never cancelled (the specification forbids it for initialize).
_NEGOTIATION = (methods.INITIALIZE, methods.SERVER_DISCOVER)

FrameHook = Callable[[str, str, "bytes | str"], None]
"""Called as ``hook(server_name, direction, frame)``; direction is ``"send"`` or ``"recv"``."""

NotificationHook = Callable[[str, Notification], None]
"""Called as ``hook(server_name, notification)`` for every notification the server sends."""

_LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


class MCPConnection(SessionOpening):
    """A client session with one MCP server.

    Args:
        name: the server's name in this client (used in logs, traces and errors).
        transport: an unopened transport to the server.
        timeout: seconds any request may take unless the call says otherwise.
        on_frame: optional hook shown every JSON-RPC frame sent and received (``--trace``).
        on_notification: optional hook shown every notification from the server.
        protocol_version: speak exactly this version (``--protocol-version``); ``None``
            picks the era as the module docstring says.

    Raises:
        ValueError: ``protocol_version`` is not one we speak.

    Use it as an async context manager, or call :meth:`connect` and :meth:`close`.
    """

    def __init__(
        self,
        name: str,
        transport: ClientTransport,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_frame: FrameHook | None = None,
        on_notification: NotificationHook | None = None,
        protocol_version: str | None = None,
    ) -> None:
        if protocol_version is not None and not is_supported(protocol_version):
            raise ValueError(f"unknown protocol version {protocol_version!r}")
        self.name = name
        self.transport = transport
        self.timeout = timeout
        self.server: InitializeResult | None = None
        self.handshake_seconds: float | None = None
        self._on_frame = on_frame
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: dict[RequestId, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed_reason: str | None = None
        self._tools: list[dict[str, Any]] | None = None
        self._dropped = 0
        self._closing: asyncio.Future[None] | None = None
        self.requested_version = protocol_version
        self._meta: dict[str, Any] | None = None  # the 2026-07-28 envelope, once adopted
        self._epoch = 0  # sessions opened so far (a Streamable HTTP session can expire)
        self._renewing = asyncio.Lock()

    # -- state -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.transport.url

    @property
    def transport_kind(self) -> str:
        return self.transport.kind

    @property
    def is_open(self) -> bool:
        """Whether the handshake is done and the connection has not ended."""
        return self.server is not None and self._closed_reason is None

    @property
    def closed_reason(self) -> str | None:
        """Why the connection ended, or ``None`` while it is open."""
        return self._closed_reason

    @property
    def protocol_version(self) -> str | None:
        return self.server.protocol_version if self.server else None

    @property
    def era(self) -> str | None:
        """``modern`` (2026-07-28, stateless) or ``handshake``; ``None`` before connecting."""
        if self.server is None:
            return None
        return "modern" if self._meta is not None else "handshake"

    @property
    def cached_tools(self) -> list[dict[str, Any]] | None:
        """The tools from the last :meth:`list_tools`, or ``None`` (never listed or changed)."""
        return self._tools

    def __repr__(self) -> str:
        state = "open" if self.is_open else (self._closed_reason or "new")
        return f"<MCPConnection {self.name} {self.transport_kind} {self.url} {state}>"

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> InitializeResult:
        """Open the transport and the session (``server/discover`` or ``initialize``).

        Returns:
            What the server said about itself.

        Raises:
            TransportError: the server cannot be reached (or did not answer in time).
            ProtocolError: the server broke the handshake (e.g. chose a version we lack).
            JSONRPCError: the server refused ``initialize`` (or the forced version).
        """
        if self._reader is not None:
            raise ProtocolError(f"connection {self.name} was already started")
        start = time.perf_counter()
        try:
            await self.transport.connect()
            self._reader = asyncio.create_task(self._read_loop(), name=f"mcp-read-{self.name}")
            server = await self._open_session()
        except BaseException:
            await self.close()
            raise
        self.server = server
        self.handshake_seconds = time.perf_counter() - start
        logger.info(
            "%s: connected to %s (%s %s, protocol %s)",
            self.name, self.url, server.server_name, server.server_version,
            server.protocol_version,
        )
        return server

    async def close(self) -> None:
        """End the session: fail what is pending, stop the reader, close the transport.

        The transport is closed even when this call is cancelled (Ctrl-C while closing): the
        closing then finishes in the background, so no socket or child process is left.
        """
        if self._closed_reason is None:
            self._closed_reason = "connection closed by the client"
        reader, self._reader = self._reader, None
        try:
            if reader is not None and not reader.done():
                reader.cancel()
                try:
                    await reader
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise
        finally:
            self._fail_pending(self._closed_reason)
            background = list(self._background)
            for task in background:
                task.cancel()
            if self._closing is None:
                self._closing = asyncio.ensure_future(self._finish_close(background))
            await asyncio.shield(self._closing)

    async def _finish_close(self, background: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*background, return_exceptions=True)
        await self.transport.close()

    async def __aenter__(self) -> MCPConnection:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- requests ----------------------------------------------------------------------

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a request and wait for its result (in the 2026-07-28 era without the stamps
        every result carries, see :func:`~mcp_multi.protocol.lifecycle.unwrap_result`).

        Args:
            method: any MCP method, e.g. ``resources/read``.
            params: the request's params (omitted from the message when ``None``).
            timeout: seconds to wait; the connection's timeout when ``None``.

        Raises:
            JSONRPCError: the server answered with an error (the subclass matches the code).
            RequestTimeout: no answer in time (the server is told the request is cancelled).
            ConnectionClosed: the connection is gone, or went away while we waited.
        """
        self._check_open()
        if self._meta is not None and method != methods.INITIALIZE:
            params = with_envelope(params, self._meta)
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        limit = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                await self._send_request(message)
                result = await future
            return unwrap_result(result) if self._meta is not None else result
        except TimeoutError:
            self._cancel_remotely(method, request_id, f"no response within {limit:g}s")
            raise RequestTimeout(
                f"{self.name}: {method} got no response within {limit:g}s"
            ) from None
        except asyncio.CancelledError:
            self._cancel_remotely(method, request_id, "the client gave up")
            raise
        finally:
            self._pending.pop(request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning
            else:
                future.cancel()

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send a notification (no answer expected), within the connection's timeout.

        Raises:
            ConnectionClosed: the connection is gone.
            RequestTimeout: the server did not take it in time (an HTTP POST unanswered).
        """
        if self._closed_reason is not None:
            raise ConnectionClosed(f"{self.name}: {self._closed_reason}")
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._send_bounded(message)

    async def _send_bounded(self, message: dict[str, Any]) -> None:
        """Send a message no answer will come for, bounded like a request: over Streamable
        HTTP or SSE it is a POST the server may never answer."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._send(message)
        except TimeoutError:
            what = message.get("method") or "a response"
            raise RequestTimeout(
                f"{self.name}: sending {what} took longer than {self.timeout:g}s") from None

    async def ping(self, *, timeout: float | None = None) -> None:
        """Check the server answers ``ping`` (2026-07-28 has none: ``server/discover``)."""
        await self.request(methods.SERVER_DISCOVER if self._meta is not None else methods.PING,
                           timeout=timeout)

    async def list_tools(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        """The server's tools, following ``nextCursor`` pages; cached until they change.

        Args:
            refresh: ask the server even when a cached list exists.
        """
        if self._tools is not None and not refresh:
            return self._tools
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_TOOL_PAGES):
            params = {"cursor": cursor} if cursor is not None else None
            page, cursor = parse_tools_page(await self.request(methods.TOOLS_LIST, params))
            tools.extend(page)
            if cursor is None:
                self._tools = tools
                return tools
            if cursor in seen:
                raise ProtocolError(f"{self.name}: tools/list repeated cursor {cursor!r}")
            seen.add(cursor)
        raise ProtocolError(f"{self.name}: tools/list has more than {MAX_TOOL_PAGES} pages")

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Call a tool and return its result (which may hold ``isError: true``).

        Raises:
            JSONRPCError: the server refused the call (unknown or disabled tool, bad params).
            RequestTimeout, ConnectionClosed: as for :meth:`request`.
        """
        return await self.request(methods.TOOLS_CALL, tool_call_params(name, arguments),
                                  timeout=timeout)

    # -- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed_reason is not None:
            raise ConnectionClosed(f"{self.name}: {self._closed_reason}")
        if self._reader is None:
            raise ConnectionClosed(f"{self.name}: not connected")

    async def _send_request(self, message: dict[str, Any]) -> None:
        epoch = self._epoch
        try:
            await self._send(message)
        except SessionExpired:
            if message["method"] == methods.INITIALIZE:
                raise
            await self._renew_session(epoch)
            await self._send(message)

    async def _renew_session(self, epoch: int) -> None:
        """The server forgot the session ``epoch``: open a new one (once, for every caller)."""
        async with self._renewing:
            if self._epoch != epoch:
                return  # another request has renewed it already
            logger.info("%s: the server ended our session; initializing a new one", self.name)
            version = self.server.protocol_version if self.server else LATEST_HANDSHAKE_VERSION
            self.server = await self._handshake(version)
            self._epoch += 1

    async def _send(self, message: dict[str, Any]) -> None:
        if self._on_frame is not None:
            self._on_frame(self.name, "send", encode(message))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s -> %s", self.name, message)
        await self.transport.send(message)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _cancel_remotely(self, method: str, request_id: RequestId, reason: str) -> None:
        # The spec forbids cancelling initialize; a closed connection has nobody to tell.
        if method in _NEGOTIATION or self._closed_reason is not None:
            return
        self._spawn(self._send_quietly(
            {"jsonrpc": "2.0", "method": methods.CANCELLED,
             "params": cancelled_params(request_id, reason)}
        ))

    async def _send_quietly(self, message: dict[str, Any]) -> None:
        try:
            await self._send_bounded(message)
        except MCPError as exc:
            logger.debug("%s: could not send %s: %s", self.name, message.get("method"), exc)

    def _fail_request(self, error: RequestFailed) -> None:
        future = self._pending.pop(error.request_id, None)
        if future is not None and not future.done():
            future.set_exception(error)

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ConnectionClosed(f"{self.name}: {reason}"))

    async def _read_loop(self) -> None:
        reason = "connection closed"
        try:
            while True:
                try:
                    frame = await self.transport.receive()
                except RequestFailed as exc:
                    self._fail_request(exc)
                    continue
                if self._on_frame is not None:
                    self._on_frame(self.name, "recv", frame)
                self._handle_frame(frame)
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        except asyncio.CancelledError:
            reason = self._closed_reason or "connection closed by the client"
            raise
        except Exception as exc:  # a bug must not leave requests hanging
            logger.exception("%s: reader failed", self.name)
            reason = f"reader failed: {exc}"
        finally:
            if self._closed_reason is None:
                self._closed_reason = reason
                logger.info("%s: %s", self.name, reason)
            self._fail_pending(self._closed_reason)

    def _handle_frame(self, frame: bytes | str) -> None:
        try:
            decoded = decode(frame)
        except JSONRPCError as exc:
            self._drop("a bad frame", exc)
            return
        for item in decoded if isinstance(decoded, list) else (decoded,):
            if isinstance(item, JSONRPCError):
                self._drop("a bad message in a batch", item)
            else:
                self._handle_message(item)

    def _drop(self, what: str, exc: JSONRPCError) -> None:
        # A server spewing junk (a stdio child printing to stdout) must not flood the log:
        # the first few are warnings, then one in every thousand.
        self._dropped += 1
        n = self._dropped
        if n <= 5 or n % 1000 == 0:
            logger.warning("%s: dropping %s (%d so far): %s", self.name, what, n, exc)

    def _handle_message(self, message: Message) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s <- %s", self.name, message)
        if isinstance(message, Response | ErrorResponse):
            if message.id is None:
                assert isinstance(message, ErrorResponse)
                logger.warning("%s: server reported an error: %s", self.name, message.error)
                return
            future = self._pending.pop(message.id, None)
            if future is None or future.done():
                logger.debug("%s: response to unknown or abandoned id %r", self.name, message.id)
            elif isinstance(message, Response):
                future.set_result(message.result)
            else:
                future.set_exception(message.error)
        elif isinstance(message, Request):
            self._spawn(self._answer(message))
        else:
            self._handle_notification(message)

    async def _refresh_tools(self) -> None:
        try:
            await self.list_tools(refresh=True)
        except MCPError as exc:
            logger.info("%s: could not refresh the tool list: %s", self.name, exc)

    async def _answer(self, request: Request) -> None:
        try:
            reply = {"jsonrpc": "2.0", "id": request.id,
                     "result": reply_to_server_request(request.method)}
        except JSONRPCError as exc:
            reply = error_response(request.id, exc)
        await self._send_quietly(reply)

    def _handle_notification(self, note: Notification) -> None:
        params = note.params or {}
        if note.method == methods.TOOLS_LIST_CHANGED:
            self._tools = None
            self._spawn(self._refresh_tools())
        elif note.method == methods.LOGGING_MESSAGE:
            level = _LOG_LEVELS.get(str(params.get("level")), logging.INFO)
            if logger.isEnabledFor(level):
                logger.log(level, "%s: server log: %s", self.name, params.get("data"))
        elif note.method == methods.PROGRESS and logger.isEnabledFor(logging.INFO):
            logger.info("%s: progress %s/%s %s", self.name, params.get("progress"),
                        params.get("total"), params.get("message") or "")
        if self._on_notification is not None:
            try:
                self._on_notification(self.name, note)
            except Exception:
                logger.exception("%s: notification hook failed", self.name)
