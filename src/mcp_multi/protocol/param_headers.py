"""``x-mcp-header`` tool annotations and the ``Mcp-Param-*`` headers they ask for (2026-07-28).

Theory of operation: a server may mark parameters of a tool's ``inputSchema`` with
``"x-mcp-header": "Name"``; a client calling that tool over Streamable HTTP then mirrors the
argument's value into an ``Mcp-Param-Name`` header so intermediaries can route on it. The
client checks each tool's annotations once, when it lists the tools
(:func:`tool_param_headers`), and must leave out a tool whose annotations break the rules:

- the name is not empty, is an HTTP token (RFC 9110 ``tchar``: visible ASCII without
  separators, so no space, colon, control or non-ASCII character), and is unique among the
  tool's annotations without regard to case;
- it sits on a property of type ``string``, ``integer`` or ``boolean`` (never ``number``,
  ``object``, ``array`` or ``null``), reached from the schema's root through ``properties``
  keys only (not through ``items``, ``allOf``/``anyOf``/``oneOf``/``not``,
  ``if``/``then``/``else`` or ``$ref``).

A call then turns its arguments into headers with :func:`param_header_values`: the value at
each annotated path, omitted when absent or ``null``; strings as they are, integers in
decimal, booleans ``true``/``false``; a value that cannot travel verbatim (non-ASCII, control
characters, edge whitespace, or the sentinel itself) as ``=?base64?…?=``
(:func:`~mcp_multi.protocol.envelope.encode_header_value`).

The schema is only read, never changed: what the server sent is what the caller sees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .envelope import encode_header_value

__all__ = [
    "HEADER_ANNOTATION",
    "PARAM_HEADER_PREFIX",
    "InvalidToolHeaders",
    "ParamHeader",
    "param_header_values",
    "tool_param_headers",
]

HEADER_ANNOTATION = "x-mcp-header"
PARAM_HEADER_PREFIX = "Mcp-Param-"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PRIMITIVES = ("string", "integer", "boolean")
# Keywords under which an annotation is not statically reachable from the root.
_NESTING = ("items", "prefixItems", "additionalProperties", "patternProperties", "allOf",
            "anyOf", "oneOf", "not", "if", "then", "else", "$defs", "definitions",
            "dependentSchemas", "contains", "unevaluatedProperties", "unevaluatedItems")
_SAFE_INTEGER = 2**53 - 1
_MAX_DEPTH = 32


class InvalidToolHeaders(ValueError):
    """A tool's ``x-mcp-header`` annotations break the rules (the message says how)."""


@dataclass(frozen=True, slots=True)
class ParamHeader:
    """One annotated parameter: its path of ``properties`` keys, and the header it fills."""

    path: tuple[str, ...]
    name: str
    kind: str

    @property
    def header(self) -> str:
        return PARAM_HEADER_PREFIX + self.name


def tool_param_headers(tool: Mapping[str, Any]) -> tuple[ParamHeader, ...]:
    """The ``Mcp-Param-*`` headers ``tool`` asks for (empty for the common tool without any).

    Raises:
        InvalidToolHeaders: an annotation breaks a rule; the tool must be left out.
    """
    schema = tool.get("inputSchema")
    if not isinstance(schema, Mapping):
        return ()
    found: list[ParamHeader] = []
    _walk(schema, (), True, found, 0)
    seen: set[str] = set()
    for header in found:
        folded = header.name.lower()
        if folded in seen:
            raise InvalidToolHeaders(f"x-mcp-header {header.name!r} appears more than once")
        seen.add(folded)
    return tuple(found)


def _walk(schema: Mapping[str, Any], path: tuple[str, ...], reachable: bool,
          found: list[ParamHeader], depth: int) -> None:
    """Collect the annotations under ``schema``; ``reachable``: only ``properties`` keys led
    here from the root."""
    if depth > _MAX_DEPTH:
        raise InvalidToolHeaders("the inputSchema nests too deep to check its x-mcp-header")
    if HEADER_ANNOTATION in schema:
        if not path:
            raise InvalidToolHeaders("x-mcp-header sits on the schema root")
        found.append(_annotation(schema, path, reachable))
    for key, value in schema.items():
        if key == "properties" and isinstance(value, Mapping):
            for name, child in value.items():
                if isinstance(child, Mapping):
                    _walk(child, (*path, str(name)), reachable, found, depth + 1)
        elif key in _NESTING or key == "$ref":
            for child in _subschemas(value):
                _walk(child, (*path, key), False, found, depth + 1)


def _subschemas(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        if all(isinstance(v, Mapping) for v in value.values()) and value and \
                not any(k in value for k in ("type", "properties", HEADER_ANNOTATION)):
            return list(value.values())  # a map of schemas ($defs, patternProperties)
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _annotation(schema: Mapping[str, Any], path: tuple[str, ...],
                reachable: bool) -> ParamHeader:
    name = schema[HEADER_ANNOTATION]
    where = ".".join(path)
    if not isinstance(name, str) or not name:
        raise InvalidToolHeaders(f"x-mcp-header of {where!r} is empty or not a string")
    if not _TOKEN.fullmatch(name):
        raise InvalidToolHeaders(f"x-mcp-header {name!r} of {where!r} is not an HTTP token "
                                 "(no spaces, colons, control or non-ASCII characters)")
    if not reachable:
        raise InvalidToolHeaders(f"x-mcp-header {name!r} is not reachable through "
                                 "properties alone")
    kind = schema.get("type")
    if kind not in _PRIMITIVES:
        raise InvalidToolHeaders(f"x-mcp-header {name!r} is on a parameter of type "
                                 f"{kind!r}; only string, integer and boolean may carry one")
    return ParamHeader(path, name, str(kind))


def param_header_values(headers: tuple[ParamHeader, ...],
                        arguments: Mapping[str, Any] | None) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers of one call with ``arguments``, encoded for the wire."""
    values: dict[str, str] = {}
    for header in headers:
        value: Any = arguments
        for key in header.path:
            value = value.get(key) if isinstance(value, Mapping) else None
        text = _header_text(value)
        if text is not None:
            values[header.header] = encode_header_value(text)
    return values


def _header_text(value: Any) -> str | None:
    """A value as the header's text; ``None`` for no header (absent, null, not primitive)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) <= _SAFE_INTEGER else None
    if isinstance(value, float) and value.is_integer() and abs(value) <= _SAFE_INTEGER:
        return str(int(value))
    if isinstance(value, str):
        return value
    return None
