"""Tool arguments mirrored into ``Mcp-Param-*`` HTTP headers (2026-07-28, ``x-mcp-header``).

Theory of operation: a tool may mark a property of its ``inputSchema`` with
``"x-mcp-header": "Region"``; a client calling it over Streamable HTTP then sends the argument's
value a second time, as ``Mcp-Param-Region``, so that a load balancer or gateway can route on it
without reading the body. Two components reading two sources of truth is exactly what an
attacker wants (the gateway routes on the header, the server acts on the body), so the server
refuses a request whose mirrored headers are missing, malformed or disagree with the body
(-32020, HTTP 400), the same rule as ``Mcp-Name`` in :mod:`.envelope`.

What an annotation may be (:func:`header_params` checks a schema once, when a tool is
registered or listed):

- a non-empty HTTP token (RFC 9110 ``1*tchar``), unique among the schema's annotations without
  regard to case;
- on a property of type ``string``, ``integer`` or ``boolean`` (not ``number``);
- on a property *statically reachable* from the root: through ``properties`` keys only, never
  through ``items``, ``oneOf``/``anyOf``/``allOf``/``not``, ``if``/``then``/``else`` or
  ``$ref``. An annotation anywhere else makes the whole tool definition invalid.

How a value travels: a string as it is, an integer in decimal, a boolean as ``true`` or
``false``; a value that is not a plain visible-ASCII header value (non-ASCII, control
characters, edge spaces, or the sentinel itself) as ``=?base64?…?=`` of its UTF-8 bytes.
A null or absent argument sends no header. The server compares after decoding, integers
numerically (``42.0`` is ``42``).

Both sides use this module: the server through :func:`check_param_headers`, a client through
:func:`param_headers`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .envelope import decode_header_value, encode_header_value
from .errors import HeaderMismatch
from .text import for_display

__all__ = [
    "ANNOTATION",
    "PARAM_HEADER_PREFIX",
    "HeaderAnnotationError",
    "HeaderParam",
    "check_param_headers",
    "header_params",
    "param_headers",
]

ANNOTATION = "x-mcp-header"
PARAM_HEADER_PREFIX = "Mcp-Param-"
_PREFIX_LOWER = PARAM_HEADER_PREFIX.lower()

# RFC 9110 token: 1*tchar.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What a field value may hold at all (RFC 9110 §5.5): visible ASCII, space and tab.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
# A decimal number as a header may spell an integer argument ("42", "-7", "42.0", "4.2e1").
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
# Longest numeric text compared; longer is no integer a client sends (2**53 has 16 digits).
_MAX_NUMBER_TEXT = 64
_TYPES = ("string", "integer", "boolean")
# JavaScript's safe integers: what an annotated integer argument may be.
_SAFE_INTEGER = 2**53 - 1

# JSON Schema keywords, by what their value holds: a map of names to subschemas, one
# subschema, or a list of them. Anything else (enum, const, default, examples, ...) is data,
# where a key that happens to read "x-mcp-header" is no annotation.
_NAMED_SUBSCHEMAS = frozenset({"properties", "patternProperties", "$defs", "definitions",
                               "dependentSchemas"})
_SUBSCHEMA = frozenset({"items", "additionalItems", "additionalProperties", "not", "if", "then",
                        "else", "contains", "propertyNames", "unevaluatedItems",
                        "unevaluatedProperties"})
_SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
# Deepest schema nesting walked: a schema is the server's own, but a client reads a peer's.
_MAX_DEPTH = 64


class HeaderAnnotationError(ValueError):
    """A tool's ``x-mcp-header`` annotations break the rules: the tool definition is invalid."""


@dataclass(frozen=True, slots=True)
class HeaderParam:
    """One annotated property: where its value sits in the arguments, and its header."""

    path: tuple[str, ...]
    name: str  # the annotation: the header is ``Mcp-Param-{name}``
    type: str  # string, integer or boolean

    @property
    def header(self) -> str:
        return PARAM_HEADER_PREFIX + self.name


def header_params(schema: Any) -> tuple[HeaderParam, ...]:
    """The annotated properties of a tool's ``inputSchema`` (empty when it has none).

    Raises:
        HeaderAnnotationError: an annotation is malformed, duplicated, on a type that cannot be
            mirrored, or where it is not statically reachable.
    """
    found: list[HeaderParam] = []
    _walk(schema, (), reachable=True, found=found, depth=0)
    seen: dict[str, str] = {}
    for param in found:
        key = param.name.lower()
        if key in seen:
            raise HeaderAnnotationError(
                f"{ANNOTATION} {param.name!r} is used twice (also as {seen[key]!r}); "
                "names must differ regardless of case")
        seen[key] = param.name
    return tuple(found)


def _walk(node: Any, path: tuple[str, ...], *, reachable: bool, found: list[HeaderParam],
          depth: int) -> None:
    if not isinstance(node, Mapping):
        return
    if depth > _MAX_DEPTH:
        raise HeaderAnnotationError(f"schema nests deeper than {_MAX_DEPTH} levels")
    if ANNOTATION in node:
        if not reachable or not path:
            where = "/".join(path) or "the schema root"
            raise HeaderAnnotationError(
                f"{ANNOTATION} at {where} is not on a property reachable through "
                "'properties' alone")
        found.append(_param(node, path))
    for key, value in node.items():
        if key in _NAMED_SUBSCHEMAS and isinstance(value, Mapping):
            for name, sub in value.items():
                _walk(sub, (*path, str(name)), reachable=reachable and key == "properties",
                      found=found, depth=depth + 1)
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            for sub in value:
                _walk(sub, path, reachable=False, found=found, depth=depth + 1)
        elif key in _SUBSCHEMA:
            _walk(value, path, reachable=False, found=found, depth=depth + 1)


def _param(node: Mapping[str, Any], path: tuple[str, ...]) -> HeaderParam:
    name = node[ANNOTATION]
    where = "/".join(path)
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise HeaderAnnotationError(
            f"{ANNOTATION} of {where} must be a non-empty HTTP token (letters, digits and "
            "!#$%&'*+-.^_`|~)")
    kind = node.get("type")
    if kind not in _TYPES:
        raise HeaderAnnotationError(
            f"{ANNOTATION} of {where} is on a property of type {kind!r}; only "
            f"{', '.join(_TYPES)} can be mirrored")
    return HeaderParam(path, name, kind)


def _value_at(arguments: Any, path: tuple[str, ...]) -> Any:
    """The argument at ``path``; ``None`` when absent (absent and null send no header)."""
    value = arguments
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def param_headers(params: Iterable[HeaderParam], arguments: Mapping[str, Any] | None
                  ) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers a client sends with ``arguments`` (the client side)."""
    headers: dict[str, str] = {}
    for param in params:
        text = _header_text(_value_at(arguments, param.path))
        if text is not None:
            headers[param.header] = encode_header_value(text)
    return headers


def _header_text(value: Any) -> str | None:
    """A value as its header's text; ``None`` for no header (absent, null, or nothing an
    annotation can carry, which the server then refuses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) <= _SAFE_INTEGER else None
    if isinstance(value, float) and value.is_integer() and abs(value) <= _SAFE_INTEGER:
        return str(int(value))
    if isinstance(value, str):
        return value
    return None


def check_param_headers(headers: Iterable[tuple[str, str]], params: Iterable[HeaderParam],
                        arguments: Any) -> None:
    """Check a ``tools/call``'s ``Mcp-Param-*`` headers against its arguments (the server side).

    ``params`` are the called tool's annotations (:func:`header_params`); headers that name
    no annotation are ignored, as intermediaries must forward what they do not know.

    Raises:
        HeaderMismatch: a header is repeated, carries characters a field value may not, is a
            malformed ``=?base64?…?=``, is missing while the body has the value, is present
            while the body has none, or disagrees with the body.
    """
    wanted = {param.name.lower(): param for param in params}
    sent: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if not key.startswith(_PREFIX_LOWER) or key[len(_PREFIX_LOWER):] not in wanted:
            continue
        if key in sent:
            raise HeaderMismatch(f"Header mismatch: {_shown(name)} appears more than once")
        sent[key] = value
    for param in wanted.values():
        _check_one(param, sent.get(_PREFIX_LOWER + param.name.lower()),
                   _value_at(arguments, param.path))


def _check_one(param: HeaderParam, raw: str | None, body: Any) -> None:
    where = "/".join(param.path)
    if body is None:
        if raw is not None:
            raise HeaderMismatch(
                f"Header mismatch: {param.header} is set but the arguments have no {where}")
        return
    if raw is None:
        raise HeaderMismatch(
            f"Header mismatch: {param.header} is required when the arguments carry {where}")
    if not _FIELD_VALUE.fullmatch(raw):
        raise HeaderMismatch(f"Header mismatch: {param.header} holds characters a header "
                             "value may not (encode them as =?base64?...?=)")
    text = decode_header_value(raw)
    if text is None:
        raise HeaderMismatch(
            f"Header mismatch: {param.header} is not valid =?base64?...?= ({_shown(raw)})")
    if not _agrees(text, body):
        raise HeaderMismatch(
            f"Header mismatch: {param.header} {_shown(text)} does not match the argument "
            f"{where} {_shown(repr(body))}")


def _agrees(text: str, body: Any) -> bool:
    """Whether header text ``text`` spells the argument ``body``."""
    if isinstance(body, bool):
        return text == ("true" if body else "false")
    if isinstance(body, str):
        return text == body
    if isinstance(body, (int, float)):
        if len(text) > _MAX_NUMBER_TEXT or not _NUMBER.fullmatch(text):
            return False
        try:
            return Decimal(text) == Decimal(repr(body)) and abs(body) <= _SAFE_INTEGER
        except InvalidOperation:
            return False
    return False  # an object or array cannot be mirrored: the header cannot match it


def _shown(text: str) -> str:
    """A peer's header text as an error message may quote it: short, escaped, quoted."""
    return f"'{for_display(text, 80)}'"
