"""What the server sends a connection: the reader task and what it does with each message.

Mixed into :class:`~mcp_multi.client.connection.MCPConnection`. One reader task per
connection takes frames from the transport and decodes them with the protocol core: a
response resolves the future its id names, a request from the server is answered by the
connection's :class:`~mcp_multi.client.answering.ClientHandlers` (read at each request, so
they may be swapped at run time; at most :data:`MAX_ANSWERING` at once, the rest refused
with -32603 rather than queued without bound, and logged as dropped frames are), a
notification updates state (``tools/list_changed`` drops the cached tool list and refreshes
it: one refresh at a time, and one more if the list changed meanwhile, however many
notifications came) and is logged and handed to the optional hook. When the reader
ends, for whatever reason, the connection is closed and every pending request fails at once.

A frame that a transport hands over in the task that sent the request (Streamable HTTP's
JSON answer, see :attr:`~mcp_multi.transport.base.ClientTransport.direct`) is handled the
same way by :meth:`ServerMessages._take_answer`, without waking the reader: the request's
future is resolved before its sender next awaits it.

A server's text reaches errors and log lines only escaped and clipped
(:func:`~mcp_multi.protocol.text.for_display`): a garbage server's 100 KB error message or
its terminal escape sequences stay out of the person's terminal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..protocol import methods
from ..protocol.client_state import ClientLifecycle
from ..protocol.errors import (
    ConnectionClosed,
    InternalError,
    InvalidRequest,
    JSONRPCError,
    MCPError,
    ParseError,
    RequestFailed,
)
from ..protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    RequestId,
    Response,
    decode,
    error_response,
)
from ..protocol.text import for_display
from ..transport import ClientTransport
from .answering import ClientHandlers, answer_server_request

__all__ = ["MAX_ANSWERING", "FrameHook", "NotificationHook", "ServerMessages"]

logger = logging.getLogger("mcp_multi.client.connection")

FrameHook = Callable[[str, str, "bytes | str"], None]
"""Called as ``hook(server_name, direction, frame)``; direction is ``"send"`` or ``"recv"``."""

NotificationHook = Callable[[str, Notification], None]
"""Called as ``hook(server_name, notification)`` for every notification the server sends."""

# The most server requests one connection answers at once (a person answers one at a time;
# a server flooding requests must not start thousands of handlers).
MAX_ANSWERING = 16

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


def _bounded(error: JSONRPCError) -> JSONRPCError:
    """The server's error with its message escaped and clipped (code and data unchanged)."""
    shown = for_display(error.message)
    if shown != error.message:
        error.message = shown
        error.args = (shown,)
    return error


class ServerMessages:
    """The reader of :class:`MCPConnection` (a mixin)."""

    name: str
    transport: ClientTransport
    _life: ClientLifecycle
    _pending: dict[RequestId, asyncio.Future[dict[str, Any]]]
    _on_frame: FrameHook | None
    _on_notification: NotificationHook | None
    _tools: list[dict[str, Any]] | None
    _dropped: int
    _answering: int
    _refused: int
    _refreshing: bool
    _refresh_again: bool
    handlers: ClientHandlers | None

    if TYPE_CHECKING:
        def _spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

        async def _send_quietly(self, message: dict[str, Any]) -> None: ...

        async def list_tools(self, *, refresh: bool = False) -> list[dict[str, Any]]: ...

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
            reason = f"connection lost: {for_display(str(exc))}"
        except asyncio.CancelledError:
            reason = "connection closed by the client"
            raise
        except Exception as exc:  # a bug must not leave requests hanging
            logger.exception("%s: reader failed", self.name)
            reason = f"reader failed: {exc}"
        finally:
            if self._life.close(reason):
                logger.info("%s: %s", self.name, reason)
            self._fail_pending(self._life.reason or reason)

    def _take_answer(self, frame: bytes | str) -> bool:
        """A frame handed over by the transport in the task that sent the request it
        answers; ``False`` (and nothing done) when it is not JSON, which the transport
        reports as that request's failure."""
        try:
            decoded = decode(frame)
        except ParseError:
            return False
        except JSONRPCError as exc:  # JSON, but no message in it
            if self._on_frame is not None:
                self._on_frame(self.name, "recv", frame)
            self._drop("a bad frame", exc)
            return True
        if self._on_frame is not None:
            self._on_frame(self.name, "recv", frame)
        self._handle_decoded(decoded)
        return True

    def _handle_frame(self, frame: bytes | str) -> None:
        try:
            decoded = decode(frame)
        except JSONRPCError as exc:
            self._drop("a bad frame", exc)
            return
        self._handle_decoded(decoded)

    def _handle_decoded(self, decoded: list[Message | InvalidRequest] | Message) -> None:
        if not isinstance(decoded, list):
            self._handle_message(decoded)
            return
        for item in decoded:
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
            logger.warning("%s: dropping %s (%d so far): %s", self.name, what, n,
                           for_display(str(exc)))

    def _handle_message(self, message: Message) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s <- %s", self.name, message)
        if isinstance(message, Response | ErrorResponse):
            if message.id is None:
                assert isinstance(message, ErrorResponse)
                logger.warning("%s: server reported an error: %s", self.name,
                               _bounded(message.error))
                return
            future = self._pending.pop(message.id, None)
            if future is None or future.done():
                logger.debug("%s: response to unknown or abandoned id %r", self.name, message.id)
            elif isinstance(message, Response):
                future.set_result(message.result)
            else:
                future.set_exception(_bounded(message.error))
        elif isinstance(message, Request):
            self._answer_request(message)
        else:
            self._handle_notification(message)

    def _tools_changed(self) -> None:
        """``tools/list_changed``: drop the cached list and refresh it, coalescing a flood
        of notifications into at most one refresh running and one to follow."""
        self._tools = None
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        self._spawn(self._refresh_tools())

    async def _refresh_tools(self) -> None:
        try:
            while True:
                self._refresh_again = False
                try:
                    await self.list_tools(refresh=True)
                except MCPError as exc:
                    logger.info("%s: could not refresh the tool list: %s", self.name, exc)
                if not self._refresh_again:
                    return
        finally:
            self._refreshing = False

    def _answer_request(self, request: Request) -> None:
        if self._answering >= MAX_ANSWERING:
            # A flood must not flood the log: the first few, then one in every thousand.
            self._refused += 1
            if self._refused <= 5 or self._refused % 1000 == 0:
                logger.warning("%s: refusing %s (%d so far): %d server requests are being "
                               "answered already", self.name, for_display(request.method, 100),
                               self._refused, self._answering)
            self._spawn(self._send_quietly(error_response(request.id, InternalError(
                "Too many requests from the server at once"))))
            return
        self._answering += 1
        self._spawn(self._answer(request))

    async def _answer(self, request: Request) -> None:
        try:
            try:
                result = await answer_server_request(self.handlers, self.name,
                                                     request.method, request.params)
                reply = {"jsonrpc": "2.0", "id": request.id, "result": result}
            except JSONRPCError as exc:
                reply = error_response(request.id, exc)
            await self._send_quietly(reply)
        finally:
            self._answering -= 1

    def _handle_notification(self, note: Notification) -> None:
        params = note.params or {}
        if note.method == methods.TOOLS_LIST_CHANGED:
            self._tools_changed()
        elif note.method == methods.LOGGING_MESSAGE:
            level = _LOG_LEVELS.get(str(params.get("level")), logging.INFO)
            if logger.isEnabledFor(level):
                logger.log(level, "%s: server log: %s", self.name,
                           for_display(str(params.get("data"))))
        elif note.method == methods.PROGRESS and logger.isEnabledFor(logging.INFO):
            progress, total, text = (for_display(str(params.get(key)), 100)
                                     for key in ("progress", "total", "message"))
            logger.info("%s: progress %s/%s %s", self.name, progress, total,
                        text if params.get("message") else "")
        if self._on_notification is not None:
            try:
                self._on_notification(self.name, note)
            except Exception:
                logger.exception("%s: notification hook failed", self.name)
