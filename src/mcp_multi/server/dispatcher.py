"""One dispatcher for every transport: JSON-RPC frame in, responses and notifications out.

It knows nothing about HTTP or sockets. A transport hands it the bytes of one frame and a
:class:`ServerSession`; the dispatcher answers through two entry points:

- :meth:`Dispatcher.handle` awaits one message and returns its response dict (or ``None`` for
  notifications and responses). Request-scoped notifications (progress, log messages) go to the
  ``notify`` callable, which defaults to the session's stream.
- :meth:`Dispatcher.receive` is for stream transports (WebSocket, legacy SSE, stdio): requests
  run as tasks so a long ``tools/call`` never blocks ``ping`` or ``notifications/cancelled``, and
  each response is written with ``session.send``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..protocol import methods as m
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
    Response,
    decode,
    error_response,
)
from ..protocol.versions import negotiate, supports
from .resources import Resources, ServerStats
from .session import SendFn, ServerSession
from .settings import ServerSettings
from .tools import DisabledToolError, ToolContext, ToolError, ToolRegistry, UnknownToolError

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)

Params = dict[str, Any]
Handler = Callable[[ServerSession, Params, SendFn], Awaitable[dict[str, Any]]]

# Requests one stream session may have running at once.
MAX_INFLIGHT = 128

# Requests a client may send before the handshake is done.
_PRE_INIT = frozenset({m.INITIALIZE, m.PING})


class Dispatcher:
    """Routes MCP messages to handlers; one instance per server, shared by all sessions."""

    def __init__(self, settings: ServerSettings, registry: ToolRegistry, resources: Resources,
                 stats: ServerStats) -> None:
        self.settings = settings
        self.registry = registry
        self.resources = resources
        self.stats = stats
        self._handlers: dict[str, Handler] = {
            m.INITIALIZE: self._initialize,
            m.PING: self._ping,
            m.TOOLS_LIST: self._tools_list,
            m.TOOLS_CALL: self._tools_call,
            m.RESOURCES_LIST: self._resources_list,
            m.RESOURCES_READ: self._resources_read,
            m.RESOURCES_TEMPLATES_LIST: self._resources_templates_list,
            m.LOGGING_SET_LEVEL: self._logging_set_level,
        }

    # ----------------------------------------------------------------- entry points

    def parse(self, session: ServerSession, data: bytes | str
              ) -> tuple[list[Message], list[dict[str, Any]]]:
        """Decode one frame into messages, and error responses for what cannot be read."""
        if len(data) > self.settings.max_message_size:
            err = InvalidRequest(
                f"Message too large: {len(data)} bytes exceeds the limit of "
                f"{self.settings.max_message_size} bytes"
            )
            return [], [error_response(None, err)]
        try:
            decoded = decode(data)
        except JSONRPCError as exc:
            return [], [self._error(exc)]
        if not isinstance(decoded, list):
            return [decoded], []
        version = session.protocol_version
        if version is not None and not supports(version, "batch"):
            err = InvalidRequest(f"Invalid Request: batches are not part of protocol {version}")
            return [], [error_response(None, err)]
        messages: list[Message] = []
        errors: list[dict[str, Any]] = []
        for item in decoded:
            if isinstance(item, InvalidRequest):
                errors.append(self._error(item))
            else:
                messages.append(item)
        return messages, errors

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
        """Stream transports: process a frame, replying through ``session.send``."""
        messages, errors = self.parse(session, data)
        for err in errors:
            await session.send(err)
        for msg in messages:
            if isinstance(msg, Request):
                await self._spawn(session, msg)
            elif isinstance(msg, Notification):
                self._notification(session, msg)
            elif isinstance(msg, (Response, ErrorResponse)):
                logger.debug("session %s: response %s ignored", session.id, msg.id)

    # ----------------------------------------------------------------- plumbing

    async def _spawn(self, session: ServerSession, req: Request) -> None:
        if req.id in session.inflight:
            err = InvalidRequest(f"Invalid Request: id {req.id!r} is already in use")
        elif len(session.inflight) >= MAX_INFLIGHT:
            err = InvalidRequest(f"Too many requests in flight (limit {MAX_INFLIGHT})")
        else:
            task = asyncio.create_task(self._run(session, req))
            session.inflight[req.id] = task
            task.add_done_callback(lambda _t: session.inflight.pop(req.id, None))
            return
        await session.send(error_response(req.id, err))

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
        handler = self._handlers.get(req.method)
        try:
            if handler is None:
                raise MethodNotFound(f"Method not found: {req.method}")
            if not session.initialized and req.method not in _PRE_INIT \
                    and session.protocol_version is None:
                raise InvalidRequest(
                    f"Invalid Request: {req.method} before initialize; send initialize first"
                )
            result = await handler(session, req.params or {}, notify)
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

    async def _initialize(self, session: ServerSession, params: Params,
                          notify: SendFn) -> dict[str, Any]:
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
            "capabilities": {
                "tools": {"listChanged": False},
                "resources": {"subscribe": False, "listChanged": False},
                "logging": {},
            },
            "serverInfo": {"name": self.settings.name, "version": _version()},
            "instructions": (
                f"{self.settings.name}: demo MCP server with tools "
                f"{', '.join(self.registry.names)}; read server://info for its configuration."
            ),
        }

    async def _ping(self, session: ServerSession, params: Params, notify: SendFn
                    ) -> dict[str, Any]:
        return {}

    async def _tools_list(self, session: ServerSession, params: Params, notify: SendFn
                          ) -> dict[str, Any]:
        _check_cursor(params)
        return {"tools": self.registry.list_tools()}

    async def _tools_call(self, session: ServerSession, params: Params, notify: SendFn
                          ) -> dict[str, Any]:
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
            return m.tool_result(
                f"Invalid arguments for tool '{name}': " + "; ".join(problems), is_error=True
            )
        ctx = ToolContext(
            settings=self.settings,
            progress=_progress_fn(params, notify),
            log=_log_fn(session, notify, name),
        )
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

    async def _resources_list(self, session: ServerSession, params: Params, notify: SendFn
                              ) -> dict[str, Any]:
        _check_cursor(params)
        return {"resources": self.resources.list_resources()}

    async def _resources_read(self, session: ServerSession, params: Params, notify: SendFn
                              ) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise InvalidParams('Invalid params: "uri" must be a string')
        return self.resources.read(uri)

    async def _resources_templates_list(self, session: ServerSession, params: Params,
                                        notify: SendFn) -> dict[str, Any]:
        _check_cursor(params)
        return {"resourceTemplates": []}

    async def _logging_set_level(self, session: ServerSession, params: Params, notify: SendFn
                                 ) -> dict[str, Any]:
        level = params.get("level")
        if level not in m.LOG_LEVELS:
            raise InvalidParams(
                f"Invalid params: level must be one of {', '.join(m.LOG_LEVELS)}"
            )
        session.log_level = level
        return {}


def _version() -> str:
    from .. import __version__

    return __version__


def _check_cursor(params: Params) -> None:
    # Every list fits one page, so no cursor we issued exists: any cursor is invalid.
    if params.get("cursor") is not None:
        raise InvalidParams("Invalid params: unknown cursor")


def _progress_fn(params: Params, notify: SendFn) -> Callable[
        [float, float | None, str | None], Awaitable[None]]:
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None

    async def progress(done: float, total: float | None, message: str | None) -> None:
        if token is None:
            return
        p: dict[str, Any] = {"progressToken": token, "progress": done}
        if total is not None:
            p["total"] = total
        if message:
            p["message"] = message
        await notify({"jsonrpc": "2.0", "method": m.PROGRESS, "params": p})

    return progress


def _log_fn(session: ServerSession, notify: SendFn, logger_name: str
            ) -> Callable[[str, Any], Awaitable[None]]:
    async def log(level: str, data: Any) -> None:
        threshold = session.log_level
        if threshold is None or level not in m.LOG_LEVELS:
            return
        if m.LOG_LEVELS.index(level) < m.LOG_LEVELS.index(threshold):
            return
        await notify({"jsonrpc": "2.0", "method": m.LOGGING_MESSAGE,
                      "params": {"level": level, "logger": logger_name, "data": data}})

    return log
