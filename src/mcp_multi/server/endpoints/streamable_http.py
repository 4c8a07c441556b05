"""Streamable HTTP at ``/mcp``: both protocol eras on one endpoint.

Each request's ``MCP-Protocol-Version`` header picks its era (see
:func:`~mcp_multi.protocol.versions.http_era`): none or a handshake version is the handshake
era, ``2026-07-28`` the modern one, anything else is refused (400, -32022 listing ours).

Handshake era (2025-03-26 … 2025-11-25):

- ``POST`` carries one message (a batch too, at 2025-03-26). ``initialize`` without a session
  opens one and its response carries ``Mcp-Session-Id``; every later request must name it
  (400 without, 404 for an unknown or ended one). The sessions sit in a bounded table: when it
  is full the least recently used idle session gives way to a newcomer (its owner gets 404
  and initializes again), and one client address holds only its share of it (503 past it;
  see :mod:`~mcp_multi.server.session_table`). Notifications and responses get ``202``.
  A request is answered ``application/json`` unless it sends a notification (progress, log)
  before its response, or stays silent for ``KEEPALIVE_SECONDS``: then the answer is a
  ``text/event-stream`` whose events carry ids, opened by a priming event with ``retry``.
- ``GET`` opens the session's stream of server-initiated messages (one at a time, 409 for a
  second); with ``Last-Event-ID`` it resumes the stream that id belongs to, replaying what the
  client missed. A client that drops a POST's stream does not cancel its request.
- ``DELETE`` ends the session.

Modern era (2026-07-28): every POST stands alone — no session, no GET or DELETE (405). The
body must carry the ``_meta`` envelope and agree with the ``Mcp-Method``/``Mcp-Name`` headers,
and a ``tools/call`` with the ``Mcp-Param-*`` headers its tool's ``x-mcp-header`` annotations
ask for (-32020); errors map to HTTP statuses (404 for an unknown method, 400 for the rest). A
request's SSE stream has no ids, and closing it cancels the request.

With a shared session store (``--session-store``) a handshake-era session lives in the store,
not in one process: any instance serves its next request. The instance finds the session's
record (refreshing its time to live), serves the request from a local copy of the session
restored from it, and writes back what the request changed (the handshake's end, the log
level, subscriptions) before answering, telling the other instances to read it again. A copy
read less than a second ago serves without asking the store again. Answers the client sends
to what the server asked it go to the instance that asked, ``notifications/cancelled`` to
every instance, ``DELETE`` ends the session everywhere. A request's stream, once answered as
``text/event-stream``, is mirrored into the store and the standalone stream lives only there,
so ``Last-Event-ID`` resumes on any instance (one delivering instance at a time: 409 for a
second, wherever it is). When the store cannot be reached, what needs it gets 503 with a
JSON-RPC error; 2026-07-28 requests, which have no session, never need it.

Everywhere: 406 without the right ``Accept``, 415 for a body that is not JSON, 413 for an
oversized one; ``Origin``, ``Host`` and the bearer token are checked by the app's guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from aiohttp import hdrs, web

from ...protocol import methods as m
from ...protocol.envelope import (
    Envelope,
    agreeing_envelope,
    check_headers,
    has_envelope,
    read_envelope,
)
from ...protocol.errors import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    InternalError,
    InvalidRequest,
    JSONRPCError,
    RequestCancelled,
)
from ...protocol.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    Response,
    dumps,
    error_response,
    is_request_id,
    loads,
    parse_message,
)
from ...protocol.params_headers import check_param_headers
from ...protocol.sse import KEEPALIVE_SECONDS
from ...protocol.versions import (
    HANDSHAKE,
    MODERN,
    SUPPORTED_VERSIONS,
    Era,
    http_era,
    is_supported,
    supports,
    unsupported_version,
)
from ...protocol.wire import (
    JSON_TYPE,
    LAST_EVENT_ID_HEADER,
    SESSION_HEADER,
    SSE_TYPE,
    VERSION_HEADER,
)
from ..asking import asker_of
from ..auth.authenticator import caller_of, continues
from ..notifier import MAX_SUBSCRIPTIONS, SubscriptionLimit
from ..session import Outgoing, ServerSession
from ..state import STATE, ServerState
from ..store import Delivery, Journal, SessionRecord, StoreUnavailable
from ..streams import GET_STREAM, EventStream, HTTPSession, JournalStream, parse_event_id
from .http import (
    TimedWriter,
    accepts,
    body_at_hand,
    error_reply,
    goes_out_at_once,
    json_reply,
    open_event_stream,
    read_body,
    send_within,
    store_unavailable,
)

__all__ = ["close_http_sessions", "end_shared_session", "handle_mcp_delete", "handle_mcp_get",
           "handle_mcp_post", "receive_answer", "recheck_shared_session"]

logger = logging.getLogger(__name__)

# Modern era: the HTTP status of a JSON-RPC error; anything else is 200.
_MODERN_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_REQUIRED_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}
# A stateless request's answer has no headers of its own (never changed).
_NO_HEADERS: dict[str, str] = {}
# Parses batch frames before a session exists; it never serves a request.
_NO_SESSION = ServerSession("http")
# Seconds between renewals of an instance's claim to deliver a shared stream, and how long
# the claim lasts unless renewed: a claim whose instance died lapses this soon.
_CLAIM_BEAT = 2.0
_CLAIM_SECONDS = 3 * _CLAIM_BEAT
# Seconds an instance serves a shared session from its copy without reading the record again
# (a change made elsewhere is announced at once; this bounds what an announcement lost to an
# outage, or a record that expired or was lost with a restarted store, can go unnoticed).
_RECHECK_SECONDS = 1.0
# The key of a request stream a shared session's instance wrote: its id, a dot, a number.
_FOREIGN_STREAM = re.compile(r"[0-9a-f]{12}\.[0-9]{1,18}")


# ------------------------------------------------------------------ shared helpers

async def _run(state: ServerState, session: ServerSession, req: Request,
               stream: EventStream) -> None:
    """Serve one request, its notifications and its response going to ``stream``; what it
    changed in a shared session is stored before the response goes out."""
    before = _shared_state(state, session) if isinstance(session, HTTPSession) else None
    try:
        response = await state.dispatcher.handle(session, req, stream.send)
        if before is not None and isinstance(session, HTTPSession):
            await _save(state, session, before)
    except asyncio.CancelledError:
        if session.stateless and not state.shutting_down:
            stream.finish()  # the client closed the stream: nobody is listening
        else:
            stream.finish(_cancelled(state, req))
        return
    except StoreUnavailable as exc:
        response = error_response(req.id, InternalError(f"Internal error: {exc}"))
    stream.finish(response)


def _cancelled(state: ServerState, req: Request) -> dict[str, Any]:
    """The answer of a request that was cancelled: whoever waits for it is told why (the
    handshake era's stream must still end with a response; the official SDK does the same)."""
    why = ": the server is shutting down" if state.shutting_down else ""
    return error_response(req.id, RequestCancelled(f"Request cancelled{why}"))


async def _respond(request: web.Request, stream: EventStream, *, priming: bool,
                   status_of: Callable[[dict[str, Any] | None], int],
                   headers: dict[str, str],
                   journal: Callable[[], Journal] | None = None) -> web.StreamResponse:
    """Answer with the request's response as JSON, or as an SSE stream when it speaks first.

    Waits for the first event, the end, or ``KEEPALIVE_SECONDS`` of silence. A stream that
    ended with nothing before its response is answered ``application/json``; anything else
    commits to ``text/event-stream`` and delivers the stream until it finishes.
    """
    # Until its answer is read, the stream belongs to this POST: a session retiring its old
    # finished streams (or shedding unread events) must not empty it under us.
    stream.attached = True
    try:
        if not stream.finished and not stream.last:
            await stream.wait(KEEPALIVE_SECONDS)
        only = stream.only_message()
    finally:
        stream.attached = False
    if only is not None:
        return json_reply(status_of(stream.final), only, headers)
    if journal is not None:  # a shared session's stream: any instance may be asked to resume it
        stream.mirror(journal())
    return await _deliver(request, stream, 0, priming=priming, headers=headers)


async def _deliver(request: web.Request, stream: EventStream, cursor: int, *, priming: bool,
                   headers: dict[str, str]) -> web.StreamResponse:
    """Answer with ``text/event-stream`` and write ``stream`` after ``cursor`` until it ends."""
    response = await open_event_stream(request, headers)
    writer = TimedWriter(request, response)
    stream.attached = True
    try:
        if priming:
            await writer.write(stream.priming(cursor))
        await stream.pump(writer, cursor, KEEPALIVE_SECONDS)
        await writer.write_eof()
    except ConnectionResetError:
        logger.debug("stream %s: client went away", stream.key or "(stateless)")
    finally:
        stream.attached = False
    return response


async def _at_once(request: web.Request, state: ServerState, session: ServerSession,
                   req: Request, priming: bool,
                   status_of: Callable[[dict[str, Any] | None], int], headers: dict[str, str],
                   stream: Callable[[], EventStream] | None = None,
                   envelope: Envelope | None = None) -> web.StreamResponse | None:
    """Serve ``req`` in this task if the dispatcher answers it at once (see
    :meth:`~mcp_multi.server.dispatcher.Dispatcher.serve`); None, having done nothing,
    when it may wait (the caller then runs it as a task).

    Its answer is what :func:`_respond` would have made of the same events: JSON when the
    response came alone; when the handler notified first (progress, a log message), the
    notifications and the response go into a ``stream`` made now (a stateless request's
    when None), answered as ``text/event-stream``, exactly as they would have stood in it
    before anyone read it.
    """
    notes: list[Outgoing] = []

    async def collect(message: Outgoing) -> None:
        notes.append(message)

    reply = await state.dispatcher.serve(session, req, collect, at_once=True, envelope=envelope)
    if reply is None:
        return None
    if not notes:
        return json_reply(status_of(reply), reply, headers)
    events = stream() if stream is not None else _stateless_stream(state)
    for note in notes:
        await events.send(note)
    events.finish(reply)
    return await _respond(request, events, priming=priming, status_of=status_of,
                          headers=headers)


@functools.lru_cache(maxsize=256)
def _both_accepted(accept: str | None) -> bool:
    """Whether an ``Accept`` header admits JSON and SSE, as every POST must (one look in a
    cache keyed by the header alone, for the two of :func:`accepts`)."""
    return accepts(accept, SSE_TYPE) and accepts(accept, JSON_TYPE)


def _sse_refusal(request: web.Request, *, json_too: bool) -> web.Response | None:
    """406 when ``Accept`` lacks SSE (and JSON, for POST); 415 for a POST body not JSON."""
    accept = request.headers.get(hdrs.ACCEPT)
    if not (_both_accepted(accept) if json_too else accepts(accept, SSE_TYPE)):
        wanted = f"{JSON_TYPE} and {SSE_TYPE}" if json_too else SSE_TYPE
        return error_reply(406, InvalidRequest(f"Not Acceptable: Accept must list {wanted}"))
    # The exact header a client nearly always sends needs no parsing of its parameters.
    if json_too and request.headers.get(hdrs.CONTENT_TYPE) != JSON_TYPE \
            and request.content_type != JSON_TYPE:
        return error_reply(415, InvalidRequest(
            f"Unsupported Media Type: Content-Type must be {JSON_TYPE}"))
    return None


# ------------------------------------------------------------------ POST

async def handle_mcp_post(request: web.Request) -> web.StreamResponse:
    response = await _post(request)
    if goes_out_at_once(request, response):
        return response
    return await send_within(request, response)


async def _post(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    refusal = _sse_refusal(request, json_too=True)
    if refusal is not None:
        return refusal
    limit = state.settings.max_message_size
    body = body_at_hand(request, limit)
    if body is None:
        body = await read_body(request, limit)
    # Asked of the bytes, not of web.Response: aiohttp's responses are mappings, and an
    # isinstance check against an ABC runs Python code (it showed in every request's profile).
    if not isinstance(body, bytes):
        return body
    header = request.headers.get(VERSION_HEADER)
    era = http_era(header)
    if era == HANDSHAKE:
        return await _handshake_post(request, state, body)
    return await _modern_post(request, state, body, header, era)


async def _modern_post(request: web.Request, state: ServerState, body: bytes,
                       header: str | None, era: Era | None) -> web.StreamResponse:
    try:
        obj = loads(body)
    except JSONRPCError as exc:
        return error_reply(400, exc)
    if not isinstance(obj, dict) or "method" not in obj:
        return error_reply(400, InvalidRequest(
            "Invalid Request: the body must be one JSON-RPC request or notification"))
    try:
        msg = parse_message(obj)
    except InvalidRequest as exc:
        return error_reply(400, exc, exc.request_id)
    if isinstance(msg, Notification):
        # No client notification means anything here (closing a stream is how a modern
        # client cancels), so it is accepted and dropped.
        if header is None or not is_supported(header):
            return error_reply(400, unsupported_version(header))
        return web.Response(status=202)
    assert isinstance(msg, Request)
    params = msg.params or {}
    try:
        envelope = agreeing_envelope(request.headers, msg.method, params)
        if envelope is None:  # something is off: the checks one by one say what
            envelope = _checked_envelope(state, request, msg, header, era)
        else:
            _check_param_headers(state, request, msg.method, params)
    except JSONRPCError as exc:
        state.stats.errors += 1
        return error_reply(_MODERN_STATUS.get(exc.code, 400), exc, msg.id)
    if state.shutting_down:
        return error_reply(503, InvalidRequest("Server shutting down"), msg.id)
    limit = state.settings.max_stateless_requests
    if len(state.stateless_tasks) >= limit:
        return error_reply(503, InvalidRequest(
            f"Server busy: {limit} stateless requests are running; retry later"), msg.id)
    session = ServerSession.stateless_one(request.remote or "", caller_of(request))
    response = await _at_once(request, state, session, msg, False, _modern_status, _NO_HEADERS,
                              None, envelope)
    if response is not None:
        return response
    stream = _stateless_stream(state)
    task = asyncio.create_task(_run(state, session, msg, stream))
    state.stateless_tasks.add(task)
    task.add_done_callback(state.stateless_tasks.discard)
    try:
        return await _respond(request, stream, priming=False, headers=_NO_HEADERS,
                              status_of=_modern_status)
    finally:
        # A closed response stream is the modern era's cancellation.
        if not task.done():
            task.cancel()


def _stateless_stream(state: ServerState) -> EventStream:
    """A stateless request's one response stream (not resumable)."""
    return EventStream("", resumable=False, limit=state.settings.session_queue_size)


def _checked_envelope(state: ServerState, request: web.Request, msg: Request,
                     header: str | None, era: Era | None) -> Envelope:
    """A modern POST's envelope, its mirrored headers checked against it one check at a
    time, in the official SDK's order (envelope present, headers agree, version served):
    the first fault raises. The path of a request :func:`agreeing_envelope` declined."""
    params = msg.params or {}
    if has_envelope(params):
        check_headers(request.headers, msg.method, params)
        _check_param_headers(state, request, msg.method, params)
    elif era != MODERN:
        raise unsupported_version(header)
    return read_envelope(params)


def _check_param_headers(state: ServerState, request: web.Request, method: str,
                         params: dict[str, Any]) -> None:
    """The ``Mcp-Param-*`` headers of a ``tools/call`` against its arguments, for a tool
    that mirrors any (see :mod:`~mcp_multi.protocol.params_headers`); an unknown tool has
    none, and the call itself says it is unknown. Nothing to check for any other method,
    or on a server none of whose tools mirrors an argument."""
    if method != m.TOOLS_CALL or not state.dispatcher.registry.mirrors_params:
        return
    name = params.get("name")
    mirrored = state.dispatcher.registry.header_params(name) if isinstance(name, str) else ()
    if mirrored:
        check_param_headers(request.headers.items(), mirrored, params.get("arguments"))


def _modern_status(final: dict[str, Any] | None) -> int:
    if final is not None and "result" in final:
        return 200
    error = final.get("error") if final else None
    code = error.get("code") if isinstance(error, dict) else None
    return _MODERN_STATUS.get(code, 200) if isinstance(code, int) else 200


async def _handshake_post(request: web.Request, state: ServerState,
                          body: bytes) -> web.StreamResponse:
    dispatcher = state.dispatcher
    session: HTTPSession | None = None
    if SESSION_HEADER in request.headers:
        found = await _find_session(request, state)
        if not isinstance(found, HTTPSession):
            return found
        session = found
    frame = dispatcher.parse(session or _NO_SESSION, body)
    messages, errors = frame.messages, frame.errors
    if not messages:
        return json_reply(400, errors if frame.batch else errors[0])
    if session is None:
        first = messages[0]
        if frame.batch or not isinstance(first, Request) or first.method != m.INITIALIZE:
            return error_reply(400, InvalidRequest(
                f"Bad Request: missing {SESSION_HEADER} header; initialize first"))
        return await _open_session(request, state, first)
    requests: list[Request] = []
    before = _shared_state(state, session)
    try:
        for msg in messages:
            if isinstance(msg, Request):
                requests.append(msg)
            elif before is None or not await _elsewhere(state, session, msg):
                await dispatcher.handle(session, msg)
        if before is not None:
            await _save(state, session, before)
    except StoreUnavailable:
        return store_unavailable()
    headers = {SESSION_HEADER: session.id}
    if not requests:
        return json_reply(400, errors, headers) if errors else web.Response(status=202,
                                                                        headers=headers)
    if frame.batch:
        replies = [reply if reply is not None else _cancelled(state, req)
                   for req, reply in await dispatcher.run_batch(session, requests)]
        if before is not None:
            try:
                await _save(state, session, before)
            except StoreUnavailable:
                return store_unavailable()
        return json_reply(200, [*errors, *replies], headers)
    return await _exchange(request, state, session, requests[0], headers)


def _always_ok(_final: dict[str, Any] | None) -> int:
    """A handshake-era POST's status: 200, whatever its final message."""
    return 200


# ``supports(version, "sse_priming")`` worked out once per version we speak (asked every POST).
_PRIMING_VERSIONS = frozenset(v for v in SUPPORTED_VERSIONS if supports(v, "sse_priming"))


async def _exchange(request: web.Request, state: ServerState, session: HTTPSession,
                    req: Request, headers: dict[str, str]) -> web.StreamResponse:
    refusal = state.dispatcher.refusal(session, req)
    if refusal is not None:
        return json_reply(200, error_response(req.id, refusal), headers)
    priming = session.protocol_version in _PRIMING_VERSIONS
    if not state.store.shared:
        response = await _at_once(request, state, session, req, priming, _always_ok, headers,
                                  session.new_stream)
        if response is not None:
            return response  # served in this task: _find_session's touch just now holds
    stream = session.new_stream()
    session.track(req.id, asyncio.create_task(_run(state, session, req, stream)))
    journal = None
    if state.store.shared:
        def journal() -> Journal:
            return _journal(state, session.id, stream.key)
    response = await _respond(request, stream, priming=priming,
                              status_of=_always_ok, headers=headers, journal=journal)
    if isinstance(response, web.Response):
        session.forget(stream)
    state.http_sessions.touch(session.id)
    return response


async def _open_session(request: web.Request, state: ServerState,
                        req: Request) -> web.Response:
    table = state.http_sessions
    address = request.remote or ""
    refused = table.admit(address)
    if refused is not None:
        return error_reply(503, InvalidRequest(refused))
    session = _new_session(state)
    session.principal = caller_of(request)
    session.peer = address
    reply = await state.dispatcher.handle(session, req)
    if reply is None or "error" in reply:
        return json_reply(200, reply)
    if table.admit(address) is not None:  # others took the seats while we initialized
        return error_reply(503, InvalidRequest(f"Too many {table.kind} sessions"))
    if state.store.shared:
        try:
            await state.store.put(SessionRecord(session.id, "http", state.store.instance,
                                                _shared_state(state, session) or {}),
                                  state.store_ttl)
        except StoreUnavailable:
            session.close()
            return store_unavailable(req.id)
    _seat(state, session, address)
    state.stats.opened("http")
    logger.info("http session %s opened (protocol %s) from %s", session.id,
                session.protocol_version, address)
    return json_reply(200, reply, {SESSION_HEADER: session.id})


# ------------------------------------------------------------------ GET and DELETE

async def _find_session(request: web.Request,
                        state: ServerState) -> HTTPSession | web.Response:
    session_id = request.headers.get(SESSION_HEADER)
    if not session_id:
        return error_reply(400, InvalidRequest(f"Bad Request: missing {SESSION_HEADER} header"))
    session = state.http_sessions.get(session_id)
    if state.store.shared:
        try:
            shared = await _shared_session(request, state, session_id, session)
        except StoreUnavailable:
            return store_unavailable()
        if isinstance(shared, web.Response):
            return shared
        session = shared
    if session is None or not continues(session, request):
        return _not_found(session_id)
    state.http_sessions.touch(session.id)
    return session


def _not_found(session_id: str) -> web.Response:
    return error_reply(404, InvalidRequest(f"Not Found: unknown or ended session {session_id}"))


# ------------------------------------------------------------------ sessions shared through a store

def _new_session(state: ServerState, session_id: str | None = None) -> HTTPSession:
    """A session of this endpoint (a new one, or this instance's copy of a shared one)."""
    session = HTTPSession(limit=state.settings.session_queue_size,
                          max_bytes=state.settings.session_bytes, budget=state.http_buffer,
                          session_id=session_id)
    store = state.store
    if store.shared:
        # Whatever instance later receives the client's answers or a resume finds, in the
        # ids, the instance that asked or wrote; what no request sent goes to the store.
        session.ask_prefix = store.instance
        session.stream_prefix = f"{store.instance}."
        session.send = JournalStream(GET_STREAM, _journal(state, session.id, GET_STREAM)).send
    return session


def _seat(state: ServerState, session: HTTPSession, address: str) -> None:
    """Seat ``session`` in this instance's table (admitted already)."""
    state.http_sessions.add(session, address, busy=lambda: session.busy,
                            evict=lambda why: _close_session(state, session, why))


def _journal(state: ServerState, session_id: str, key: str) -> Journal:
    settings = state.settings
    return state.store.journal(session_id, key, limit=settings.session_queue_size,
                               ttl=state.store_ttl)


async def _shared_session(request: web.Request, state: ServerState, session_id: str,
                          session: HTTPSession | None) -> HTTPSession | web.Response | None:
    """This instance's copy of the shared session ``session_id``, brought up to date with its
    record (made from the record when there is none); None when the store has no such
    session (ended elsewhere, expired, never was), whose copy here then ends too."""
    if session is not None and time.monotonic() - session.checked < _RECHECK_SECONDS:
        return session
    record = await state.store.get(session_id, state.store_ttl)
    if record is None or record.kind != "http":
        if session is not None:
            _end_session(state, session, "ended elsewhere or expired")
        return None
    if session is not None:
        if not session.restore(record.state) or not _resubscribe(state, session, record.state):
            return None
        session.checked = time.monotonic()
        return session
    address = request.remote or ""
    refused = state.http_sessions.admit(address)
    if refused is not None:
        return error_reply(503, InvalidRequest(refused))
    session = _new_session(state, session_id)
    if not session.restore(record.state) or not _resubscribe(state, session, record.state):
        logger.warning("http session %s: its shared record cannot be read; refused",
                       session_id)
        session.close()
        return None
    state.dispatcher.context.notifier.join(session)
    session.checked = time.monotonic()
    _seat(state, session, address)
    state.stats.opened("http")
    return session


def _resubscribe(state: ServerState, session: HTTPSession, record: dict[str, Any]) -> bool:
    """Make this instance's copy of a session watch what its record says it watches, and take
    its standalone stream's cursor; False for a record that does not say it in our words."""
    uris, cursor = record.get("subscriptions", []), record.get("delivered", 0)
    if (not isinstance(uris, list) or len(uris) > MAX_SUBSCRIPTIONS
            or not all(isinstance(uri, str) for uri in uris)
            or not isinstance(cursor, int) or cursor < 0):
        return False
    notifier = state.dispatcher.context.notifier
    for uri in notifier.subscriptions(session).difference(uris):
        notifier.unsubscribe(session, uri)
    try:
        for uri in uris:
            notifier.subscribe(session, uri)
    except SubscriptionLimit:
        return False
    session.get_stream.delivered = cursor
    return True


def _shared_state(state: ServerState, session: HTTPSession) -> dict[str, Any] | None:
    """What a shared session's record holds; None when sessions are not shared."""
    if not state.store.shared:
        return None
    shared = session.snapshot()
    shared["subscriptions"] = sorted(state.dispatcher.context.notifier.subscriptions(session))
    shared["delivered"] = session.get_stream.delivered
    return shared


async def _save(state: ServerState, session: HTTPSession, before: dict[str, Any]) -> None:
    """Store what changed in a shared session since ``before`` (nothing when nothing did)."""
    after = _shared_state(state, session)
    if after is not None and after != before and not session.closed:
        await state.store.put(SessionRecord(session.id, "http", state.store.instance, after),
                              state.store_ttl)
        await state.store.broadcast(Delivery(session.id, "changed", b""))


async def _elsewhere(state: ServerState, session: HTTPSession, msg: Message) -> bool:
    """Send a shared session's answer or cancellation to the instance it concerns when that
    is not this one; True when it went there (or nowhere: its instance is gone)."""
    store = state.store
    if isinstance(msg, Response | ErrorResponse):
        asker = asker_of(msg.id)
        if asker is None or asker == store.instance:
            return False
        if not await store.send_to(asker, Delivery(session.id, "message", dumps(msg.to_dict()))):
            logger.debug("http session %s: the instance that asked is gone", session.id)
        return True
    if msg.method == m.CANCELLED:
        request_id = (msg.params or {}).get("requestId")
        if is_request_id(request_id) and request_id not in session.inflight:
            await store.broadcast(Delivery(session.id, "message", dumps(msg.to_dict())))
            return True
    return False


async def receive_answer(state: ServerState, session_id: str, body: bytes) -> None:
    """Hand this instance's copy of a shared session what another instance received for it:
    an answer to a request this instance sent, or a cancellation. Requests are never
    forwarded (any instance serves those itself), so any found here are dropped."""
    session = state.http_sessions.get(session_id)
    if session is None:
        return
    frame = state.dispatcher.parse(session, body)
    for msg in frame.messages:
        if not isinstance(msg, Request):
            await state.dispatcher.handle(session, msg)


def recheck_shared_session(state: ServerState, session_id: str) -> None:
    """Another instance changed a shared session's record: read it again before serving."""
    session = state.http_sessions.get(session_id)
    if session is not None:
        session.checked = 0.0


def end_shared_session(state: ServerState, session_id: str) -> None:
    """End this instance's copy of a shared session that was deleted elsewhere."""
    session = state.http_sessions.get(session_id)
    if session is not None:
        _end_session(state, session, "deleted by the client")


def _era_refusal(request: web.Request) -> web.Response | None:
    """GET and DELETE exist only in the handshake era."""
    header = request.headers.get(VERSION_HEADER)
    era = http_era(header)
    if era == MODERN:
        return error_reply(405, InvalidRequest(f"Method Not Allowed: {request.method} is not part "
                                          f"of protocol {header}"), headers={hdrs.ALLOW: "POST"})
    if era is None:
        return error_reply(400, unsupported_version(header))
    return None


async def handle_mcp_get(request: web.Request) -> web.StreamResponse:
    return await send_within(request, await _get(request))


async def _get(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    refusal = _era_refusal(request) or _sse_refusal(request, json_too=False)
    if refusal is not None:
        return refusal
    session = await _find_session(request, state)
    if isinstance(session, web.Response):
        return session
    last_event_id = request.headers.get(LAST_EVENT_ID_HEADER)
    if state.store.shared:
        return await _shared_get(request, state, session, last_event_id)
    if last_event_id is not None:
        found = parse_event_id(last_event_id)
        stream = session.find_stream(found[0]) if found else None
        if found is None or stream is None or stream.gone(found[1]):
            return _bad_event_id(last_event_id)
        cursor = found[1]
    else:
        stream, cursor = session.get_stream, session.get_stream.delivered
    if stream.attached:
        return error_reply(409, InvalidRequest("Conflict: this stream is already open"))
    return await _deliver(request, stream, cursor,
                          priming=supports(session.protocol_version or "", "sse_priming"),
                          headers={SESSION_HEADER: session.id})


async def _shared_get(request: web.Request, state: ServerState, session: HTTPSession,
                      last_event_id: str | None) -> web.StreamResponse:
    """GET on a shared session: a stream this instance writes is served from its own buffer;
    the standalone stream and other instances' streams from the store, by one instance at a
    time (the store's claim on it; 409 while another holds it)."""
    store = state.store
    key, cursor = GET_STREAM, session.get_stream.delivered
    if last_event_id is not None:
        found = parse_event_id(last_event_id)
        if found is None:
            return _bad_event_id(last_event_id)
        key, cursor = found
    local = session.find_stream(key) if key != GET_STREAM else None
    priming = supports(session.protocol_version or "", "sse_priming")
    headers = {SESSION_HEADER: session.id}
    if local is not None:
        if local.gone(cursor):
            return _bad_event_id(last_event_id or "")
        if local.attached:
            return error_reply(409, InvalidRequest("Conflict: this stream is already open"))
        return await _deliver(request, local, cursor, priming=priming, headers=headers)
    producer = None if key == GET_STREAM else key.rpartition(".")[0]
    if producer is not None and not _FOREIGN_STREAM.fullmatch(key):
        return _bad_event_id(last_event_id or "")

    async def alive() -> bool:
        return producer is None or await store.alive(producer)

    stream = JournalStream(key, _journal(state, session.id, key),
                           None if producer is None else alive)
    claim = f"stream:{session.id}:{key}"
    try:
        if await stream.gone(cursor):
            return _bad_event_id(last_event_id or "")
        if not await store.acquire(claim, _CLAIM_SECONDS):
            return error_reply(409, InvalidRequest("Conflict: this stream is already open"))
    except StoreUnavailable:
        return store_unavailable()

    async def beat() -> bool:  # keep the claim while the stream is delivered
        return await store.renew(claim, _CLAIM_SECONDS)

    response = await open_event_stream(request, headers)
    writer = TimedWriter(request, response)
    standalone = key == GET_STREAM
    session.get_stream.attached |= standalone  # the session is busy while it is delivered
    try:
        if priming:
            await writer.write(stream.priming(cursor))
        await stream.pump(writer, cursor, KEEPALIVE_SECONDS, beat, _CLAIM_BEAT)
        await writer.write_eof()
    except (ConnectionResetError, StoreUnavailable) as exc:
        logger.debug("stream %s: ended: %s", key, exc)
    finally:
        if standalone:
            session.get_stream.attached = False
            before = _shared_state(state, session) or {}
            session.get_stream.delivered = max(session.get_stream.delivered, stream.delivered)
            state.chore(_save(state, session, before))
        state.chore(store.release(claim))
    return response


def _bad_event_id(value: str) -> web.Response:
    return error_reply(400, InvalidRequest(
        f"Bad Request: unknown or expired Last-Event-ID {value!r}"))


async def handle_mcp_delete(request: web.Request) -> web.StreamResponse:
    return await send_within(request, await _delete(request))


async def _delete(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    refusal = _era_refusal(request)
    if refusal is not None:
        return refusal
    session = await _find_session(request, state)
    if isinstance(session, web.Response):
        return session
    store = state.store
    if store.shared:
        try:
            await store.delete(session.id)
            await store.broadcast(Delivery(session.id, "close", b""))
        except StoreUnavailable:
            return store_unavailable()
    _end_session(state, session, "deleted by the client")
    return web.Response(status=200)


def _end_session(state: ServerState, session: HTTPSession, why: str) -> None:
    if state.http_sessions.remove(session.id) is not None:
        _close_session(state, session, why)


def _close_session(state: ServerState, session: HTTPSession, why: str) -> None:
    session.close()
    state.stats.closed("http")
    logger.info("http session %s ended: %s", session.id, why)


async def close_http_sessions(app: web.Application) -> None:
    """``on_shutdown``: end every session and cancel every stateless request, so that open
    streams finish at once, each request that was cut off answered with -32800 (the server
    is shutting down) rather than an empty body."""
    state = app[STATE]
    state.shutting_down = True
    for session in list(state.http_sessions.values()):
        with contextlib.suppress(Exception):
            _end_session(state, session, "server shutting down")
    for task in list(state.stateless_tasks):
        task.cancel()
    state.dispatcher.context.tasks.close()  # the tasks extension's work, every transport's
