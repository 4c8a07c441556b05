"""Tool input validation: the quick check never says yes where jsonschema says no, and the
messages are jsonschema's."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_multi.server.tools import ALL_TOOLS
from mcp_multi.server.tools.validation import InputValidator, compile_quick_check

SCHEMAS: list[dict[str, Any]] = [t.input_schema for t in ALL_TOOLS.values()] + [
    {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 10},
                                      "x": {"type": "number", "maximum": 1.5,
                                            "exclusiveMinimum": -2},
                                      "b": {"type": "boolean"},
                                      "c": {"enum": ["red", "green"]},
                                      "s": {"type": "string", "minLength": 2, "maxLength": 3}},
     "required": ["n"], "additionalProperties": False},
    {"type": "object", "properties": {"any": {}, "yes": True, "nul": {"type": "null"}}},
]

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-20, 20) | st.floats(allow_nan=True)
    | st.sampled_from(["", "a", "ab", "abc", "abcd", "red", "green", "ü" * 3]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=5)
KEYS = st.sampled_from(["message", "timezone", "expression", "path", "command", "timeout",
                        "n", "x", "b", "c", "s", "any", "yes", "nul", "other"])
ARGUMENTS = st.dictionaries(KEYS, VALUES, max_size=5)


@settings(max_examples=400, deadline=None)
@given(index=st.integers(0, len(SCHEMAS) - 1), arguments=ARGUMENTS)
def test_the_quick_check_never_accepts_what_jsonschema_refuses(index: int,
                                                               arguments: dict[str, Any]
                                                               ) -> None:
    schema = SCHEMAS[index]
    quick = compile_quick_check(schema)
    assert quick is not None
    if quick(arguments):
        assert jsonschema.Draft202012Validator(schema).is_valid(arguments)


def test_the_quick_check_says_yes_to_ordinary_arguments() -> None:
    quick = compile_quick_check(ALL_TOOLS["echo"].input_schema)
    assert quick is not None
    assert quick({"message": "hi"})
    assert not quick({})
    assert not quick({"message": 3})


def test_schemas_beyond_the_subset_get_no_quick_check() -> None:
    for schema in ({"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}},
                   {"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
                   {"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}},
                   {"type": "object", "anyOf": [{"required": ["a"]}]},
                   {"type": "object", "properties": {"a": {"enum": [1, True]}}},
                   {"type": "object", "$schema": "http://json-schema.org/draft-07/schema#"},
                   {"type": "array"}):
        assert compile_quick_check(schema) is None


def test_violations_are_named_by_field_either_way() -> None:
    quick_schema = SCHEMAS[-2]
    slow_schema = {**quick_schema, "properties": {**quick_schema["properties"],
                                                  "p": {"type": "string", "pattern": "^a"}}}
    for schema in (quick_schema, slow_schema):
        validator = InputValidator(schema)
        assert validator.errors({"n": 3}, 200) == []
        assert validator.errors({"n": 11, "s": "a"}, 200) == [
            "n: 11 is greater than the maximum of 10", "s: 'a' is too short"]
        assert validator.errors({"n": 1.0}, 200) == []  # an integral float is an integer


def test_accepts_is_sure_or_silent() -> None:
    """``accepts`` is the quick check: True only for what is certainly valid, and False for
    anything a schema without a quick check gets (``errors`` then decides)."""
    quick = InputValidator(ALL_TOOLS["echo"].input_schema)
    assert quick.accepts({"message": "hi"})
    assert not quick.accepts({"message": 3}) and quick.errors({"message": 3}, 200)
    slow = InputValidator({"type": "object", "properties": {"p": {"pattern": "^a"}}})
    assert not slow.accepts({"p": "abc"})
    assert slow.errors({"p": "abc"}, 200) == []
    assert slow.errors({"p": "b"}, 200) == ["p: 'b' does not match '^a'"]


def test_required_names_are_all_needed() -> None:
    quick = compile_quick_check({"type": "object", "required": ["a", "b"],
                                 "properties": {"a": {"type": "string"}}})
    assert quick is not None
    assert quick({"a": "x", "b": None})
    assert not quick({"a": "x"})
    assert not quick({"b": 1})
