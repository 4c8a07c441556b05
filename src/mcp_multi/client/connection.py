"""The session layer: one MCP server over one transport, with request futures and timeouts.

Theory of operation: :meth:`MCPConnection.connect` opens the transport, starts one reader
task (:mod:`mcp_multi.client.inbound`) and opens the session, all within the connection's
timeout. Every request gets a fresh integer id and a future in ``_pending``; the reader
decodes each frame with the protocol core and resolves the future its id names.

Where the connection is in its life (new, opening, open, renewing, closed) is one
:class:`~mcp_multi.protocol.client_state.ClientLifecycle` and its table of allowed moves;
nothing else keeps a flag of it.

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
from collections.abc import Coroutine
from typing import Any

from ..protocol import methods
from ..protocol.client_state import ClientEvent, ClientLifecycle, ClientState
from ..protocol.envelope import with_envelope
from ..protocol.errors import (
    ConnectionClosed,
    MCPError,
    ProtocolError,
    RequestTimeout,
    SessionExpired,
)
from ..protocol.jsonrpc import RequestId, encode
from ..protocol.lifecycle import (
    InitializeResult,
    cancelled_params,
    check_complete,
    parse_tools_page,
    tool_call_params,
    unwrap_result,
)
from ..protocol.text import for_display
from ..protocol.versions import LATEST_HANDSHAKE_VERSION, is_supported
from ..transport import ClientTransport
from .inbound import FrameHook, NotificationHook, ServerMessages
from .opening import SessionOpening

__all__ = ["DEFAULT_TIMEOUT", "FrameHook", "MCPConnection", "NotificationHook"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
MAX_TOOL_PAGES = 1000
# Requests that negotiate: never cancelled (the specification forbids it for initialize).
_NEGOTIATION = (methods.INITIALIZE, methods.SERVER_DISCOVER)


def _seconds(limit: float) -> str:
    return f"{round(limit, 2):g}"


class MCPConnection(SessionOpening, ServerMessages):
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
        self._life = ClientLifecycle()  # NEW -> OPENING -> OPEN (<-> RENEWING) -> CLOSED
        self._tools: list[dict[str, Any]] | None = None
        self._dropped = 0
        self._closing: asyncio.Future[None] | None = None
        self.requested_version = protocol_version
        self._meta: dict[str, Any] | None = None  # the 2026-07-28 envelope, once adopted
        self._epoch = 0  # sessions opened so far (a Streamable HTTP session can expire)
        self._deadline: float | None = None  # while connecting: when connect() must end
        self._renewing = asyncio.Lock()

    # -- state -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.transport.url

    @property
    def transport_kind(self) -> str:
        return self.transport.kind

    @property
    def state(self) -> ClientState:
        """Where the connection is in its life (see :mod:`mcp_multi.protocol.client_state`)."""
        return self._life.state

    @property
    def is_open(self) -> bool:
        """Whether the handshake is done and the connection has not ended."""
        return self._life.state in (ClientState.OPEN, ClientState.RENEWING)

    @property
    def closed_reason(self) -> str | None:
        """Why the connection ended, or ``None`` while it is open."""
        return self._life.reason

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
        state = self._life.reason or self._life.state.value
        return f"<MCPConnection {self.name} {self.transport_kind} {self.url} {state}>"

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> InitializeResult:
        """Open the transport and the session (``server/discover`` or ``initialize``), all
        within the connection's timeout. Cancelling it closes the transport.

        Returns:
            What the server said about itself.

        Raises:
            TransportError: the server cannot be reached (or did not answer in time:
                :class:`RequestTimeout`).
            ProtocolError: the server broke the handshake (e.g. chose a version we lack),
                or the connection was started before.
            JSONRPCError: the server refused ``initialize`` (or the forced version).
        """
        try:
            self._life.process(ClientEvent.CONNECT)
        except ProtocolError as exc:
            raise ProtocolError(f"{self.name}: {exc}") from None
        start = time.perf_counter()
        # One deadline for the whole of it: the transport's opening here, and every request
        # and notification of the probe and the handshake is cut to the time left.
        self._deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            try:
                async with asyncio.timeout_at(self._deadline):
                    await self.transport.connect()
            except TimeoutError:
                raise RequestTimeout(f"{self.name}: could not reach {self.url} within "
                                     f"{self.timeout:g}s") from None
            self._reader = asyncio.create_task(self._read_loop(), name=f"mcp-read-{self.name}")
            server = await self._open_session()
            self._check_open()  # the server may have hung up right after answering
            self.server = server
            self._life.process(ClientEvent.OPENED)
        except BaseException:
            await self.close()
            raise
        finally:
            self._deadline = None
        self.handshake_seconds = time.perf_counter() - start
        logger.info(
            "%s: connected to %s (%s %s, protocol %s)",
            self.name, self.url, for_display(server.server_name),
            for_display(server.server_version), server.protocol_version,
        )
        return server

    async def close(self) -> None:
        """End the session: fail what is pending, stop the reader, close the transport.

        The transport is closed even when this call is cancelled (Ctrl-C while closing): the
        closing then finishes in the background, so no socket or child process is left.
        """
        self._life.close("connection closed by the client")
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
            self._fail_pending(self._life.reason or "closed")
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
            InputRequired: the server answered ``resultType: input_required`` (it needs
                input this client cannot give yet).
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
        limit = self._time_left(self.timeout if timeout is None else timeout)
        try:
            async with asyncio.timeout(limit):
                await self._send_request(message)
                result = check_complete(await future)
            return unwrap_result(result) if self._meta is not None else result
        except TimeoutError:
            self._cancel_remotely(method, request_id, f"no response within {_seconds(limit)}s")
            raise RequestTimeout(
                f"{self.name}: {method} got no response within {_seconds(limit)}s"
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
        if self._life.closed:
            raise ConnectionClosed(f"{self.name}: {self._life.reason}")
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._send_bounded(message)

    async def _send_bounded(self, message: dict[str, Any]) -> None:
        """Send a message no answer will come for, bounded like a request: over Streamable
        HTTP or SSE it is a POST the server may never answer."""
        limit = self._time_left(self.timeout)
        try:
            async with asyncio.timeout(limit):
                await self._send(message)
        except TimeoutError:
            what = message.get("method") or "a response"
            raise RequestTimeout(
                f"{self.name}: sending {what} took longer than {_seconds(limit)}s") from None

    def _time_left(self, limit: float) -> float:
        """``limit``, cut to what is left of :meth:`connect`'s deadline while connecting."""
        if self._deadline is None:
            return limit
        return max(min(limit, self._deadline - asyncio.get_running_loop().time()), 0.0)

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
                raise ProtocolError(f"{self.name}: tools/list repeated cursor "
                                    f"{for_display(repr(cursor), 200)}")
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
        state = self._life.state
        if state is ClientState.CLOSED:
            raise ConnectionClosed(f"{self.name}: {self._life.reason}")
        if state is ClientState.NEW:
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
            self._check_open()
            self._life.process(ClientEvent.EXPIRED)
            logger.info("%s: the server ended our session; initializing a new one", self.name)
            version = self.server.protocol_version if self.server else LATEST_HANDSHAKE_VERSION
            server = await self._handshake(version)
            self._check_open()  # closed while renewing: the new session is not ours to keep
            self.server = server
            self._life.process(ClientEvent.OPENED)
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
        if method in _NEGOTIATION or self._life.closed:
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
