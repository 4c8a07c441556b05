"""Answering what a server asks its client: sampling, elicitation, roots (and ``ping``).

Theory of operation: a server asks in one of two ways, and both end here. In the handshake
era it sends a request of its own over the session's stream (every transport);
:mod:`mcp_multi.client.inbound` answers it with :func:`answer_server_request`. In 2026-07-28
it answers one of our requests with ``resultType: input_required`` and a map of
``inputRequests``; the connection answers each with :func:`answer_input_requests` and
retries. Either way one :class:`ClientHandlers` decides, one callback per kind:

- the library takes any callbacks (``MultiServerMCPClient(handlers=...)``);
- the shell swaps in callbacks that ask the person at the terminal;
- where nobody is there (test mode, conformance mode, stdin not a terminal) the policies of
  :func:`policy_handlers` decide, so nothing waits forever.

A kind without a callback is not declared (:meth:`ClientHandlers.capabilities`), and a
request of that kind is refused with -32601, as is any method we do not know. A callback
that refuses raises :class:`Declined`; a sampling refusal travels as a JSON-RPC error
(code -1, the specification's "user rejected"), an elicitation refusal as
``{"action": "decline"}``. A callback's answer is checked for its shape before it goes out,
so a buggy callback is an internal error (-32603), never a malformed reply.

The policies: ``--sampling decline|reply:TEXT|command:CMD`` (``command`` runs ``CMD`` with the
request's params as JSON on stdin and takes its stdout as the reply text, or as a whole
``CreateMessageResult`` when it prints one; bounded in time and output, its process group
killed on timeout); ``--elicitation decline|defaults`` (``defaults`` accepts a form with the
defaults its schema gives, each checked against its field's schema, and declines when a
required field has none or a default does not fit; a URL-mode elicitation is declined);
``--roots DIR`` (repeatable: ``file://`` URIs of the resolved directories).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from ..protocol import methods
from ..protocol.errors import InternalError, JSONRPCError, MethodNotFound
from ..protocol.text import for_display

__all__ = [
    "COMMAND_OUTPUT_LIMIT",
    "COMMAND_TIMEOUT",
    "DECLINED",
    "ClientHandlers",
    "Declined",
    "ElicitationHandler",
    "RootsHandler",
    "SamplingHandler",
    "answer_input_requests",
    "answer_server_request",
    "elicitation_defaults",
    "field_problem",
    "policy_handlers",
    "roots_handler",
]

logger = logging.getLogger(__name__)

SamplingHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""``(server name, sampling/createMessage params) -> CreateMessageResult``."""

ElicitationHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""``(server name, elicitation/create params) -> {"action": ..., "content": {...}}``."""

RootsHandler = Callable[[str], Awaitable[list[dict[str, Any]]]]
"""``(server name) -> [{"uri": "file:///...", "name": "..."}]``."""

DECLINED = -1  # the specification's code for "the user rejected the request"
COMMAND_TIMEOUT = 30.0
COMMAND_OUTPUT_LIMIT = 1024 * 1024
DEFAULT_ANSWER_TIMEOUT = 300.0
_ACTIONS = ("accept", "decline", "cancel")
_SAMPLING_MODEL = "mcp-multi-client"


class Declined(JSONRPCError):
    """A handler refuses what the server asked (the person said no, or the policy does)."""

    code = DECLINED


@dataclass(slots=True)
class ClientHandlers:
    """The callbacks that answer a server's requests, one per kind (``None``: not offered).

    Attributes:
        timeout: seconds one answer may take (a person at a terminal may be slow; a policy
            never is); over it the server is answered with an error.
    """

    sampling: SamplingHandler | None = None
    elicitation: ElicitationHandler | None = None
    roots: RootsHandler | None = None
    timeout: float = DEFAULT_ANSWER_TIMEOUT

    def capabilities(self) -> dict[str, Any]:
        """The client capabilities these handlers let us declare (``initialize`` and the
        2026-07-28 ``clientCapabilities``): only the kinds that have a handler."""
        declared: dict[str, Any] = {}
        if self.sampling is not None:
            declared["sampling"] = {}
        if self.elicitation is not None:
            declared["elicitation"] = {"form": {}, "url": {}}
        if self.roots is not None:
            declared["roots"] = {"listChanged": True}
        return declared


# ----------------------------------------------------------------- answering a request

async def answer_server_request(handlers: ClientHandlers | None, server: str, method: str,
                                params: dict[str, Any] | None) -> dict[str, Any]:
    """The result to send for a server's request ``method``.

    Raises:
        JSONRPCError: the answer is an error: -32601 for an unknown method or a kind
            without a handler, :class:`Declined` (-1) for a refused sampling request,
            -32603 for a handler that failed, answered badly or took too long.
    """
    if method == methods.PING:
        return {}
    run = _runner(handlers, method)
    if run is None or handlers is None:
        raise MethodNotFound(f"Method not found: {for_display(method, 200)}")
    try:
        async with asyncio.timeout(handlers.timeout):
            return await run(server, dict(params or {}))
    except TimeoutError:
        raise InternalError(f"no answer to {method} within {handlers.timeout:g}s") from None


def _runner(handlers: ClientHandlers | None, method: str
            ) -> Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]] | None:
    if handlers is None:
        return None
    if method == methods.SAMPLING_CREATE_MESSAGE and handlers.sampling is not None:
        sampling = handlers.sampling

        async def sample(server: str, params: dict[str, Any]) -> dict[str, Any]:
            return _checked_sampling(await _guarded(sampling(server, params), method))
        return sample
    if method == methods.ELICITATION_CREATE and handlers.elicitation is not None:
        elicitation = handlers.elicitation

        async def elicit(server: str, params: dict[str, Any]) -> dict[str, Any]:
            try:
                answer = await _guarded(elicitation(server, params), method)
            except Declined:
                return {"action": "decline"}
            return _checked_elicitation(answer)
        return elicit
    if method == methods.ROOTS_LIST and handlers.roots is not None:
        roots = handlers.roots

        async def list_roots(server: str, params: dict[str, Any]) -> dict[str, Any]:
            return {"roots": _checked_roots(await _guarded(roots(server), method))}
        return list_roots
    return None


async def _guarded(answer: Awaitable[Any], method: str) -> Any:
    """``answer`` awaited; a handler's own bug is an internal error, not a crash."""
    try:
        return await answer
    except (JSONRPCError, asyncio.CancelledError, TimeoutError):
        raise
    except Exception as exc:
        logger.warning("the %s handler failed: %s", method, for_display(repr(exc), 300))
        raise InternalError(f"the client could not answer {method}") from exc


def _checked_sampling(result: Any) -> dict[str, Any]:
    if (not isinstance(result, dict) or result.get("role") != "assistant"
            or not isinstance(result.get("content"), dict | list)):
        raise InternalError("the sampling handler gave no CreateMessageResult")
    result.setdefault("model", _SAMPLING_MODEL)
    return result


def _checked_elicitation(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict) or result.get("action") not in _ACTIONS:
        raise InternalError("the elicitation handler gave no action")
    if result["action"] != "accept":
        return {"action": result["action"]}
    content = result.get("content")
    if content is not None and not isinstance(content, dict):
        raise InternalError("the elicitation handler's content is not an object")
    return result


def _checked_roots(roots: Any) -> list[dict[str, Any]]:
    if not isinstance(roots, list) or not all(
            isinstance(r, dict) and isinstance(r.get("uri"), str) for r in roots):
        raise InternalError("the roots handler gave no list of roots")
    return roots


async def answer_input_requests(handlers: ClientHandlers | None, server: str,
                                requests: Mapping[str, Any]) -> dict[str, Any]:
    """The ``inputResponses`` of a 2026-07-28 ``input_required`` result's ``inputRequests``,
    answered concurrently, keyed as asked.

    Raises:
        JSONRPCError: one of them cannot be answered (malformed, unknown kind, refused):
            the retry would only be asked the same again.
    """
    keys = list(requests)

    async def one(key: str) -> dict[str, Any]:
        request = requests[key]
        method = request.get("method") if isinstance(request, Mapping) else None
        params = request.get("params") if isinstance(request, Mapping) else None
        if not isinstance(method, str) or not isinstance(params, dict | None):
            raise InternalError(f"input request {for_display(repr(key), 100)} is malformed")
        return await answer_server_request(handlers, server, method, params)

    answers = await asyncio.gather(*(one(key) for key in keys))
    return dict(zip(keys, answers, strict=True))


# ----------------------------------------------------------------- policies

def policy_handlers(sampling: str = "decline", elicitation: str = "decline",
                    roots: Sequence[str | Path] = ()) -> ClientHandlers:
    """The handlers where no person is there to ask.

    Args:
        sampling: ``decline``, ``reply:TEXT`` or ``command:CMD``.
        elicitation: ``decline`` or ``defaults``.
        roots: directories offered as roots (none: an empty list of roots).

    Raises:
        ValueError: a policy is not one of those (the message says which are).
    """
    return ClientHandlers(sampling=_sampling_policy(sampling),
                          elicitation=_elicitation_policy(elicitation),
                          roots=roots_handler(roots))


def _sampling_policy(policy: str) -> SamplingHandler:
    kind, _, argument = policy.partition(":")
    if policy == "decline":
        async def decline(server: str, params: dict[str, Any]) -> dict[str, Any]:
            raise Declined("Sampling declined by the client's policy")
        return decline
    if kind == "reply" and _:
        async def reply(server: str, params: dict[str, Any]) -> dict[str, Any]:
            return _text_reply(argument)
        return reply
    if kind == "command" and argument.strip():
        argv = shlex.split(argument)

        async def command(server: str, params: dict[str, Any]) -> dict[str, Any]:
            return _command_reply(await run_reply_command(argv, params))
        return command
    raise ValueError(f"bad sampling policy {policy!r}: use decline, reply:TEXT or command:CMD")


def _elicitation_policy(policy: str) -> ElicitationHandler:
    if policy == "decline":
        async def decline(server: str, params: dict[str, Any]) -> dict[str, Any]:
            return {"action": "decline"}
        return decline
    if policy == "defaults":
        async def defaults(server: str, params: dict[str, Any]) -> dict[str, Any]:
            content = elicitation_defaults(params)
            if content is None:
                return {"action": "decline"}
            return {"action": "accept", "content": content}
        return defaults
    raise ValueError(f"bad elicitation policy {policy!r}: use decline or defaults")


def roots_handler(directories: Sequence[str | Path]) -> RootsHandler:
    """A handler offering ``directories`` (resolved now) as ``file://`` roots.

    Raises:
        ValueError: one of them is not a directory.
    """
    roots: list[dict[str, Any]] = []
    for directory in directories:
        path = Path(directory).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"--roots {directory}: not a directory")
        roots.append({"uri": path.as_uri(), "name": path.name or str(path)})

    async def list_roots(server: str) -> list[dict[str, Any]]:
        return [dict(root) for root in roots]
    return list_roots


def _text_reply(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": {"type": "text", "text": text},
            "model": _SAMPLING_MODEL, "stopReason": "endTurn"}


def _command_reply(output: str) -> dict[str, Any]:
    """A reply command's output: a whole ``CreateMessageResult`` if it printed one, else
    its text (without the final line break)."""
    stripped = output.strip()
    if stripped.startswith("{"):
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and "content" in parsed:
            parsed.setdefault("role", "assistant")
            return _checked_sampling(parsed)
    return _text_reply(output.rstrip("\r\n"))


async def run_reply_command(argv: list[str], params: dict[str, Any], *,
                            timeout: float = COMMAND_TIMEOUT,
                            limit: int = COMMAND_OUTPUT_LIMIT) -> str:
    """Run ``argv`` with ``params`` as JSON on stdin; its stdout, decoded.

    Raises:
        InternalError: it could not start, ran over ``timeout`` (its process group is
            killed), printed over ``limit`` bytes, or exited non-zero.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise InternalError(f"the sampling command could not start: "
                            f"{for_display(str(exc), 200)}") from None
    assert proc.stdin is not None and proc.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(orjson.dumps(params))
                await proc.stdin.drain()
                proc.stdin.close()
            output = await _read_bounded(proc.stdout, limit)
            code = await proc.wait()
    except TimeoutError:
        raise InternalError(f"the sampling command ran over {timeout:g}s") from None
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await proc.wait()
    if code != 0:
        raise InternalError(f"the sampling command failed (exit code {code})")
    return output.decode("utf-8", "replace")


async def _read_bounded(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Everything ``stream`` gives until its end; over ``limit`` bytes is an error."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise InternalError(f"the sampling command printed over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ----------------------------------------------------------------- elicitation defaults

def elicitation_defaults(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The content of a form accepted with its schema's defaults, or ``None`` to decline:
    URL mode, a malformed schema, a required field without a default, or a default that
    does not fit its own field's schema."""
    if params.get("mode", "form") != "form":
        return None
    schema = params.get("requestedSchema")
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        return None
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    if not isinstance(properties, Mapping) or not isinstance(required, list):
        return None
    content: dict[str, Any] = {}
    for name, field in properties.items():
        if not isinstance(field, Mapping):
            return None
        if "default" in field:
            if not _fits(field["default"], field):
                return None
            content[name] = field["default"]
    if any(name not in content for name in required):
        return None
    return content


# The primitive field types an elicitation form may hold (and arrays of enum choices).
_FIELD_TYPES = ("string", "number", "integer", "boolean", "array")


def _fits(value: Any, field: Mapping[str, Any]) -> bool:
    """Whether ``value`` is valid for one field of an elicitation schema (one we can check)."""
    return field.get("type") in _FIELD_TYPES and \
        field_problem(value, field, uncheckable="uncheckable") is None


def field_problem(value: Any, schema: Mapping[str, Any], *,
                  uncheckable: str | None = None) -> str | None:
    """Why ``value`` does not fit ``schema`` (one line), or ``None`` when it does; a schema
    that cannot be checked gives ``uncheckable``.

    ``pattern`` is not checked: the server chose both the regular expression and the
    default it offers, and Python's ``re`` has no time limit, so a catastrophic pattern
    (``^(a+)+$`` against forty ``a`` and a ``!``) would freeze the whole client. An
    elicitation's string schema has no ``pattern`` anyway; the server checks what it gets.
    """
    try:
        validator = jsonschema.Draft202012Validator(
            _without_patterns(schema),
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    except (jsonschema.exceptions.SchemaError, RecursionError, TypeError, ValueError):
        return uncheckable
    return None if error is None else for_display(error.message, 300)


def _without_patterns(schema: Any, depth: int = 0) -> Any:
    """``schema`` without its ``pattern`` and ``patternProperties`` keywords, at any depth
    (a schema nested past 64 levels is returned as ``{}``: nothing left to check)."""
    if depth > 64:
        return {}
    if isinstance(schema, Mapping):
        return {k: _without_patterns(v, depth + 1) for k, v in schema.items()
                if k not in ("pattern", "patternProperties")}
    if isinstance(schema, list):
        return [_without_patterns(v, depth + 1) for v in schema]
    return schema
