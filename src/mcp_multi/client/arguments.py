"""Parsing a shell line's words: comments, JSON arguments, and the error that says what is
wrong with a line."""

from __future__ import annotations

import json
from typing import Any

from ..protocol.jsonrpc import dumps

__all__ = ["ArgumentError", "parse_json_args", "strip_comment"]


class ArgumentError(ValueError):
    """A command line the shell cannot parse; the message says what is wrong."""


def strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` (a ``#`` at the start or after a space, outside strings).

    The seed's examples carry such comments (``tools math    # Should only show math_calc``).
    """
    in_string = escaped = False
    for index, char in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.strip()


def parse_json_args(text: str) -> dict[str, Any]:
    """The JSON object of a ``call``/``broadcast`` line (``{}`` when empty).

    Raises:
        ArgumentError: not JSON (the message says where it broke), not an object, or
            holding what JSON-RPC cannot carry.
    """
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"column {exc.colno}"
        if exc.lineno != 1:
            where = f"line {exc.lineno} {where}"
        raise ArgumentError(f"invalid JSON arguments at {where}: {exc.msg}") from None
    except RecursionError:
        raise ArgumentError("invalid JSON arguments: nested too deeply") from None
    if not isinstance(value, dict):
        raise ArgumentError(f"JSON arguments must be an object, not {type(value).__name__}")
    try:
        dumps(value)  # what the wire cannot carry (integers over 64 bits, deep nesting)
    except TypeError as exc:
        raise ArgumentError(f"JSON arguments cannot be sent: {exc}") from None
    return value
