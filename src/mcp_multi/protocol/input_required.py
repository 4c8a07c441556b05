"""Asking the client, without I/O: what an ask needs, what an answer must look like, and the
2026-07-28 ``input_required`` result with its integrity-protected ``requestState``.

Theory of operation. A server handler that needs the client (``sampling/createMessage``,
``elicitation/create``, ``roots/list``) asks once; how the question travels depends on the era:

- Handshake era: as a server-to-client JSON-RPC request on the session's stream. Only the
  capability check (:func:`missing_capabilities`) and the answer's shape (:func:`check_answer`)
  live here; the waiting lives in the server's session layer.
- 2026-07-28: the request that asked is answered with an :func:`input_required_result`
  naming each question under a key, plus a ``requestState``. The client retries the same
  request with ``inputResponses`` (answers by key) and the state echoed. The server runs the
  handler again from the start; every question it asks again now finds its answer. Nothing
  is kept on the server between rounds: the answers of earlier rounds travel in the state.

The state is ``v1.<payload>.<mac>``: the payload is base64url JSON holding the answers so far,
a digest binding it to the request (method and params, less ``_meta``, ``inputResponses``
and ``requestState``) and an expiry; the mac is HMAC-SHA256 over the payload text with a
secret only the server knows. :class:`RequestStateCodec` seals and opens it; a state that is
malformed, too large, forged, expired or presented on another request is refused with
-32602 (the client broke it, or sent someone else's).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from . import methods as m
from .envelope import SERVER_INFO_META
from .errors import InvalidParams

__all__ = [
    "ASKABLE",
    "INPUT_REQUIRED",
    "INPUT_REQUIRED_METHODS",
    "MAX_STATE_CHARS",
    "RequestStateCodec",
    "binding_of",
    "check_answer",
    "input_request",
    "input_required_result",
    "missing_capabilities",
    "read_input_responses",
    "required_capabilities",
]

INPUT_REQUIRED = "input_required"
# What a server may ask its client, and the client capability each needs.
ASKABLE: dict[str, str] = {
    m.SAMPLING_CREATE_MESSAGE: "sampling",
    m.ELICITATION_CREATE: "elicitation",
    m.ROOTS_LIST: "roots",
}
# The requests a 2026-07-28 server may answer with ``input_required`` (tasks/result is the
# tasks extension's); any other must complete or fail.
INPUT_REQUIRED_METHODS = frozenset({m.TOOLS_CALL, m.PROMPTS_GET, m.RESOURCES_READ,
                                    m.TASKS_RESULT})
# The longest ``requestState`` issued or accepted (characters): the answers of every round
# ride in it, so a client cannot make the server carry more than this from round to round.
MAX_STATE_CHARS = 256 * 1024
_STATE_VERSION = "v1"
_ELICITATION_ACTIONS = ("accept", "decline", "cancel")
# Params that change from round to round of one request, so they are left out of its binding.
_ROUND_PARAMS = ("_meta", "inputResponses", "requestState")


# ------------------------------------------------------------------ capabilities

def required_capabilities(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The client capabilities asking ``method`` with ``params`` needs, as a
    ``ClientCapabilities`` object (``{"sampling": {}}``, ``{"elicitation": {"url": {}}}``).

    Raises:
        ValueError: ``method`` is nothing a server may ask its client.
    """
    name = ASKABLE.get(method)
    if name is None:
        raise ValueError(f"{method} is not a request a server may send its client")
    if method == m.ELICITATION_CREATE:
        mode = params.get("mode", "form")
        return {name: {"url" if mode == "url" else "form": {}}}
    if method == m.SAMPLING_CREATE_MESSAGE and ("tools" in params or "toolChoice" in params):
        return {name: {"tools": {}}}
    return {name: {}}


def missing_capabilities(method: str, params: Mapping[str, Any],
                         declared: Mapping[str, Any]) -> dict[str, Any] | None:
    """What of :func:`required_capabilities` the client's ``declared`` capabilities lack;
    ``None`` when it may be asked.

    An ``elicitation`` declared as ``{}`` supports form mode only (what clients sent before
    the modes existed); sampling with tools needs ``sampling.tools``.
    """
    needed = required_capabilities(method, params)
    name, sub = next(iter(needed.items()))
    have = declared.get(name)
    if not isinstance(have, Mapping):
        return needed
    if not sub:
        return None
    feature = next(iter(sub))
    if feature in have or (name == "elicitation" and feature == "form" and not have):
        return None
    return needed


# ------------------------------------------------------------------ answers

def check_answer(method: str, answer: Any) -> str | None:
    """Why ``answer`` is not a result of ``method`` a server can use; ``None`` when it is.

    Checked: the fields a handler reads (a sampling reply's role and content, an elicitation's
    action and content, the roots' URIs), not every field the schema lists.
    """
    if not isinstance(answer, Mapping):
        return "must be an object"
    if method == m.SAMPLING_CREATE_MESSAGE:
        if not isinstance(answer.get("role"), str):
            return 'a sampling result needs a "role" string'
        if not isinstance(answer.get("content"), (Mapping, list)):
            return 'a sampling result needs "content"'
    elif method == m.ELICITATION_CREATE:
        if answer.get("action") not in _ELICITATION_ACTIONS:
            return 'an elicitation result needs "action": accept, decline or cancel'
        if "content" in answer and not isinstance(answer["content"], Mapping):
            return 'an elicitation result\'s "content" must be an object'
    elif method == m.ROOTS_LIST:
        roots = answer.get("roots")
        if not isinstance(roots, list) or not all(
                isinstance(r, Mapping) and isinstance(r.get("uri"), str) for r in roots):
            return 'a roots result needs "roots": a list of objects with a "uri"'
    return None


def read_input_responses(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``inputResponses`` of a retried request (``{}`` when it has none).

    Raises:
        InvalidParams: ``inputResponses`` is present but not an object of objects.
    """
    if "inputResponses" not in params:
        return {}
    responses = params["inputResponses"]
    if not isinstance(responses, dict):
        raise InvalidParams('Invalid params: "inputResponses" must be an object')
    for key, value in responses.items():
        if not isinstance(value, dict):
            raise InvalidParams(f'Invalid params: "inputResponses" entry {key[:100]!r} '
                                "must be an object")
    return responses


# ------------------------------------------------------------------ the result

def input_request(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of ``inputRequests``: the request the client is to answer."""
    return {"method": method, "params": dict(params)}


def input_required_result(requests: Mapping[str, dict[str, Any]], state: str,
                          server_info: Mapping[str, Any]) -> dict[str, Any]:
    """An ``InputRequiredResult`` asking ``requests`` (keyed), carrying ``state``."""
    return {
        "resultType": INPUT_REQUIRED,
        "inputRequests": dict(requests),
        "requestState": state,
        "_meta": {SERVER_INFO_META: dict(server_info)},
    }


# ------------------------------------------------------------------ the state

def binding_of(method: str, params: Mapping[str, Any]) -> str:
    """A digest naming one request across its rounds: its method and the params that stay
    the same from round to round (the tool and its arguments, the prompt, the URI)."""
    salient = {k: v for k, v in params.items() if k not in _ROUND_PARAMS}
    canonical = orjson.dumps([method, salient], option=orjson.OPT_SORT_KEYS,
                             default=str)
    return hashlib.sha256(canonical).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class RequestStateCodec:
    """Seals and opens ``requestState`` with one server's secret.

    Attributes:
        secret: the HMAC key; random per server unless the servers behind one address must
            accept each other's states (then they share it).
        ttl: seconds a state stays valid after it is issued.
    """

    secret: bytes
    ttl: float = 3600.0

    @classmethod
    def random(cls, ttl: float = 3600.0) -> RequestStateCodec:
        """A codec with a fresh 256-bit secret."""
        return cls(secrets.token_bytes(32), ttl)

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, payload.encode("ascii"), hashlib.sha256).digest())

    def seal(self, binding: str, answers: Mapping[str, Any], now: float) -> str:
        """The state carrying ``answers`` for the request ``binding`` names, issued at ``now``
        (seconds since the epoch).

        Raises:
            InvalidParams: the answers are too large to carry (the client sent them).
        """
        body = {"b": binding, "exp": int(now + self.ttl), "a": answers}
        payload = _b64(orjson.dumps(body, default=str))
        state = f"{_STATE_VERSION}.{payload}.{self._mac(payload)}"
        if len(state) > MAX_STATE_CHARS:
            raise InvalidParams(f"Invalid params: the input given so far exceeds the "
                                f"{MAX_STATE_CHARS} characters a requestState may carry")
        return state

    def open(self, state: Any, binding: str, now: float) -> dict[str, dict[str, Any]]:
        """The answers ``state`` carries, once it is proven ours, current, and issued for
        the request ``binding`` names.

        Raises:
            InvalidParams: it is not a string, too long, malformed, forged or altered,
                expired, or issued for another request.
        """
        if not isinstance(state, str):
            raise InvalidParams('Invalid params: "requestState" must be a string')
        if len(state) > MAX_STATE_CHARS:
            raise InvalidParams("Invalid params: requestState is too long")
        version, _, rest = state.partition(".")
        payload, _, mac = rest.partition(".")
        if version != _STATE_VERSION or not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidParams("Invalid params: requestState failed its integrity check")
        try:
            body = orjson.loads(_unb64(payload))
        except (binascii.Error, ValueError):
            raise InvalidParams("Invalid params: requestState is malformed") from None
        if not isinstance(body, dict) or not isinstance(body.get("a"), dict):
            raise InvalidParams("Invalid params: requestState is malformed")
        if body.get("b") != binding:
            raise InvalidParams("Invalid params: requestState belongs to another request")
        expires = body.get("exp")
        if not isinstance(expires, int) or expires < now:
            raise InvalidParams("Invalid params: requestState has expired; send the request "
                                "again without it")
        answers: dict[str, dict[str, Any]] = body["a"]
        return answers
