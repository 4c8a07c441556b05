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

What the server asks of us (sampling, elicitation, roots) the connection's
:attr:`MCPConnection.handlers` answer (:mod:`mcp_multi.client.answering`): a server request
in the handshake era, an ``input_required`` result in 2026-07-28, which :meth:`request`
answers and retries (a new id, ``inputResponses``, the ``requestState`` echoed) for at most
:data:`MAX_INPUT_ROUNDS` rounds. A ``tools/call`` the server runs as a task (the tasks
extension, which every connection declares) is followed to its end by :meth:`call_tool`:
``tasks/get`` polled at the pace the server asks (bounded), input it asks for given with
``tasks/update``, each new status shown to the notification hook as a
``notifications/tasks/status``; a call given up on sends ``tasks/cancel``.

Failure rules, which make hangs impossible:

- every request is bounded by a timeout (the connection's, or the call's own); on expiry
  the server is told ``notifications/cancelled`` and the caller gets :class:`RequestTimeout`.
  One timer per connection keeps these deadlines (the watchdog): it is armed for the
  earliest and, when it fires, cancels the requests whose time is up and arms itself for the
  next. A request that ends in time leaves it alone, so the common case costs no timer of
  its own (``asyncio.timeout`` made one, and a cancelled one left in the loop's heap, per
  request);
- when the reader ends (the server closed, the network failed, or we closed) every pending
  future fails at once with :class:`ConnectionClosed`, and so does every later request;
- a request whose answer can no longer come (its HTTP stream broke) fails alone with
  :class:`RequestFailed`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from ..protocol import methods
from ..protocol.client_state import ClientEvent, ClientLifecycle, ClientState
from ..protocol.envelope import CLIENT_CAPABILITIES_META, with_envelope
from ..protocol.errors import (
    ConnectionClosed,
    HeaderMismatch,
    InputRequired,
    InternalError,
    JSONRPCError,
    MCPError,
    ProtocolError,
    RequestCancelled,
    RequestTimeout,
    SessionExpired,
)
from ..protocol.jsonrpc import Notification, RequestId, encode
from ..protocol.lifecycle import (
    InitializeResult,
    TaskState,
    asked_methods,
    cancelled_params,
    input_retry_params,
    is_input_required,
    parse_tools_page,
    read_task,
    tool_call_params,
    unwrap_result,
)
from ..protocol.tasks import TaskSupport, task_support, tasks_capability
from ..protocol.text import for_display
from ..protocol.versions import LATEST_HANDSHAKE_VERSION, is_supported
from ..transport import ClientTransport
from .answering import ClientHandlers, answer_input_requests
from .inbound import FrameHook, NotificationHook, ServerMessages
from .opening import SessionOpening

if TYPE_CHECKING:
    from .auth.hook import RequestAuth

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_INPUT_ROUNDS",
    "TASK_TIMEOUT",
    "FrameHook",
    "MCPConnection",
    "NotificationHook",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
MAX_TOOL_PAGES = 1000
# One page's result -> its items and the next cursor (None at the end).
PageReader = Callable[[dict[str, Any]], tuple[list[dict[str, Any]], str | None]]
# How many times one request is answered input and sent again before we give up on it.
MAX_INPUT_ROUNDS = 8
# The longest a task-run tool call is followed (each poll also has the request timeout).
TASK_TIMEOUT = 600.0
# Requests that negotiate: never cancelled (the specification forbids it for initialize).
_NEGOTIATION = (methods.INITIALIZE, methods.SERVER_DISCOVER)


def _seconds(limit: float) -> str:
    return f"{round(limit, 2):g}"


def _task_error(error: JSONRPCError) -> JSONRPCError:
    """A failed task's error with its message escaped and clipped (code and data kept)."""
    error.message = for_display(error.message)
    error.args = (error.message,)
    return error


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
        handlers: what answers the server's sampling, elicitation and roots requests
            (``None``: nothing; only those with a handler are declared). Replaceable at
            run time through :attr:`handlers` (the capabilities declared stay those of
            the handlers given at connection time in the handshake era).

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
        handlers: ClientHandlers | None = None,
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
        self._handlers = handlers
        self._answering = 0  # server requests being answered now
        self._refused = 0  # server requests refused for being too many at once
        self._refreshing = False  # a tools/list refresh runs (list_changed)
        self._refresh_again = False  # ...and the list changed again meanwhile
        # The watchdog (module docstring): request id -> (deadline, the task waiting for
        # it); the ids it cancelled; its timer and when that fires.
        self._deadlines: dict[RequestId, tuple[float, asyncio.Task[Any]]] = {}
        self._expired: set[RequestId] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._watch_at = math.inf
        # The tool list last looked at by _legacy_tasks, and its tools that require a task.
        self._task_tools: tuple[list[dict[str, Any]] | None, frozenset[str]] = (None, frozenset())

    # -- state -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.transport.url

    @property
    def transport_kind(self) -> str:
        return self.transport.kind

    @property
    def auth(self) -> RequestAuth | None:
        """The authorization of this server's HTTP requests (its transport's), if any."""
        return self.transport.auth

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

    @property
    def handlers(self) -> ClientHandlers | None:
        """What answers the server's requests; read at each request, so it may be swapped."""
        return self._handlers

    @handlers.setter
    def handlers(self, handlers: ClientHandlers | None) -> None:
        self._handlers = handlers
        if self._meta is not None:  # 2026-07-28 declares capabilities on every request
            self._meta = {**self._meta, CLIENT_CAPABILITIES_META: self.client_capabilities()}

    def client_capabilities(self) -> dict[str, Any]:
        """The capabilities this connection declares: those of its handlers, and the tasks
        extension (a task-run tool call is followed by :meth:`call_tool`)."""
        declared = self._handlers.capabilities() if self._handlers is not None else {}
        declared.update(tasks_capability())
        return declared

    def outgoing_params(self, method: str,
                        params: dict[str, Any] | None) -> dict[str, Any] | None:
        """The params :meth:`request` sends for ``method`` now: in the 2026-07-28 era with
        the ``_meta`` envelope. For a caller that encodes requests itself (the load mode)."""
        if self._meta is not None and method != methods.INITIALIZE:
            return with_envelope(params, self._meta)
        return params

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
            self.transport.direct = self._take_answer
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

        A result asking for input (2026-07-28 ``input_required``) is answered by
        :attr:`handlers` and the request sent again, each round under ``timeout``.

        Raises:
            JSONRPCError: the server answered with an error (the subclass matches the code).
            InputRequired: the server asked for input the handlers did not give, or still
                asked after :data:`MAX_INPUT_ROUNDS` rounds.
            RequestTimeout: no answer in time (the server is told the request is cancelled).
            ConnectionClosed: the connection is gone, or went away while we waited.
        """
        result = await self._request_once(method, params, timeout)
        rounds = 0
        while is_input_required(result):
            if rounds == MAX_INPUT_ROUNDS:
                asked = asked_methods(result)
                raise InputRequired(
                    f"{self.name}: {method} still needs input after {MAX_INPUT_ROUNDS} rounds"
                    + (f" ({for_display(', '.join(asked), 200)})" if asked else ""),
                    asked, result)
            rounds += 1
            responses = await self._give_input(method, result)
            params = input_retry_params(params, result, responses)
            result = await self._request_once(method, params, timeout)
        return unwrap_result(result) if self._meta is not None else result

    async def _give_input(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """The ``inputResponses`` to what ``result`` asks for; raises when not given."""
        requests = result.get("inputRequests")
        try:
            return await answer_input_requests(
                self._handlers, self.name, requests if isinstance(requests, Mapping) else {})
        except JSONRPCError as exc:
            asked = asked_methods(result)
            raise InputRequired(
                f"{self.name}: {method} needs input the client did not give "
                f"({for_display(', '.join(asked), 200)}): {for_display(str(exc), 300)}",
                asked, result) from None

    async def _request_once(self, method: str, params: dict[str, Any] | None,
                            timeout: float | None) -> dict[str, Any]:
        """One request and its answer, the raw result (see :meth:`request`)."""
        self._check_open()
        if self._meta is not None and method != methods.INITIALIZE:
            params = with_envelope(params, self._meta)
        request_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[request_id] = future
        limit = self._time_left(self.timeout if timeout is None else timeout)
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        self._watch(request_id, loop.time() + limit, task)
        try:
            await self._send_request(message)
            return await future
        except asyncio.CancelledError:
            # Ours (the watchdog's) unless someone else cancelled the task too, as
            # asyncio.timeout decides.
            if request_id in self._expired and task.uncancel() <= cancelling:
                self._cancel_remotely(method, request_id,
                                      f"no response within {_seconds(limit)}s")
                raise RequestTimeout(
                    f"{self.name}: {method} got no response within {_seconds(limit)}s"
                ) from None
            self._cancel_remotely(method, request_id, "the client gave up")
            raise
        finally:
            self._deadlines.pop(request_id, None)
            self._expired.discard(request_id)
            self._pending.pop(request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning
            else:
                future.cancel()

    def _watch(self, request_id: RequestId, deadline: float,
               task: asyncio.Task[Any]) -> None:
        """Have the watchdog cancel ``task`` at ``deadline`` unless ``request_id`` ends first."""
        self._deadlines[request_id] = (deadline, task)
        if deadline < self._watch_at:
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watch_at = when
        self._watchdog = asyncio.get_running_loop().call_at(when, self._bite)

    def _bite(self) -> None:
        """The watchdog fired: cancel the requests whose time is up, wait for the next."""
        self._watchdog, self._watch_at = None, math.inf
        now = asyncio.get_running_loop().time()
        earliest = math.inf
        for request_id, (deadline, task) in list(self._deadlines.items()):
            if deadline <= now:
                del self._deadlines[request_id]
                self._expired.add(request_id)
                task.cancel()
            elif deadline < earliest:
                earliest = deadline
        if earliest < math.inf:
            self._arm(earliest)

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
        tools = await self.list_all(methods.TOOLS_LIST, "tools", read=parse_tools_page,
                                    max_pages=MAX_TOOL_PAGES)
        self._tools = self.transport.accept_tools(tools)
        return self._tools

    async def list_all(self, method: str, key: str, *,
                       read: PageReader | None = None,
                       max_pages: int = MAX_TOOL_PAGES) -> list[dict[str, Any]]:
        """Every item of a paginated list (``tools/list``, ``resources/list``, ...), following
        ``nextCursor``: at most ``max_pages`` pages, and a cursor seen before is refused (a
        server cannot keep the client walking in a loop).

        ``read`` takes one page's result apart into its items and the next cursor; by default
        the objects of its ``key`` list.

        Raises:
            ProtocolError: a page without its list, a repeated cursor, too many pages.
        """
        read_page = read or (lambda result: _page_items(method, key, result))
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            params = {"cursor": cursor} if cursor is not None else None
            page, cursor = read_page(await self.request(method, params))
            items.extend(page)
            if cursor is None:
                return items
            if cursor in seen:
                raise ProtocolError(f"{self.name}: {method} repeated cursor "
                                    f"{for_display(repr(cursor), 200)}")
            seen.add(cursor)
        raise ProtocolError(f"{self.name}: {method} has more than {max_pages} pages")

    async def call_tool(
        self, name: str, arguments: dict[str, Any] | None = None, *,
        timeout: float | None = None, task_timeout: float = TASK_TIMEOUT,
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Call a tool and return its result (which may hold ``isError: true``); ``meta``
        goes in the request's ``_meta`` (the shell's ``progressToken``).

        A call the server runs as a task is followed to its end (see the module docstring),
        for at most ``task_timeout`` seconds. A 2026-07-28 server refusing the call's
        ``Mcp-Param-*`` headers (-32020) makes us list the tools again and retry once.

        Raises:
            JSONRPCError: the server refused the call (unknown or disabled tool, bad params),
                or its task failed (the task's error).
            RequestCancelled: its task was cancelled.
            RequestTimeout, ConnectionClosed, InputRequired: as for :meth:`request`.
        """
        params = tool_call_params(name, arguments)
        if meta:
            params["_meta"] = dict(meta)
        if self._legacy_tasks(name):
            params["task"] = {}
        try:
            result = await self.request(methods.TOOLS_CALL, params, timeout=timeout)
        except HeaderMismatch:
            if self._meta is None:
                raise
            await self.list_tools(refresh=True)
            result = await self.request(methods.TOOLS_CALL, params, timeout=timeout)
        task = read_task(result)
        if task is None:
            return result
        return await self._follow_task(task, timeout, task_timeout)

    def _legacy_tasks(self, name: str) -> bool:
        """Whether ``name`` must run as a 2025-11-25 task: the tool requires it and the
        server offers task-augmented ``tools/call`` (SEP-2663 servers decide themselves)."""
        offered = self.server.capabilities.get("tasks") if self.server else None
        tools = self._tools
        if not isinstance(offered, dict) or tools is None:
            return False
        if self._task_tools[0] is not tools:  # made once per tool list, not per call
            self._task_tools = (tools, _tools_requiring_tasks(tools))
        return name in self._task_tools[1]

    async def _follow_task(self, task: TaskState, timeout: float | None,
                           task_timeout: float) -> dict[str, Any]:
        """Poll ``task`` to its end and return its result; cancel it when we give up."""
        shown: str | None = None
        # Keys already answered: a task still listing one (the server has not taken the
        # answer in yet, or asks forever) is polled at its pace, not answered again at once.
        answered: set[str] = set()
        try:
            async with asyncio.timeout(task_timeout):
                while True:
                    if task.status != shown:
                        shown = task.status
                        self._report_task(task)
                    if task.terminal:
                        return await self._task_outcome(task, timeout)
                    asked = {key: request for key, request in (task.input_requests or {}).items()
                             if key not in answered} if task.status == "input_required" else {}
                    if asked:
                        responses = await self._give_input(methods.TOOLS_CALL, {
                            "inputRequests": asked})
                        await self.request(methods.TASKS_UPDATE, {
                            "taskId": task.task_id, "inputResponses": responses},
                            timeout=timeout)
                        answered.update(asked)
                    else:
                        await asyncio.sleep(task.poll_seconds)
                    polled = await self.request(methods.TASKS_GET, {"taskId": task.task_id},
                                                timeout=timeout)
                    task = read_task(polled, polled=True, legacy=task.legacy) or task
        except TimeoutError:
            self._cancel_task(task.task_id)
            raise RequestTimeout(f"{self.name}: task {for_display(task.task_id, 100)} did "
                                 f"not end within {_seconds(task_timeout)}s") from None
        except BaseException:
            if not task.terminal:
                self._cancel_task(task.task_id)
            raise

    async def _task_outcome(self, task: TaskState, timeout: float | None) -> dict[str, Any]:
        if task.status == "cancelled":
            raise RequestCancelled(f"{self.name}: task {for_display(task.task_id, 100)} "
                                   "was cancelled")
        if task.status == "completed" and task.result is not None:
            return task.result
        if task.error is not None:
            raise _task_error(JSONRPCError.from_error(task.error))
        if task.legacy or task.status == "completed":
            return await self.request(methods.TASKS_RESULT, {"taskId": task.task_id},
                                      timeout=timeout)
        raise InternalError(f"{self.name}: task {for_display(task.task_id, 100)} failed"
                            + (f": {task.message}" if task.message else ""))

    def _report_task(self, task: TaskState) -> None:
        """Show a task's new status to the notification hook, as the server would."""
        if self._on_notification is None:
            return
        params: dict[str, Any] = {"taskId": task.task_id, "status": task.status}
        if task.message:
            params["statusMessage"] = task.message
        try:
            self._on_notification(self.name, Notification(methods.TASKS_STATUS, params))
        except Exception:
            logger.exception("%s: notification hook failed", self.name)

    def _cancel_task(self, task_id: str) -> None:
        if self._life.closed:
            return
        self._spawn(self._cancel_quietly(task_id))

    async def _cancel_quietly(self, task_id: str) -> None:
        try:
            await self.request(methods.TASKS_CANCEL, {"taskId": task_id})
        except MCPError as exc:
            logger.debug("%s: could not cancel task %s: %s", self.name,
                         for_display(task_id, 100), exc)

    async def roots_changed(self) -> None:
        """Tell the server our roots changed (handshake era, when roots are offered; the
        2026-07-28 server asks for them with each request that needs them)."""
        if self._meta is None and self._handlers is not None and self._handlers.roots:
            await self.notify(methods.ROOTS_LIST_CHANGED)

    # -- internals ---------------------------------------------------------------------

    def _check_open(self) -> None:
        state = self._life.state
        if state is ClientState.CLOSED:
            raise ConnectionClosed(f"{self.name}: {self._life.reason}")
        if state is ClientState.NEW:
            raise ConnectionClosed(f"{self.name}: not connected")

    async def _send_request(self, message: dict[str, Any]) -> None:
        epoch = self._epoch
        self._show(message)
        try:
            await self.transport.send(message)
        except SessionExpired:
            if message["method"] == methods.INITIALIZE:
                raise
            await self._renew_session(epoch)
            await self._send(message)

    @property
    def session_epoch(self) -> int:
        """Which session the connection is in: the count of sessions it opened again after
        the server forgot one (see :meth:`renew_session`)."""
        return self._epoch

    async def renew_session(self, epoch: int) -> None:
        """The server forgot the session ``epoch`` (:attr:`session_epoch` when a request in it
        went out), as a request sent around this connection found (the load mode's lean
        driver): initialize a new one, once for every caller that saw it go.

        Raises as :meth:`connect`'s handshake does when the new session cannot open.
        """
        await self._renew_session(epoch, told=False)

    async def _renew_session(self, epoch: int, *, told: bool = True) -> None:
        """The server forgot the session ``epoch``: open a new one (once, for every caller).
        ``told``: the transport saw it forget (else it is told here)."""
        async with self._renewing:
            if self._epoch != epoch:
                return  # another request has renewed it already
            self._check_open()
            if not told:
                self.transport.forget_session()
            self._life.process(ClientEvent.EXPIRED)
            logger.info("%s: the server ended our session; initializing a new one", self.name)
            version = self.server.protocol_version if self.server else LATEST_HANDSHAKE_VERSION
            server = await self._handshake(version)
            self._check_open()  # closed while renewing: the new session is not ours to keep
            self.server = server
            self._life.process(ClientEvent.OPENED)
            self._epoch += 1

    async def _send(self, message: dict[str, Any]) -> None:
        self._show(message)
        await self.transport.send(message)

    def _show(self, message: dict[str, Any]) -> None:
        """An outgoing message to the trace hook and the debug log (when either wants it)."""
        if self._on_frame is not None:
            self._on_frame(self.name, "send", encode(message))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s -> %s", self.name, message)

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


def _tools_requiring_tasks(tools: list[dict[str, Any]]) -> frozenset[str]:
    """The names of the tools that must run as tasks (the first tool of a name counts)."""
    seen: set[str] = set()
    required: set[str] = set()
    for tool in tools:
        name = tool.get("name")
        if not isinstance(name, str) or name in seen:
            continue
        seen.add(name)
        execution = tool.get("execution")
        if task_support(execution if isinstance(execution, dict) else None) \
                is TaskSupport.REQUIRED:
            required.add(name)
    return frozenset(required)


def _page_items(method: str, key: str,
                result: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The objects of one page's ``key`` list (others skipped), and the next cursor."""
    page = result.get(key)
    if not isinstance(page, list):
        raise ProtocolError(f"{method} answered without a {key} list")
    cursor = result.get("nextCursor")
    if cursor is not None and cursor != "" and not isinstance(cursor, str):
        raise ProtocolError(f"{method} sent a cursor that is not a string")
    return [item for item in page if isinstance(item, dict)], cursor or None
