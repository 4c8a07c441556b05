"""One dispatcher for every transport: JSON-RPC frame in, responses and notifications out.

It knows nothing about HTTP or sockets. A transport hands it the bytes of one frame and a
:class:`ServerSession`; the dispatcher answers through two entry points:

- :meth:`Dispatcher.handle` awaits one message and returns its response dict (or ``None`` for
  notifications and responses). Request-scoped notifications (progress, log messages) go to the
  ``notify`` callable, which defaults to the session's stream.
- :meth:`Dispatcher.receive` is for stream transports (WebSocket, legacy SSE, stdio): requests
  run as tasks so a long ``tools/call`` never blocks ``ping`` or ``notifications/cancelled``, and
  each response is written with ``session.send``. A request whose route answers at once
  (:meth:`Dispatcher.serve` ``at_once``) could block nothing, and is served without a task when no
  earlier request of its session is still running (so that order is kept).

The dispatcher routes; it serves no method itself. Handlers live in
:mod:`mcp_multi.server.handlers`, registered by method and era. Before a handler runs, the
request is an event for the session's lifecycle (:mod:`mcp_multi.protocol.server_state`),
which refuses what the session may not do now: the lifecycle, not the dispatcher, knows
that only ``initialize`` and ``ping`` come before the handshake, and which era a session
serves. A session's era is set by its transport (Streamable HTTP knows it from the request's
headers) or by its first request (stream transports). Modern requests are also checked
against their own ``_meta`` envelope, and their results are stamped with ``resultType``,
``serverInfo`` and the route's cache hint. Handlers see one :class:`Call` and do not care
which era they serve, except where the revisions differ (resource-not-found codes).

Responses the client sends are answers to what the server asked it (sampling, elicitation,
roots): the dispatcher hands them to the session's waiting asks, and drops one nobody waits
for. A modern handler that needs input it was not given raises
:class:`~mcp_multi.server.asking.InputNeeded`, which becomes the request's ``input_required``
result (see :mod:`mcp_multi.server.asking`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from ..protocol import methods as m
from ..protocol.envelope import Envelope, complete_result, read_envelope
from ..protocol.errors import InternalError, InvalidRequest, JSONRPCError, MethodNotFound
from ..protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    Response,
    decode,
    decode_one,
    error_response,
    is_request_id,
    response,
)
from ..protocol.server_state import STEADY_HANDSHAKE, STEADY_MODERN, SessionEvent
from ..protocol.text import for_display
from ..protocol.versions import HANDSHAKE, MODERN, MODERN_VERSIONS, Era, opening_era, supports
from .asking import InputNeeded, RoundAsking
from .auth.admin import Permissions, admin_tool
from .auth.policy import Policy
from .handlers import ROUTER, Call, Route, Router, ServerContext
from .notifier import Notifier
from .profiles import load_profile
from .prompts import PromptRegistry, demo_prompts
from .resources import Resources, ServerStats
from .session import SendFn, ServerSession
from .settings import ServerSettings
from .tools import ToolRegistry

__all__ = ["Call", "Dispatcher", "Frame", "build_dispatcher"]

logger = logging.getLogger(__name__)

Params = dict[str, Any]


@dataclass(slots=True)
class Frame:
    """One decoded frame: its messages, error responses for what could not be read, and
    whether it was a batch the session accepts (answered by one array)."""

    messages: list[Message]
    errors: list[dict[str, Any]]
    batch: bool = False


# Requests one stream session may have running at once.
MAX_INFLIGHT = 128

# The lifecycle event of a handshake-era request (initialize's handler applies its own, once
# it has read the version asked for).
_EVENTS: dict[str, SessionEvent] = {m.PING: SessionEvent.PING}


class Dispatcher:
    """Routes MCP messages to handlers; one instance per server, shared by all sessions."""

    def __init__(self, settings: ServerSettings, registry: ToolRegistry, resources: Resources,
                 stats: ServerStats, router: Router = ROUTER, *,
                 prompts: PromptRegistry | None = None, notifier: Notifier | None = None,
                 permissions: Permissions | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.resources = resources
        self.stats = stats
        self.router = router
        self.server_info = {"name": settings.name, "version": _version()}
        notifier = notifier or Notifier()
        self.context = ServerContext(settings, registry, resources, stats, self.server_info,
                                     prompts or PromptRegistry(notifier=notifier), notifier,
                                     permissions=permissions or Permissions())
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
            return await self.serve(session, message, notify or session.send)
        if isinstance(message, Notification):
            self._notification(session, message)
        else:
            self._answer(session, message)
        return None

    async def receive(self, session: ServerSession, data: bytes | str) -> None:
        """Stream transports: process a frame, replying through ``session.send``.

        A batch (2025-03-26) is answered as JSON-RPC wants it: one array holding the
        responses of all its requests, sent when the last of them is done.
        """
        if len(data) <= self.settings.max_message_size:
            # The common frame, one message that decodes: served without building a Frame.
            try:
                decoded = decode_one(data)
            except JSONRPCError:
                decoded = None  # parse() below answers it (a batch, bad JSON, no message)
            if isinstance(decoded, Request):
                await self._spawn(session, decoded)
                return
            if isinstance(decoded, Notification):
                self._notification(session, decoded)
                return
            if isinstance(decoded, (Response, ErrorResponse)):
                self._answer(session, decoded)
                return
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
            else:
                self._answer(session, msg)

    async def _receive_batch(self, session: ServerSession, frame: Frame) -> None:
        requests = []
        for msg in frame.messages:
            if isinstance(msg, Request):
                requests.append(msg)
            elif isinstance(msg, Notification):
                self._notification(session, msg)
            else:
                self._answer(session, msg)

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
        if session.inflight:
            err = self.refusal(session, req)
            if err is not None:
                await session.send(error_response(req.id, err))
                return
        else:
            # Nothing runs (so its id is free), and a request that answers at once could
            # hold nothing up: it is served here, no task. Only when no earlier request is
            # running, whose task must have its turn first. (Not through _run: a cancel that
            # reaches us here is the reader's own, and must end it.)
            reply = await self.serve(session, req, session.send, at_once=True)
            if reply is not None:
                if not session.closed:
                    try:
                        await session.send(reply)
                    except Exception as exc:
                        _unsent(session, req, exc)
                return
        session.track(req.id, asyncio.create_task(self._run(session, req)))

    async def _run(self, session: ServerSession, req: Request) -> None:
        try:
            reply = await self.serve(session, req, session.send)
        except asyncio.CancelledError:
            # Cancelled by notifications/cancelled or a closed session: no response is sent.
            return
        if reply is not None and not session.closed:  # (None only from an at_once serve)
            try:
                await session.send(reply)
            except Exception as exc:
                _unsent(session, req, exc)

    def _error(self, exc: JSONRPCError) -> dict[str, Any]:
        self.stats.errors += 1
        return error_response(exc.request_id, exc)

    async def serve(self, session: ServerSession, req: Request, notify: SendFn, *,
                    at_once: bool = False, envelope: Envelope | None = None
                    ) -> dict[str, Any] | None:
        """``req``'s response, request-scoped notifications going to ``notify``.

        ``at_once``: serve it only if serving it never waits on anything (its route says so,
        or it has none and its error is immediate), in the caller's own task with no stream
        or task to carry it; None, having done nothing, when it may wait (the caller then
        runs it as a task). What the handler notifies (progress, log) comes before its
        response all the same. ``envelope``: a modern request's ``_meta`` envelope when the
        transport has read it already (Streamable HTTP, to check the headers against it).

        One coroutine from the transport to the handler: the hot path of every call.
        """
        params = req.params or {}
        method = req.method
        era = session.lifecycle.era  # (session.era, one call less)
        # A stateless HTTP request or a modern stream needs no look at the envelope, nor
        # does a request without _meta (which only the envelope makes modern).
        opened = (MODERN if era == MODERN else HANDSHAKE if "_meta" not in params
                  else opening_era(method, params))
        modern = (era or opened) == MODERN
        found = self.router.find(MODERN if modern else HANDSHAKE, method)
        if at_once and found is not None and not found.at_once(self.context, params):
            return None
        self.stats.requests += 1
        try:
            if modern:
                found, call = self._modern_call(session, req, params, notify, found, envelope)
                try:
                    result = complete_result(await found.handler(call), self.server_info,
                                             found.cache)
                except InputNeeded:
                    assert isinstance(call.asking, RoundAsking)
                    result = call.asking.result()
            else:
                found, call = self._handshake_call(session, req, params, notify, opened, found)
                result = await found.handler(call)
        except JSONRPCError as exc:
            self.stats.errors += 1
            return error_response(req.id, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("internal error handling %s", method)
            self.stats.errors += 1
            return error_response(req.id, InternalError(f"Internal error: {exc}"))
        return response(req.id, result)

    # The two eras' lifecycle checks before the handler runs, and the Call it is given with
    # its route (found by serve; None raises here, once the lifecycle has had its say).

    def _handshake_call(self, session: ServerSession, req: Request, params: Params,
                        notify: SendFn, opened: Era, route: Route | None
                        ) -> tuple[Route, Call]:
        lifecycle = session.lifecycle
        # In a steady state (the handshake answered: see STEADY_HANDSHAKE) a request without
        # an envelope changes nothing, so its events are not applied; in any other state, or
        # with an envelope, they go through the lifecycle, which may refuse.
        settled = lifecycle.state in STEADY_HANDSHAKE and opened == HANDSHAKE
        if not settled:
            lifecycle.process(SessionEvent.HANDSHAKE_REQUEST, req.method)  # the first decides
            if opened == MODERN:  # an envelope on a handshake session
                lifecycle.process(SessionEvent.MODERN_REQUEST, req.method)
        if route is None:
            raise MethodNotFound(f"Method not found: {req.method}")
        if not settled and req.method != m.INITIALIZE:
            lifecycle.process(_EVENTS.get(req.method, SessionEvent.REQUEST), req.method)
        return route, Call(self.context, session, params, notify, req.id, None, req.method)

    def _modern_call(self, session: ServerSession, req: Request, params: Params,
                     notify: SendFn, route: Route | None, envelope: Envelope | None
                     ) -> tuple[Route, Call]:
        if req.method == m.INITIALIZE and not session.stateless:
            # The lifecycle refuses it on a stream connection serving 2026-07-28, naming the
            # versions served (a stateless HTTP request just finds no such method).
            asked = params.get("protocolVersion")
            session.lifecycle.process(SessionEvent.INITIALIZE, req.method,
                                      protocol_version=asked if isinstance(asked, str) else None)
        if envelope is None:
            envelope = read_envelope(params)
        lifecycle = session.lifecycle
        if lifecycle.state not in STEADY_MODERN:
            lifecycle.process(SessionEvent.MODERN_REQUEST, req.method)
        if route is None:
            raise MethodNotFound(f"Method not found: {req.method}")
        return route, Call(self.context, session, params, notify, req.id, envelope, req.method)

    @staticmethod
    def _answer(session: ServerSession, reply: Response | ErrorResponse) -> None:
        """Hand the client's answer to the ask awaiting it; drop one nobody awaits."""
        asks = session.asks
        if asks is None or not asks.resolve(reply):
            logger.debug("session %s: response %s ignored: it answers nothing asked",
                         session.id, _shown(reply.id))

    def _notification(self, session: ServerSession, note: Notification) -> None:
        params = note.params or {}
        if note.method == m.INITIALIZED:
            try:
                session.lifecycle.process(SessionEvent.INITIALIZED, note.method)
            except JSONRPCError as exc:  # a notification has no answer: drop it
                logger.debug("session %s: %s", session.id, exc.message)
        elif note.method == m.CANCELLED:
            request_id = params.get("requestId")
            if is_request_id(request_id) and session.cancel(request_id):
                logger.debug("session %s: request %s cancelled", session.id, _shown(request_id))
        else:
            logger.debug("session %s: notification %s ignored", session.id, _shown(note.method))


def build_dispatcher(settings: ServerSettings, transports: tuple[str, ...],
                     endpoints: dict[str, str], router: Router = ROUTER) -> Dispatcher:
    """The dispatcher of one server: its tools, counters, resources and prompts (ours, and
    those of its profile).

    ``transports`` and ``endpoints`` are what ``server://info`` reports; ``router`` holds the
    handlers (every method of :mod:`mcp_multi.server.handlers` by default). With a policy
    file (``settings.policy``) the server also has the admin tool. Raises ``ValueError`` for
    an unknown tool name, :class:`~mcp_multi.server.auth.policy.PolicyError` (a
    ``ValueError``) for a policy file that does not load.
    """
    profile = load_profile(settings.profile)
    policy = None if settings.policy is None else Policy.load(settings.policy)
    permissions = Permissions(policy, settings.policy)
    admin = (admin_tool(permissions),) if policy is not None else ()
    registry = ToolRegistry(settings.tools, profile.tools + admin)
    stats = ServerStats()
    resources = Resources(settings, registry, stats, transports, endpoints, profile.resources,
                          profile.templates)
    notifier = Notifier()
    prompts = PromptRegistry(demo_prompts(registry, resources) + profile.prompts, notifier)
    permissions.attach(registry, resources, prompts, notifier)
    dispatcher = Dispatcher(settings, registry, resources, stats, router, prompts=prompts,
                            notifier=notifier, permissions=permissions)
    for start in profile.on_start:
        start(dispatcher.context)
    return dispatcher


def _version() -> str:
    from .. import __version__

    return __version__


def _unsent(session: ServerSession, req: Request, exc: Exception) -> None:
    """The stream went away while ``req`` was being served: its response is dropped."""
    logger.debug("session %s: could not send the response to %s: %s", session.id,
                 _shown(req.id), exc)


def _shown(value: object) -> str:
    """A peer's id or method name as a log line may quote it: escaped, at most 200 chars."""
    return for_display(value if isinstance(value, str) else repr(value), 200)
