"""The client side of the MCP lifecycle as plain functions: what to send, how to read answers.

Theory of operation: a client session (``client/connection.py``) owns the sockets, the
futures and the timeouts; it asks this module what the ``initialize`` request holds, whether
the server's answer is one it can work with, how to read a page of ``tools/list``, and what
to answer a request the server sends it. Nothing here awaits anything, so every rule is
unit-tested without an event loop.

The handshake (protocol 2024-11-05 to 2025-11-25): the client sends ``initialize`` with the
newest version it speaks; the server answers that version if it supports it, else its own
newest; the client goes on only if it speaks the answer, then sends
``notifications/initialized``.

Discovery (protocol 2026-07-28) has no handshake: every request carries the version in its
``_meta``. A client that also speaks the handshake era finds out which era a server is in the
way the official SDK does (``mode="auto"``): it sends ``server/discover`` at its newest
version and reads the outcome with :func:`judge_discover_result` or
:func:`judge_discover_error`:

- a ``DiscoverResult`` naming a version we speak: adopt it (the server is modern);
- ``-32022`` (unsupported version) whose ``data.supported`` names a modern version we speak:
  probe once more at that version;
- ``-32022`` listing only modern versions we lack: the server is modern and we cannot talk
  to it, fail;
- anything else (an unknown method, a malformed result, an HTTP 4xx, no answer in time):
  the server is of the handshake era, ``initialize``.

A transport outage is never an era verdict: it fails the connection, and so does an HTTP 401
or 403 (:class:`AuthorizationRequired`): the server wants credentials, whatever its era.

A 2026-07-28 result may be ``resultType: input_required``: the server needs the client to
answer requests of its own (sampling, elicitation, roots) before it can finish. The client
answers them and sends the same request again (a new id) with :func:`input_retry_params`:
the answers in ``inputResponses`` and the server's ``requestState`` echoed exactly (or left
out when the server sent none). A result still asking after the client's last round goes
through :func:`check_complete`, which turns it into :class:`InputRequired`, so it is never
taken for a success.

The tasks extension (``io.modelcontextprotocol/tasks``) may answer ``tools/call`` with a task
instead of a result: flat, ``resultType: task`` with ``taskId``, ``status`` and
``pollIntervalMs`` (SEP-2663), or the 2025-11-25 form, a ``task`` member holding them (with
``pollInterval``). :func:`read_task` reads either as one :class:`TaskState`; the client polls
``tasks/get`` until the status is terminal (:data:`TERMINAL_TASK_STATUSES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .envelope import SERVER_INFO_META
from .errors import (
    UNSUPPORTED_PROTOCOL_VERSION,
    InputRequired,
    JSONRPCError,
    ProtocolError,
)
from .jsonrpc import RequestId
from .tasks import TASKS_EXTENSION, TERMINAL
from .text import for_display
from .versions import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_VERSIONS

__all__ = [
    "CLIENT_NAME",
    "MAX_POLL_SECONDS",
    "MIN_POLL_SECONDS",
    "TASKS_EXTENSION",
    "TERMINAL_TASK_STATUSES",
    "InitializeResult",
    "ProbeVerdict",
    "TaskState",
    "asked_methods",
    "cancelled_params",
    "check_complete",
    "initialize_params",
    "input_retry_params",
    "is_input_required",
    "judge_discover_error",
    "judge_discover_result",
    "parse_discover_result",
    "parse_initialize_result",
    "parse_tools_page",
    "read_task",
    "tool_call_params",
    "unwrap_result",
]

CLIENT_NAME = "mcp-multi-client"
# The most characters of a server's text (a method name, a challenge) one error message holds.
_NAME_LIMIT = 200


def initialize_params(
    client_version: str,
    *,
    client_name: str = CLIENT_NAME,
    protocol_version: str = LATEST_HANDSHAKE_VERSION,
    capabilities: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``params`` of an ``initialize`` request.

    Args:
        client_version: our version, reported in ``clientInfo``.
        client_name: our name, reported in ``clientInfo``.
        protocol_version: the version we ask for (our newest by default).
        capabilities: client capabilities; none by default (no sampling, roots, elicitation).
    """
    return {
        "protocolVersion": protocol_version,
        "capabilities": dict(capabilities or {}),
        "clientInfo": {"name": client_name, "version": client_version},
    }


@dataclass(frozen=True, slots=True)
class InitializeResult:
    """What the server told us in its ``initialize`` result."""

    protocol_version: str
    server_name: str
    server_version: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    instructions: str | None = None

    def has_capability(self, name: str) -> bool:
        return name in self.capabilities


def parse_initialize_result(result: dict[str, Any]) -> InitializeResult:
    """Check an ``initialize`` result and read it.

    Raises:
        ProtocolError: a member is missing or malformed, or the server chose a protocol
            version we do not speak (the client must then disconnect).
    """
    version = result.get("protocolVersion")
    if not isinstance(version, str):
        raise ProtocolError("initialize result has no protocolVersion")
    if version not in HANDSHAKE_VERSIONS:
        # Only a handshake-era version can be the answer to initialize.
        raise ProtocolError(f"server chose protocol version "
                            f"{for_display(repr(version), _NAME_LIMIT)}, which we do not speak")
    info = result.get("serverInfo")
    if not isinstance(info, dict):
        raise ProtocolError("initialize result has no serverInfo")
    capabilities = result.get("capabilities", {})
    if not isinstance(capabilities, dict):
        raise ProtocolError("initialize result capabilities is not an object")
    return _server_facts(result, version, info, capabilities)


def parse_discover_result(result: Mapping[str, Any], protocol_version: str) -> InitializeResult:
    """Read a ``server/discover`` result as what we know of the server, at ``protocol_version``.

    Raises:
        ProtocolError: ``supportedVersions`` or ``capabilities`` is missing or malformed.
    """
    versions = result.get("supportedVersions")
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise ProtocolError("server/discover result has no supportedVersions list")
    capabilities = result.get("capabilities")
    if not isinstance(capabilities, dict):
        raise ProtocolError("server/discover result has no capabilities object")
    meta = result.get("_meta")
    info = meta.get(SERVER_INFO_META) if isinstance(meta, Mapping) else None
    if not isinstance(info, Mapping):
        info = result.get("serverInfo")  # some servers put it in the body, as initialize does
    return _server_facts(result, protocol_version, info if isinstance(info, Mapping) else {},
                         capabilities)


def _server_facts(result: Mapping[str, Any], version: str, info: Mapping[str, Any],
                  capabilities: dict[str, Any]) -> InitializeResult:
    """What both eras' opening results tell of the server, once its members are checked."""
    instructions = result.get("instructions")
    return InitializeResult(
        protocol_version=version,
        server_name=str(info.get("name", "")),
        server_version=str(info.get("version", "")),
        capabilities=capabilities,
        instructions=instructions if isinstance(instructions, str) else None,
    )


@dataclass(frozen=True, slots=True)
class ProbeVerdict:
    """What a ``server/discover`` probe's outcome tells a dual-era client to do next.

    ``adopt``: speak ``version`` (modern) from now on; ``retry``: probe again at ``version``;
    ``initialize``: the server is of the handshake era; ``fail``: no version in common.
    """

    action: Literal["adopt", "retry", "initialize", "fail"]
    version: str | None = None


def _mutual_modern(versions: object) -> list[str]:
    offered = versions if isinstance(versions, list) else []
    return [v for v in MODERN_VERSIONS if v in offered]


def judge_discover_result(result: Mapping[str, Any], probed: str) -> ProbeVerdict:
    """The verdict on a ``server/discover`` result to a probe at version ``probed``.

    A result that is not a well-formed ``DiscoverResult`` (some handshake-era servers answer
    unknown methods with an empty result) or that advertises no modern version we speak is
    no evidence of the modern era.
    """
    try:
        parse_discover_result(result, probed)
    except ProtocolError:
        return ProbeVerdict("initialize")
    offered = result["supportedVersions"]
    if probed in offered:
        return ProbeVerdict("adopt", probed)
    mutual = _mutual_modern(offered)
    return ProbeVerdict("adopt", mutual[-1]) if mutual else ProbeVerdict("initialize")


def judge_discover_error(error: JSONRPCError, *, retried: bool) -> ProbeVerdict:
    """The verdict on an error answering a ``server/discover`` probe.

    Args:
        error: the error the server answered (or that the transport made of an HTTP 4xx).
        retried: this was already the second probe.
    """
    if error.code != UNSUPPORTED_PROTOCOL_VERSION:
        return ProbeVerdict("initialize")
    data = error.data if isinstance(error.data, Mapping) else {}
    supported = data.get("supported")
    mutual = _mutual_modern(supported)
    if mutual and not retried:
        return ProbeVerdict("retry", mutual[-1])
    if isinstance(supported, list) and not any(v in HANDSHAKE_VERSIONS for v in supported):
        return ProbeVerdict("fail")
    return ProbeVerdict("initialize")


def unwrap_result(result: dict[str, Any]) -> dict[str, Any]:
    """A 2026-07-28 result without the stamps every result of that era carries
    (``resultType: complete``, ``_meta["io.modelcontextprotocol/serverInfo"]``), so a caller
    sees the same result in either era. Anything else (``input_required``, other ``_meta``
    keys, cache hints) stays."""
    if result.get("resultType") != "complete":
        return result
    unwrapped = dict(result)  # (copies and deletions in C: this runs on every result)
    del unwrapped["resultType"]
    meta = unwrapped.get("_meta")
    # (dict first: what JSON decodes to is one, and the ABC's check runs Python.)
    if isinstance(meta, (dict, Mapping)) and SERVER_INFO_META in meta:
        rest = dict(meta)
        del rest[SERVER_INFO_META]
        if rest:
            unwrapped["_meta"] = rest
        else:
            del unwrapped["_meta"]
    return unwrapped


def asked_methods(result: Mapping[str, Any]) -> list[str]:
    """The methods an ``input_required`` result's ``inputRequests`` name, each once."""
    requests = result.get("inputRequests")
    asked: list[str] = []
    for request in requests.values() if isinstance(requests, Mapping) else ():
        method = request.get("method") if isinstance(request, Mapping) else None
        if isinstance(method, str) and method not in asked:
            asked.append(method)
    return asked


def check_complete(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` itself, unless the server said it needs input first.

    Raises:
        InputRequired: ``resultType`` is ``input_required``; the message names the methods
            of its ``inputRequests`` (each once, escaped and clipped).
    """
    if result.get("resultType") != "input_required":
        return result
    asked = asked_methods(result)
    shown = for_display(", ".join(asked), _NAME_LIMIT)
    if asked:
        message = f"Server needs input the client cannot give yet: {shown}"
    else:
        message = "Server needs input the client cannot give yet (it named no request)"
    raise InputRequired(message, asked, result)


def parse_tools_page(result: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The tools of one ``tools/list`` page and the cursor of the next (``None`` at the end).

    Raises:
        ProtocolError: ``tools`` is not a list of objects with a string ``name``.
    """
    tools = result.get("tools")
    if not isinstance(tools, list):
        raise ProtocolError("tools/list result has no tools list")
    for tool in tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise ProtocolError("tools/list result holds a malformed tool: "
                                f"{for_display(repr(tool), _NAME_LIMIT)}")
    cursor = result.get("nextCursor")
    return tools, cursor if isinstance(cursor, str) and cursor else None


def tool_call_params(name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``params`` of a ``tools/call`` request."""
    return {"name": name, "arguments": arguments if arguments is not None else {}}


def cancelled_params(request_id: RequestId, reason: str) -> dict[str, Any]:
    """The ``params`` of ``notifications/cancelled`` for a request we gave up on."""
    return {"requestId": request_id, "reason": reason}


def is_input_required(result: Mapping[str, Any]) -> bool:
    """Whether a result asks for input before the request can finish (2026-07-28)."""
    return result.get("resultType") == "input_required"


def input_retry_params(params: Mapping[str, Any] | None, result: Mapping[str, Any],
                       responses: Mapping[str, Any]) -> dict[str, Any]:
    """The params of the retry of a request whose answer was ``result`` (input required):
    the original params, the answers in ``inputResponses``, and ``requestState`` exactly as
    the server sent it, or none when it sent none."""
    retry = {k: v for k, v in (params or {}).items()
             if k not in ("inputResponses", "requestState")}
    retry["inputResponses"] = dict(responses)
    state = result.get("requestState")
    if state is not None:
        retry["requestState"] = state
    return retry


TERMINAL_TASK_STATUSES = TERMINAL  # plain status strings match these StrEnum members
# How often a task is polled at most and at least, whatever the server suggests.
MIN_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 5.0
_DEFAULT_POLL_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class TaskState:
    """Where a task is: its id, status, and what the server said with it.

    ``legacy``: the 2025-11-25 form, whose result is fetched with ``tasks/result``; the
    SEP-2663 form inlines ``result`` or ``error`` in ``tasks/get`` when it is done.
    """

    task_id: str
    status: str
    poll_seconds: float = _DEFAULT_POLL_SECONDS
    message: str | None = None
    legacy: bool = False
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    input_requests: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_TASK_STATUSES


def read_task(result: Mapping[str, Any], *, polled: bool = False,
              legacy: bool = False) -> TaskState | None:
    """The task a ``tools/call`` result describes (``None``: a plain result), or, with
    ``polled``, the task a ``tasks/get`` result is (of the form ``legacy`` says).

    Raises:
        ProtocolError: it says it is a task but has no string ``taskId`` and ``status``.
    """
    body: Mapping[str, Any] = result
    if not polled and result.get("resultType") != "task":
        wrapped = result.get("task")
        if not isinstance(wrapped, Mapping):
            return None
        body, legacy = wrapped, True
    task_id, status = body.get("taskId"), body.get("status")
    if not isinstance(task_id, str) or not isinstance(status, str):
        raise ProtocolError("the server's task has no taskId or status")
    interval = body.get("pollIntervalMs")
    if interval is None:
        interval = body.get("pollInterval")
    seconds = interval / 1000 if isinstance(interval, int | float) and not isinstance(
        interval, bool) else _DEFAULT_POLL_SECONDS
    message = body.get("statusMessage")
    inline, error, asked = (result.get(key) for key in ("result", "error", "inputRequests"))
    return TaskState(
        task_id=task_id, status=status,
        poll_seconds=min(max(seconds, MIN_POLL_SECONDS), MAX_POLL_SECONDS),
        message=for_display(message, _NAME_LIMIT) if isinstance(message, str) else None,
        legacy=legacy,
        result=inline if isinstance(inline, dict) else None,
        error=error if isinstance(error, dict) else None,
        input_requests=asked if isinstance(asked, dict) else None,
    )
