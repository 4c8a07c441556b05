"""One dispatcher for every transport: JSON-RPC frame in, responses and notifications out.

It knows nothing about HTTP or sockets. A transport hands it the bytes of one frame and a
:class:`ServerSession`; the dispatcher answers through two entry points:

- :meth:`Dispatcher.handle` awaits one message and returns its response dict (or ``None`` for
  notifications and responses). Request-scoped notifications (progress, log messages) go to the
  ``notify`` callable, which defaults to the session's stream.
- :meth:`Dispatcher.receive` is for stream transports (WebSocket, legacy SSE, stdio): requests
  run as tasks so a long ``tools/call`` never blocks ``ping`` or ``notifications/cancelled``, and
  each response is written with ``session.send``.

Both eras are served here (see :mod:`mcp_multi.protocol.versions`). A session's era is set by
its transport (Streamable HTTP knows it from the request's headers) or by its first request
(stream transports). Handshake-era requests are checked against the session's handshake
state; modern requests against their own ``_meta`` envelope, and their results are stamped
with ``resultType``, ``serverInfo`` and cache hints. Handlers see one :class:`Call` and do not
care which era they serve, except where the revisions differ (resource-not-found codes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..protocol import methods as m
from ..protocol.envelope import (
    SUBSCRIPTION_ID_META,
    CacheHint,
    Envelope,
    complete_result,
    has_envelope,
    read_envelope,
)
from ..protocol.errors import (
    InvalidParams,
    InvalidRequest,
    JSONRPCError,
    MethodNotFound,
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
from ..protocol.versions import (
    HANDSHAKE,
    LATEST_HANDSHAKE_VERSION,
    MODERN,
    MODERN_VERSIONS,
    negotiate,
    opening_era,
    supports,
    unsupported_version,
)
from .resources import ResourceNotFound, Resources, ServerStats
from .session import SendFn, ServerSession
from .settings import ServerSettings
from .tools import DisabledToolError, ToolContext, ToolError, ToolRegistry, UnknownToolError

__all__ = ["Call", "Dispatcher", "Frame", "build_dispatcher"]

logger = logging.getLogger(__name__)

Params = dict[str, Any]


@dataclass(slots=True)
class Call:
    """One request being served: what every handler receives.

    Attributes:
        session: the client's session (a throw-away one for a stateless HTTP request).
        params: the request's params (``{}`` when absent).
        notify: where request-scoped notifications (progress, log messages) go.
        request_id: the JSON-RPC id.
        envelope: the modern ``_meta`` envelope; ``None`` in the handshake era.
    """

    session: ServerSession
    params: Params
    notify: SendFn
    request_id: RequestId
    envelope: Envelope | None = None

    @property
    def modern(self) -> bool:
        return self.envelope is not None

    @property
    def log_level(self) -> str | None:
        """The least severe level the client wants log messages at; None for none."""
        if self.envelope is not None:
            return self.envelope.log_level
        return self.session.log_level


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class Frame:
    """One decoded frame: its messages, error responses for what could not be read, and
    whether it was a batch the session accepts (answered by one array)."""

    messages: list[Message]
    errors: list[dict[str, Any]]
    batch: bool = False

# Requests one stream session may have running at once.
MAX_INFLIGHT = 128

# Requests a client may send before the handshake is done.
_PRE_INIT = frozenset({m.INITIALIZE, m.PING})

# Freshness hints of the modern era's cacheable results. Tools and the resource list are
# fixed for the life of a server process; the resources themselves (uptime, statistics) are
# stale at once.
_CACHE_HINTS: dict[str, CacheHint] = {
    m.SERVER_DISCOVER: CacheHint(300_000),
    m.TOOLS_LIST: CacheHint(300_000),
    m.RESOURCES_LIST: CacheHint(300_000),
    m.RESOURCES_TEMPLATES_LIST: CacheHint(300_000),
    m.RESOURCES_READ: CacheHint(0, "private"),
}


class Dispatcher:
    """Routes MCP messages to handlers; one instance per server, shared by all sessions."""

    def __init__(self, settings: ServerSettings, registry: ToolRegistry, resources: Resources,
                 stats: ServerStats) -> None:
        self.settings = settings
        self.registry = registry
        self.resources = resources
        self.stats = stats
        self.server_info = {"name": settings.name, "version": _version()}
        common: dict[str, Handler] = {
            m.TOOLS_LIST: self._tools_list,
            m.TOOLS_CALL: self._tools_call,
            m.RESOURCES_LIST: self._resources_list,
            m.RESOURCES_READ: self._resources_read,
            m.RESOURCES_TEMPLATES_LIST: self._resources_templates_list,
        }
        self._handshake_handlers: dict[str, Handler] = {
            m.INITIALIZE: self._initialize,
            m.PING: self._ping,
            m.LOGGING_SET_LEVEL: self._logging_set_level,
            **common,
        }
        self._modern_handlers: dict[str, Handler] = {
            m.SERVER_DISCOVER: self._discover,
            m.SUBSCRIPTIONS_LISTEN: self._subscriptions_listen,
            **common,
        }
        self._batches: set[asyncio.Task[None]] = set()  # batch answers being gathered

    # ----------------------------------------------------------------- entry points

    def parse(self, session: ServerSession, data: bytes | str) -> Frame:
        """Decode one frame into messages, and error responses for what cannot be read."""
        if len(data) > self.settings.max_message_size:
            err = InvalidRequest(
                f"Message too large: {len(data)} bytes exceeds the limit of "
                f"{self.settings.max_message_size} bytes"
            )
            return Frame([], [error_response(None, err)])
        try:
            decoded = decode(data)
        except JSONRPCError as exc:
            return Frame([], [self._error(exc)])
        if not isinstance(decoded, list):
            return Frame([decoded], [])
        if not self.accepts_batch(session):
            served = session.protocol_version or MODERN_VERSIONS[-1]
            err = InvalidRequest(f"Invalid Request: batches are not part of protocol {served}")
            return Frame([], [error_response(None, err)])
        frame = Frame([], [], batch=True)
        for item in decoded:
            if isinstance(item, InvalidRequest):
                frame.errors.append(self._error(item))
            else:
                frame.messages.append(item)
        return frame

    def accepts_batch(self, session: ServerSession) -> bool:
        """Whether ``session`` may send JSON-RPC batches (2025-03-26, or not yet decided)."""
        version = session.protocol_version
        if session.era == MODERN:
            return False
        return version is None or supports(version, "batch")

    async def handle(self, session: ServerSession, message: Message,
                     notify: SendFn | None = None) -> dict[str, Any] | None:
        """Process one message; the response dict for a request, else ``None``."""
        if isinstance(message, Request):
            return await self._request(session, message, notify or session.send)
        if isinstance(message, Notification):
            self._notification(session, message)
        # Responses (to our pings) and error responses need no answer.
        return None

    async def receive(self, session: ServerSession, data: bytes | str) -> None:
        """Stream transports: process a frame, replying through ``session.send``.

        A batch (2025-03-26) is answered as JSON-RPC wants it: one array holding the
        responses of all its requests, sent when the last of them is done.
        """
        frame = self.parse(session, data)
        if frame.batch:
            await self._receive_batch(session, frame)
            return
        for err in frame.errors:
            await session.send(err)
        for msg in frame.messages:
            if isinstance(msg, Request):
                await self._spawn(session, msg)
            elif isinstance(msg, Notification):
                self._notification(session, msg)
            elif isinstance(msg, (Response, ErrorResponse)):
                logger.debug("session %s: response %s ignored", session.id, msg.id)

    async def _receive_batch(self, session: ServerSession, frame: Frame) -> None:
        requests = []
        for msg in frame.messages:
            if isinstance(msg, Request):
                requests.append(msg)
            elif isinstance(msg, Notification):
                self._notification(session, msg)

        async def answer() -> None:
            # A member cancelled by notifications/cancelled has no answer.
            done = [reply for _req, reply in await self.run_batch(session, requests)]
            replies = frame.errors + [reply for reply in done if reply is not None]
            if replies and not session.closed:
                with contextlib.suppress(Exception):
                    await session.send(replies)

        gathering = asyncio.create_task(answer())
        self._batches.add(gathering)
        gathering.add_done_callback(self._batches.discard)

    async def run_batch(self, session: ServerSession, requests: list[Request]
                        ) -> list[tuple[Request, dict[str, Any] | None]]:
        """Serve a batch's requests concurrently, each counted in flight like any other (so
        the limit holds and ``notifications/cancelled`` reaches it).

        Returns each request with its reply, in batch order; ``None`` for one cancelled.
        """
        running: list[tuple[Request, asyncio.Task[dict[str, Any] | None] | dict[str, Any]]] = []
        for req in requests:
            refusal = self.refusal(session, req)
            if refusal is not None:
                running.append((req, error_response(req.id, refusal)))
                continue
            task = asyncio.create_task(self.handle(session, req))
            session.track(req.id, task)
            running.append((req, task))
        tasks = [task for _req, task in running if isinstance(task, asyncio.Task)]
        if tasks:
            await asyncio.wait(tasks)
        replies: list[tuple[Request, dict[str, Any] | None]] = []
        for req, outcome in running:
            if not isinstance(outcome, asyncio.Task):
                replies.append((req, outcome))
            elif outcome.cancelled():
                replies.append((req, None))
            else:
                replies.append((req, outcome.result()))
        return replies

    # ----------------------------------------------------------------- plumbing

    @staticmethod
    def refusal(session: ServerSession, req: Request) -> InvalidRequest | None:
        """Why ``req`` may not start on ``session`` now (its id is in use, or too many
        requests run); ``None`` when it may. Every transport that runs requests concurrently
        asks this before it starts one, and then counts it with ``session.track``."""
        if req.id in session.inflight:
            return InvalidRequest(f"Invalid Request: id {req.id!r} is already in use")
        if len(session.inflight) >= MAX_INFLIGHT:
            return InvalidRequest(f"Too many requests in flight (limit {MAX_INFLIGHT})")
        return None

    async def _spawn(self, session: ServerSession, req: Request) -> None:
        err = self.refusal(session, req)
        if err is not None:
            await session.send(error_response(req.id, err))
            return
        session.track(req.id, asyncio.create_task(self._run(session, req)))

    async def _run(self, session: ServerSession, req: Request) -> None:
        try:
            response = await self._request(session, req, session.send)
        except asyncio.CancelledError:
            # Cancelled by notifications/cancelled or a closed session: no response is sent.
            return
        if response is not None and not session.closed:
            try:
                await session.send(response)
            except Exception as exc:  # the stream went away while we computed
                logger.debug("session %s: could not send response: %s", session.id, exc)

    def _error(self, exc: JSONRPCError) -> dict[str, Any]:
        self.stats.errors += 1
        req_id = None
        if isinstance(exc.data, dict) and set(exc.data) == {"id"}:
            req_id = exc.data["id"]
            exc = type(exc)(exc.message, code=exc.code)
        return error_response(req_id, exc)

    async def _request(self, session: ServerSession, req: Request,
                       notify: SendFn) -> dict[str, Any]:
        self.stats.requests += 1
        params = req.params or {}
        try:
            era = session.era or opening_era(req.method, params)
            if era == MODERN:
                result = await self._modern_request(session, req, params, notify)
            else:
                result = await self._handshake_request(session, req, params, notify)
        except JSONRPCError as exc:
            self.stats.errors += 1
            return error_response(req.id, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("internal error handling %s", req.method)
            self.stats.errors += 1
            return error_response(req.id, JSONRPCError(f"Internal error: {exc}"))
        return {"jsonrpc": "2.0", "id": req.id, "result": result}

    async def _handshake_request(self, session: ServerSession, req: Request, params: Params,
                                 notify: SendFn) -> dict[str, Any]:
        session.era = HANDSHAKE
        if req.method != m.INITIALIZE and has_envelope(params):
            raise InvalidRequest(
                "Invalid Request: this connection serves the handshake era (initialize); "
                "requests carrying the 2026-07-28 _meta envelope are not accepted on it"
            )
        handler = self._handshake_handlers.get(req.method)
        if handler is None:
            raise MethodNotFound(f"Method not found: {req.method}")
        if not session.initialized and req.method not in _PRE_INIT \
                and session.protocol_version is None:
            raise InvalidRequest(
                f"Invalid Request: {req.method} before initialize; send initialize first"
            )
        return await handler(Call(session, params, notify, req.id))

    async def _modern_request(self, session: ServerSession, req: Request, params: Params,
                              notify: SendFn) -> dict[str, Any]:
        if req.method == m.INITIALIZE and not session.stateless:
            # A stream connection already serving 2026-07-28 names what it serves (a
            # stateless HTTP request just finds no such method, as 2026-07-28 has none).
            raise unsupported_version(
                params.get("protocolVersion"),
                "Unsupported protocol version: this connection serves 2026-07-28, "
                "where initialize does not exist",
            )
        envelope = read_envelope(params)
        session.era = MODERN
        handler = self._modern_handlers.get(req.method)
        if handler is None:
            raise MethodNotFound(f"Method not found: {req.method}")
        result = await handler(Call(session, params, notify, req.id, envelope))
        return complete_result(result, self.server_info, _CACHE_HINTS.get(req.method))

    def _notification(self, session: ServerSession, note: Notification) -> None:
        params = note.params or {}
        if note.method == m.INITIALIZED:
            session.initialized = True
        elif note.method == m.CANCELLED:
            request_id = params.get("requestId")
            if isinstance(request_id, (str, int)) and session.cancel(request_id):
                logger.debug("session %s: request %r cancelled", session.id, request_id)
        else:
            logger.debug("session %s: notification %s ignored", session.id, note.method)

    # ----------------------------------------------------------------- handlers

    def _capabilities(self, modern: bool) -> dict[str, Any]:
        resources: dict[str, Any] = {"listChanged": False}
        if not modern:
            resources["subscribe"] = False
        return {"tools": {"listChanged": False}, "resources": resources, "logging": {}}

    def _instructions(self) -> str:
        return (
            f"{self.settings.name}: demo MCP server with tools "
            f"{', '.join(self.registry.names)}; read server://info for its configuration."
        )

    async def _initialize(self, call: Call) -> dict[str, Any]:
        session, params = call.session, call.params
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            raise InvalidParams('Invalid params: "protocolVersion" must be a string')
        if session.protocol_version is not None:
            raise InvalidRequest("Invalid Request: the session is already initialized")
        client_info = params.get("clientInfo")
        session.client_info = client_info if isinstance(client_info, dict) else None
        session.protocol_version = negotiate(requested)
        return {
            "protocolVersion": session.protocol_version,
            "capabilities": self._capabilities(modern=False),
            "serverInfo": dict(self.server_info),
            "instructions": self._instructions(),
        }

    async def _discover(self, call: Call) -> dict[str, Any]:
        return {
            "supportedVersions": list(MODERN_VERSIONS),
            "capabilities": self._capabilities(modern=True),
            "instructions": self._instructions(),
        }

    async def _ping(self, call: Call) -> dict[str, Any]:
        return {}

    async def _tools_list(self, call: Call) -> dict[str, Any]:
        _check_cursor(call.params)
        return {"tools": self.registry.list_tools()}

    async def _tools_call(self, call: Call) -> dict[str, Any]:
        params = call.params
        name = params.get("name")
        if not isinstance(name, str):
            raise InvalidParams('Invalid params: "name" must be a string')
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise InvalidParams('Invalid params: "arguments" must be an object')
        try:
            tool = self.registry.get(name)
        except (UnknownToolError, DisabledToolError) as exc:
            raise InvalidParams(str(exc), {"tool": name}) from None
        self.stats.calls_served += 1
        problems = self.registry.validation_errors(name, arguments)
        if problems:
            message = f"Invalid arguments for tool '{name}': " + "; ".join(problems)
            # From 2025-11-25 (and in 2026-07-28) the model sees the violation as a tool error
            # it can correct; earlier revisions answer it as invalid params.
            version = call.session.protocol_version or LATEST_HANDSHAKE_VERSION
            if call.modern or supports(version, "input_validation_as_tool_error"):
                return m.tool_result(message, is_error=True)
            raise InvalidParams(message, {"tool": name, "problems": problems})
        progress = _progress_fn(params, call.notify)
        # A client that asked for progress hears at once that the call has started (over
        # Streamable HTTP this opens the response stream, so a long call stays visible).
        await progress(0, None, f"Calling {name}")
        ctx = ToolContext(settings=self.settings, progress=progress,
                          log=_log_fn(call, name), commands=self.registry.commands,
                          caller=call.session.id)
        try:
            return await tool.handler(arguments, ctx)
        except ToolError as exc:
            return m.tool_result(str(exc), is_error=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("tool %s failed", name)
            return m.tool_result(f"Tool '{name}' failed: {type(exc).__name__}: {exc}",
                                 is_error=True)

    async def _resources_list(self, call: Call) -> dict[str, Any]:
        _check_cursor(call.params)
        return {"resources": self.resources.list_resources()}

    async def _resources_read(self, call: Call) -> dict[str, Any]:
        uri = call.params.get("uri")
        if not isinstance(uri, str):
            raise InvalidParams('Invalid params: "uri" must be a string')
        try:
            return self.resources.read(uri)
        except ResourceNotFound as exc:
            if call.modern:  # 2026-07-28 replaced -32002 with -32602
                raise InvalidParams(exc.message, exc.data) from None
            raise

    async def _resources_templates_list(self, call: Call) -> dict[str, Any]:
        _check_cursor(call.params)
        return {"resourceTemplates": []}

    async def _logging_set_level(self, call: Call) -> dict[str, Any]:
        level = call.params.get("level")
        if level not in m.LOG_LEVELS:
            raise InvalidParams(
                f"Invalid params: level must be one of {', '.join(m.LOG_LEVELS)}"
            )
        call.session.log_level = level
        return {}

    async def _subscriptions_listen(self, call: Call) -> dict[str, Any]:
        """Open a change-notification stream: acknowledge, then hold until cancelled.

        Our tools and resources never change while the server runs, so no notification type
        is honoured and the acknowledgement says so (an empty filter); the stream stays open
        until the client closes it (HTTP) or cancels the request (stdio, WebSocket).
        """
        wanted = call.params.get("notifications", {})
        if not isinstance(wanted, dict):
            raise InvalidParams('Invalid params: "notifications" must be an object')
        await call.notify({
            "jsonrpc": "2.0",
            "method": m.SUBSCRIPTIONS_ACKNOWLEDGED,
            "params": {"_meta": {SUBSCRIPTION_ID_META: call.request_id}, "notifications": {}},
        })
        await asyncio.Event().wait()
        return {"_meta": {SUBSCRIPTION_ID_META: call.request_id}}  # pragma: no cover


def build_dispatcher(settings: ServerSettings, transports: tuple[str, ...],
                     endpoints: dict[str, str]) -> Dispatcher:
    """The dispatcher of one server: its tools, counters and resources.

    ``transports`` and ``endpoints`` are what ``server://info`` reports. Raises ``ValueError``
    for an unknown tool name.
    """
    registry = ToolRegistry(settings.tools)
    stats = ServerStats()
    resources = Resources(settings, registry, stats, transports, endpoints)
    return Dispatcher(settings, registry, resources, stats)


def _version() -> str:
    from .. import __version__

    return __version__


def _check_cursor(params: Params) -> None:
    # Every list fits one page, so no cursor we issued exists: any cursor is invalid.
    if params.get("cursor") is not None:
        raise InvalidParams("Invalid params: unknown cursor")


def _progress_fn(params: Params, notify: SendFn) -> Callable[
        [float, float | None, str | None], Awaitable[None]]:
    """Progress notifications for the request's ``progressToken`` (none without one).

    The specification wants the value to increase with each notification: a report that
    does not is dropped here, once for every tool.
    """
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    last: list[float] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        if token is None or (last and done <= last[0]):
            return
        last[:] = [done]
        p: dict[str, Any] = {"progressToken": token, "progress": done}
        if total is not None:
            p["total"] = total
        if message:
            p["message"] = message
        await notify({"jsonrpc": "2.0", "method": m.PROGRESS, "params": p})

    return progress


def _log_fn(call: Call, logger_name: str) -> Callable[[str, Any], Awaitable[None]]:
    async def log(level: str, data: Any) -> None:
        threshold = call.log_level
        if threshold is None or level not in m.LOG_LEVELS:
            return
        if m.LOG_LEVELS.index(level) < m.LOG_LEVELS.index(threshold):
            return
        await call.notify({"jsonrpc": "2.0", "method": m.LOGGING_MESSAGE,
                           "params": {"level": level, "logger": logger_name, "data": data}})

    return log
