"""Tool input validation: a quick yes for the common case, jsonschema for the rest.

Theory of operation: a full JSON Schema validator (``jsonschema``'s Draft 2020-12) walks a
schema through its keyword table, its type checker and its reference resolver for every
instance; for the flat argument objects tools take, that walk costs more than the tool. Most
tool schemas use a small subset: an object, its properties each of one primitive type with
bounds on length or value, ``required``, ``additionalProperties: false``, ``enum``.

:func:`compile_quick_check` turns such a schema, once, into a plain function that answers
*"certainly valid"* (True) or *"not sure"* (False). Only the full validator ever says what
is wrong: :class:`InputValidator` asks the quick check first and, on anything but a sure
yes, runs ``jsonschema`` as before. The quick check may therefore be conservative (a float
``1.0`` for an ``integer`` is left to jsonschema, which accepts it), but it must never say
yes to an instance the full validator refuses; a schema it does not understand completely
(any keyword outside its subset, ``$ref``, combinators, formats…) gets no quick check at all.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema

from mcp_multi.protocol.text import clip

__all__ = ["InputValidator", "compile_quick_check"]

QuickCheck = Callable[[Any], bool]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"

# Keywords that only annotate: they never make an instance invalid.
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "deprecated",
                          "readOnly", "writeOnly", "$comment", "x-mcp-header"})
# The keywords a property schema may use for the quick check, beyond the annotations.
_PROPERTY_KEYWORDS = frozenset({"type", "enum", "minLength", "maxLength", "minimum",
                                "maximum", "exclusiveMinimum", "exclusiveMaximum"}) | _ANNOTATIONS
_OBJECT_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties",
                              "$schema"}) | _ANNOTATIONS


def _is_number(value: Any) -> bool:
    # bool is an int in Python but not a number in JSON Schema.
    return type(value) is int or type(value) is float


_TYPES: dict[str, QuickCheck] = {
    "string": lambda value: type(value) is str,
    "boolean": lambda value: type(value) is bool,
    "integer": lambda value: type(value) is int,  # 1.0 is left to jsonschema
    "number": _is_number,
    "null": lambda value: value is None,
}


def _bound(value: Any) -> bool:
    return _is_number(value) and value == value  # NaN bounds nothing: not understood


def _length_check(size: int, *, longest: bool) -> QuickCheck:
    """``maxLength`` (``longest``) or ``minLength``: it bounds strings, nothing else."""
    if longest:
        return lambda value: type(value) is not str or len(value) <= size
    return lambda value: type(value) is not str or len(value) >= size


# The bounds on numbers: the keyword, and whether a value passes it (value, limit).
_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": operator.ge,
    "maximum": operator.le,
    "exclusiveMinimum": operator.gt,
    "exclusiveMaximum": operator.lt,
}


def _value_check(limit: float, passes: Callable[[Any, Any], bool]) -> QuickCheck:
    """A bound on numbers (values of other types pass it, as in JSON Schema)."""
    return lambda value: not _is_number(value) or passes(value, limit)


def _compile_property(schema: Any) -> QuickCheck | None:
    """A quick check of one property's value, or None when its schema is outside the subset."""
    if schema is True or (isinstance(schema, Mapping) and not schema):
        return lambda _value: True
    if not isinstance(schema, Mapping) or not set(schema) <= _PROPERTY_KEYWORDS:
        return None
    checks: list[QuickCheck] = []
    kind = schema.get("type")
    if kind is not None:
        if not isinstance(kind, str) or kind not in _TYPES:
            return None
        checks.append(_TYPES[kind])
    if "enum" in schema:
        options = schema["enum"]
        # Only strings: JSON equality of numbers (1 == 1.0, True != 1) differs from Python's.
        if not isinstance(options, list) or not all(type(o) is str for o in options):
            return None
        allowed = frozenset(options)
        checks.append(lambda value: type(value) is str and value in allowed)
    for key in ("minLength", "maxLength"):
        if key in schema:
            size = schema[key]
            if type(size) is not int or size < 0:
                return None
            checks.append(_length_check(size, longest=key == "maxLength"))
    for key, compare in _BOUNDS.items():
        if key in schema:
            limit = schema[key]
            if not _bound(limit):
                return None
            checks.append(_value_check(limit, compare))
    if not checks:
        return lambda _value: True
    if len(checks) == 1:
        return checks[0]
    return lambda value: all(check(value) for check in checks)


def compile_quick_check(schema: Any) -> QuickCheck | None:
    """A function telling which argument objects ``schema`` certainly accepts, or None when
    the schema uses more than the quick check understands (see the module docstring)."""
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        return None
    if not set(schema) <= _OBJECT_KEYWORDS:
        return None
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if (not isinstance(properties, Mapping) or not isinstance(required, list)
            or not all(isinstance(name, str) for name in required) or extra not in (True, False)
            or schema.get("$schema", _DRAFT) != _DRAFT):
        return None
    checks: dict[str, QuickCheck] = {}
    for name, sub in properties.items():
        check = _compile_property(sub)
        if check is None:
            return None
        checks[name] = check
    needed = frozenset(required)
    closed = extra is False

    def quick(arguments: Any) -> bool:
        if type(arguments) is not dict or not arguments.keys() >= needed:
            return False
        for name, value in arguments.items():
            check = checks.get(name)
            if check is None:
                if closed:
                    return False
            elif not check(value):
                return False
        return True

    return quick


def _unsure(_arguments: Any) -> bool:
    return False


class InputValidator:
    """One tool's input schema, compiled once: the quick check where it applies, and the
    full Draft 2020-12 validator for everything else and for every message."""

    __slots__ = ("_full", "accepts")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._full = jsonschema.Draft202012Validator(schema)
        # Whether the arguments are certainly valid (the quick check); False when unsure,
        # and then :meth:`errors` says.
        self.accepts: QuickCheck = compile_quick_check(schema) or _unsure

    def errors(self, arguments: dict[str, Any], shown: int) -> list[str]:
        """Readable schema violations of ``arguments``, each naming the field and clipped to
        ``shown`` characters, sorted; empty when valid."""
        if self.accepts(arguments):
            return []
        errors = []
        for err in self._full.iter_errors(arguments):
            where = "/".join(str(p) for p in err.absolute_path) or "arguments"
            errors.append(clip(f"{where}: {err.message}", shown))
        return sorted(errors)
