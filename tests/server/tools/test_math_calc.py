"""The math_calc tool: the seed's outputs, a closed syntax, and bounded work."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_multi.server.settings import ServerSettings
from mcp_multi.server.tools import ToolContext, ToolError
from mcp_multi.server.tools.math_calc import (
    MAX_EXPRESSION_LENGTH,
    MAX_INT_DIGITS,
    MAX_NESTING,
    TOOL,
    evaluate,
)


def _refusal(expression: str) -> str:
    with pytest.raises(ToolError) as err:
        evaluate(expression)
    return str(err.value)


@pytest.mark.parametrize(
    ("expression", "text"),
    [
        ("2 + 2 * 3", "2 + 2 * 3 = 8"),
        ("2 + 2", "2 + 2 = 4"),
        ("10 * 5", "10 * 5 = 50"),
        ("100 / 4", "100 / 4 = 25.0"),
    ],
)
async def test_seed_results(tmp_path: Path, expression: str, text: str) -> None:
    ctx = ToolContext(settings=ServerSettings(root=tmp_path))
    result = await TOOL.handler({"expression": expression}, ctx)
    assert result == {"content": [{"type": "text", "text": text}]}


async def test_surrounding_whitespace_is_dropped(tmp_path: Path) -> None:
    ctx = ToolContext(settings=ServerSettings(root=tmp_path))
    result = await TOOL.handler({"expression": "  1 + 1\n"}, ctx)
    assert result["content"][0]["text"] == "1 + 1 = 2"


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("2 ** 10", 1024),
        ("2 ** -2", 0.25),
        ("-2 ** 2", -4),
        ("+(3 - 5)", -2),
        ("(1 + 2) * (3 + 4)", 21),
        ("1.5e3 / 3", 500.0),
        ("abs(-3)", 3),
        ("round(2.567, 2)", 2.57),
        ("round(2.5)", 2),
        ("round(1234, -2)", 1200),
        ("min(4, 2, 8)", 2),
        ("max(4, 2, 8)", 8),
        ("sqrt(16)", 4.0),
        ("floor(2.7)", 2),
        ("ceil(2.1)", 3),
        ("exp(0)", 1.0),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("sin(0) + cos(0) + tan(0)", 1.0),
        ("pi", math.pi),
        ("2 ** 13000 % 1000", 2**13000 % 1000),
    ],
)
def test_arithmetic_and_functions(expression: str, value: float) -> None:
    result = evaluate(expression)
    assert result == value
    assert type(result) is type(value)


def test_invalid_name_as_the_brief_says() -> None:
    assert _refusal("invalid") == "Invalid expression 'invalid': unknown name 'invalid'"


@pytest.mark.parametrize("expression", ["1 / 0", "1 // 0", "1 % 0", "1.0 / 0", "log(2, 1)"])
def test_division_by_zero(expression: str) -> None:
    assert _refusal(expression) == "Division by zero"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("abs.__class__", "attribute access not allowed"),
        ("(1).real", "attribute access not allowed"),
        ("'a' * 10", "strings not allowed"),
        ("f'{1}'", "strings not allowed"),
        ("b'x'", "strings not allowed"),
        ("[x for x in (1, 2)]", "comprehensions not allowed"),
        ("(x for x in (1,))", "comprehensions not allowed"),
        ("lambda: 1", "lambda not allowed"),
        ("__import__('os')", "unknown function '__import__'"),
        ("eval('1')", "unknown function 'eval'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("(1, 2)", "tuples not allowed"),
        ("[1][0]", "subscripts not allowed"),
        ("[1]", "lists not allowed"),
        ("{1: 2}", "dicts not allowed"),
        ("1 < 2", "comparisons not allowed"),
        ("1 and 2", "boolean operators not allowed"),
        ("1 if 1 else 2", "conditional expressions not allowed"),
        ("(x := 1)", "assignment not allowed"),
        ("1 << 2", "shifts not allowed"),
        ("1 ^ 2", "bitwise operators not allowed"),
        ("~1", "bitwise operators not allowed"),
        ("not 1", "'not' not allowed"),
        ("max(1, 2, key=abs)", "keyword arguments not allowed"),
        ("max(*(1, 2))", "starred arguments not allowed"),
        ("abs", "'abs' is a function; call it, as in abs(x)"),
        ("True", "only real numbers are allowed"),
        ("None", "only real numbers are allowed"),
        ("1j", "only real numbers are allowed"),
        ("...", "only real numbers are allowed"),
        ("2 +", "syntax error"),
        ("1; 2", "syntax error"),
        ("x = 1", "syntax error"),
        ("import os", "syntax error"),
    ],
)
def test_only_arithmetic_is_accepted(expression: str, reason: str) -> None:
    assert _refusal(expression) == f"Invalid expression {expression!r}: {reason}"


def test_empty_expression() -> None:
    assert _refusal("   ") == "Invalid expression: empty expression"


def test_too_long_expression() -> None:
    expression = "1+" * (MAX_EXPRESSION_LENGTH // 2) + "1"
    assert _refusal(expression).endswith(f"longer than {MAX_EXPRESSION_LENGTH} characters")


def test_nesting_is_bounded_before_evaluation() -> None:
    assert _refusal("-" * 500 + "1").endswith("expression is nested too deeply")
    assert _refusal("abs(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1)).endswith(
        "expression is nested too deeply"
    )
    assert evaluate("abs(" * 30 + "-1" + ")" * 30) == 1


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9**9",
        "9**9**9",
        "10 ** 5000",
        "2 ** 13000 * 2 ** 13000",
        "(2 ** 13000) ** 2",
        "10 ** 3000 * 10 ** 3000 * 10 ** 3000",
        "-(10 ** 4001)",
    ],
)
def test_integer_size_is_bounded_and_refused_fast(expression: str) -> None:
    started = time.perf_counter()
    assert _refusal(expression) == f"Result too large (more than {MAX_INT_DIGITS} digits)"
    assert time.perf_counter() - started < 0.5


def test_largest_allowed_integer_is_printable() -> None:
    value = evaluate(f"10 ** {MAX_INT_DIGITS - 1}")
    assert len(str(value)) == MAX_INT_DIGITS


@pytest.mark.parametrize(
    "expression", ["round(5, -10 ** 6)", "round(1.5, 10 ** 9)", "round(1, 2.5)"]
)
def test_round_digits_are_bounded(expression: str) -> None:
    started = time.perf_counter()
    assert _refusal(expression).startswith("round() digits must be")
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "expression", ["2.0 ** 10000", "exp(1000)", "floor(1e308 * 10)", "10 ** 400 / 10 ** -1",
                   "1e308 * 10", "1e999", "-1e308 - 1e308", "1e308 * 10 - 1e308 * 10"]
)
def test_float_overflow(expression: str) -> None:
    assert _refusal(expression) == "Result too large"


def test_complex_results_are_refused() -> None:
    assert _refusal("(-8) ** 0.5") == "Result is not a real number"


@pytest.mark.parametrize("expression", ["sqrt(-1)", "log(0)", "log(-1)"])
def test_domain_errors(expression: str) -> None:
    assert _refusal(expression) == f"Math error in {expression!r}: math domain error"


def test_wrong_arity_is_an_invalid_expression() -> None:
    assert _refusal("min()").startswith("Invalid expression 'min()': ")
    assert _refusal("sqrt(1, 2)").startswith("Invalid expression 'sqrt(1, 2)': ")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_gives_a_number_or_a_tool_error(expression: str) -> None:
    try:
        result = evaluate(expression)
    except ToolError:
        return
    assert type(result) in (int, float)


_ints = st.integers(min_value=-1000, max_value=1000).map(str)
_arith = st.recursive(
    _ints,
    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_arith)
def test_agrees_with_python_on_integer_arithmetic(expression: str) -> None:
    # The test itself may use Python's own evaluator as the reference.
    assert evaluate(expression) == eval(expression)


def test_math_calc_listing() -> None:
    wire = TOOL.to_wire()
    assert wire["description"] == "Perform basic math calculations"
    schema = wire["inputSchema"]
    assert schema["required"] == ["expression"]
    assert schema["properties"]["expression"]["maxLength"] == MAX_EXPRESSION_LENGTH
    assert wire["annotations"]["readOnlyHint"] is True
