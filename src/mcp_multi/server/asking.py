"""Asking the client: one mechanism for sampling, elicitation and roots, in both eras.

A handler awaits ``call.ask(method, params)`` (a tool: ``ctx.ask``) and gets the client's
result dict. What happens meanwhile depends on the era the request is served in:

- **Handshake era** (:class:`StreamAsking`): the question goes out as a server-to-client
  JSON-RPC request on the stream the request's own notifications take (the WebSocket, the
  legacy SSE stream, the POST's SSE response on Streamable HTTP, stdout), under an id the
  session issues (:class:`PendingAsks`). The dispatcher hands each response the client sends
  back (on Streamable HTTP: in a POST of its own, answered 202) to :meth:`PendingAsks.resolve`,
  which wakes the waiting handler. Every ask is bounded: ``settings.ask_timeout`` seconds,
  ``settings.max_asks`` outstanding per session; an answer to an id not waited for is
  dropped; a session that closes fails its asks; ``notifications/cancelled`` for the request
  cancels the handler and with it its ask (the client is told with a ``notifications/cancelled``
  of its own).
- **2026-07-28** (:class:`RoundAsking`): nothing waits. An ask whose answer the retried
  request does not carry raises :class:`InputNeeded`, which the dispatcher turns into an
  ``input_required`` result (see :mod:`mcp_multi.protocol.input_required`); the client retries
  with the answers and the handler, run again from the start, finds them.

A handler may ask several questions at once with ``ask_all`` (one ``input_required`` round
carries all of them). Each question has a key, unique within the request: given, or derived
from the order of the asks (``sampling-1``, ``elicitation-2``), which is stable because a
handler run again with the same answers asks the same questions in the same order.

A client that did not declare the capability a question needs is not asked: the request
fails with -32021 (``MissingRequiredClientCapability``), its data naming the capability.
A client that answers with an error, too late, or with a malformed result makes the ask
raise :class:`AskFailed` (a :class:`~mcp_multi.server.tools.ToolError`, so a tool's caller
sees it as ``isError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol import methods as m
from ..protocol.errors import InternalError, InvalidParams, MissingRequiredClientCapability
from ..protocol.input_required import (
    ASKABLE,
    INPUT_REQUIRED_METHODS,
    RequestStateCodec,
    binding_of,
    check_answer,
    input_request,
    input_required_result,
    missing_capabilities,
    read_input_responses,
)
from ..protocol.jsonrpc import ErrorResponse, RequestId, Response, notification
from ..protocol.text import for_display
from .tools import ToolError

if TYPE_CHECKING:
    from .handlers.router import Call
    from .session import SendFn, ServerSession

__all__ = ["AskFailed", "Asker", "Asking", "InputNeeded", "PendingAsks", "Questions",
           "RoundAsking", "StreamAsking", "asker_of", "refusal"]

# Questions asked at once: key -> (method, params).
Questions = Mapping[str, tuple[str, dict[str, Any]]]


class AskFailed(ToolError):
    """The client could not be asked, or gave no usable answer (it refused, it did not answer
    in time, its session closed, too many questions were outstanding)."""


class InputNeeded(BaseException):
    """2026-07-28: the request cannot go on without answers the client has not given yet.

    A control-flow signal, not an error: it derives from ``BaseException`` so that a handler's
    ``except Exception`` cannot swallow it. The dispatcher turns it into the
    ``input_required`` result of the request (:meth:`RoundAsking.result`).
    """


class Asker(Protocol):
    """What can ask the client: a :class:`~mcp_multi.server.handlers.router.Call`."""

    async def ask(self, method: str, params: dict[str, Any], *,
                  key: str | None = None) -> dict[str, Any]: ...

    async def ask_all(self, questions: Questions) -> dict[str, dict[str, Any]]: ...

    def can_ask(self, method: str, params: Mapping[str, Any] | None = None) -> bool: ...


def refusal(method: str, params: Mapping[str, Any],
            declared: Mapping[str, Any]) -> MissingRequiredClientCapability | None:
    """The error refusing to ask ``method`` of a client that declared ``declared``, or None.

    Raises:
        InternalError: ``method`` is nothing a server may ask (a handler's mistake).
    """
    if method not in ASKABLE:
        raise InternalError(f"Internal error: {for_display(method, 100)} is not a request a "
                            "server may send its client")
    missing = missing_capabilities(method, params, declared)
    if missing is None:
        return None
    names = ", ".join(f"{k}.{s}" if s else k for k, v in missing.items() for s in v or [""])
    return MissingRequiredClientCapability(
        f"Missing required client capability: {names}", {"requiredCapabilities": missing})


# ------------------------------------------------------------------ the handshake era

class PendingAsks:
    """The server-to-client requests of one session that await their answers, by id.

    Ids are numbers from 1, or with a ``prefix`` strings ``"<prefix>-<n>"``: a session shared
    between instances names the instance that asked, so that whichever instance receives the
    answer knows where it is awaited (:func:`asker_of`).
    """

    __slots__ = ("_ids", "_prefix", "_waiting")

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = prefix
        self._ids = itertools.count(1)
        self._waiting: dict[RequestId, asyncio.Future[dict[str, Any]]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def open(self, limit: int) -> tuple[RequestId, asyncio.Future[dict[str, Any]]]:
        """A fresh id and the future its answer will complete.

        Raises:
            AskFailed: ``limit`` asks of this session already wait.
        """
        if len(self._waiting) >= limit:
            raise AskFailed(f"Too many requests to the client outstanding (limit {limit}); "
                            "try again when one has been answered")
        n = next(self._ids)
        request_id: RequestId = n if self._prefix is None else f"{self._prefix}-{n}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        return request_id, future

    def discard(self, request_id: RequestId) -> None:
        self._waiting.pop(request_id, None)

    def resolve(self, message: Response | ErrorResponse) -> bool:
        """Complete the ask ``message`` answers; False when no ask waits for its id."""
        if message.id is None:
            return False
        future = self._waiting.pop(message.id, None)
        if future is None or future.done():
            return False
        if isinstance(message, Response):
            future.set_result(message.result)
        else:
            error = message.error
            future.set_exception(AskFailed(
                f"The client refused: {for_display(error.message, 200)} ({error.code})"))
        return True

    def fail_all(self, why: str) -> None:
        """Fail every waiting ask (the session is closing, or its client can no longer answer)."""
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(AskFailed(why))
                # Marked as read: the handler awaiting it is usually cancelled along with its
                # session before it gets to read it, and asyncio would log it as lost.
                future.exception()


def asker_of(request_id: RequestId | None) -> str | None:
    """The instance that sent the request ``request_id`` answers, when a shared session's
    :class:`PendingAsks` named one in it; None for any other id."""
    if not isinstance(request_id, str):
        return None
    prefix, sep, n = request_id.rpartition("-")
    return prefix if sep and prefix and n.isdigit() else None


class StreamAsking:
    """Asks of one handshake-era request: server-to-client requests on its stream."""

    __slots__ = ("_call",)

    def __init__(self, call: Call) -> None:
        self._call = call

    async def ask_all(self, questions: Questions) -> dict[str, dict[str, Any]]:
        session = self._call.session
        for method, params in questions.values():
            refused = refusal(method, params, session.client_capabilities)
            if refused is not None:
                raise refused
        if len(questions) == 1:
            ((key, (method, params)),) = questions.items()
            return {key: await self._one(session, method, params)}
        tasks = {key: asyncio.ensure_future(self._one(session, method, params))
                 for key, (method, params) in questions.items()}
        try:
            await asyncio.gather(*tasks.values())
        finally:
            for task in tasks.values():
                task.cancel()
        return {key: task.result() for key, task in tasks.items()}

    async def _one(self, session: ServerSession, method: str,
                   params: dict[str, Any]) -> dict[str, Any]:
        settings = self._call.server.settings
        if session.closed:
            raise AskFailed("The session is closed: its client cannot be asked")
        if session.asks is None:
            session.asks = PendingAsks(session.ask_prefix)
        asks = session.asks
        request_id, future = asks.open(settings.max_asks)
        notify = self._call.notify
        try:
            try:
                await notify({"jsonrpc": "2.0", "id": request_id, "method": method,
                              "params": params})
            except Exception as exc:
                raise AskFailed(f"Could not send {method} to the client: {exc}") from None
            try:
                async with asyncio.timeout(settings.ask_timeout):
                    answer = await future
            except TimeoutError:
                await _abandon(session, notify, request_id, "no answer in time")
                raise AskFailed(f"The client did not answer {method} within "
                                f"{settings.ask_timeout:g} s") from None
            except asyncio.CancelledError:
                await _abandon(session, notify, request_id, "the request was cancelled")
                raise
        finally:
            asks.discard(request_id)
        problem = check_answer(method, answer)
        if problem is not None:
            raise AskFailed(f"The client's answer to {method} is malformed: {problem}")
        return answer


async def _abandon(session: ServerSession, notify: SendFn, request_id: RequestId,
                   why: str) -> None:
    """Tell the client an ask is no longer wanted (best effort, never blocking long)."""
    if session.closed:
        return
    cancelled = notification(m.CANCELLED, {"requestId": request_id, "reason": why})
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await notify(cancelled)


# ------------------------------------------------------------------ 2026-07-28

class RoundAsking:
    """Asks of one round of a 2026-07-28 request: answered from its ``inputResponses`` and
    ``requestState``, or collected into its ``input_required`` result."""

    __slots__ = ("_binding", "_call", "_codec", "_known", "_missing", "_used")

    def __init__(self, call: Call, codec: RequestStateCodec) -> None:
        method = call.method
        if method and method not in INPUT_REQUIRED_METHODS:
            raise InternalError(f"Internal error: {method} cannot ask the client for input")
        params = call.params
        self._call = call
        self._codec = codec
        self._binding = binding_of(method, params)
        earlier: dict[str, dict[str, Any]] = {}
        if "requestState" in params:
            earlier = codec.open(params["requestState"], self._binding, time.time())
        # What the state carries was given in an earlier round and wins over a new answer.
        self._known = {**read_input_responses(params), **earlier}
        self._used: dict[str, dict[str, Any]] = {}
        self._missing: dict[str, dict[str, Any]] = {}

    async def ask_all(self, questions: Questions) -> dict[str, dict[str, Any]]:
        declared = self._call.client_capabilities
        for method, params in questions.values():
            refused = refusal(method, params, declared)
            if refused is not None:
                raise refused
        answers: dict[str, dict[str, Any]] = {}
        for key, (method, params) in questions.items():
            answer = self._known.get(key)
            if answer is None:
                self._missing[key] = input_request(method, params)
                continue
            problem = check_answer(method, answer)
            if problem is not None:
                raise InvalidParams(f"Invalid params: inputResponses entry "
                                    f"{for_display(key, 100)!r} {problem}")
            self._used[key] = answer
            answers[key] = answer
        if len(answers) < len(questions):
            raise InputNeeded
        return answers

    def result(self) -> dict[str, Any]:
        """The ``input_required`` result of this round: the questions still open, and a state
        carrying the answers used so far."""
        state = self._codec.seal(self._binding, self._used, time.time())
        return input_required_result(self._missing, state, self._call.server.server_info)


Asking = StreamAsking | RoundAsking
