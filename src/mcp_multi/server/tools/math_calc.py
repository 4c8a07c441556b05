"""``math_calc``: evaluate one arithmetic expression, safely.

Nothing here calls :func:`eval`. The expression is parsed with :mod:`ast`, checked against a
whitelist (numbers, ``+ - * / // % **``, unary signs, parentheses, calls of a few math
functions, the names ``pi`` and ``e``), and then evaluated by ``simpleeval`` configured with
only those operators, functions and names. The whitelist check comes first so that every
refusal has one readable message and so that nesting depth is bounded before the recursive
evaluator runs.

Work is bounded too: an integer result may have at most :data:`MAX_INT_DIGITS` digits, a
power is refused *before* it is computed when its result would exceed that, and ``round``
refuses digit counts that would make it build a huge power of ten. Floats that overflow,
division by zero and math domain errors become :class:`ToolError` messages.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any, TypeVar

import simpleeval

from mcp_multi.protocol.methods import tool_result
from mcp_multi.server.tools import Tool, ToolContext, ToolError

__all__ = ["MAX_EXPRESSION_LENGTH", "MAX_INT_DIGITS", "MAX_NESTING", "TOOL", "evaluate"]

MAX_EXPRESSION_LENGTH = 1000
MAX_INT_DIGITS = 4000
MAX_NESTING = 100

# An int of at most this many bits has at most MAX_INT_DIGITS decimal digits.
_MAX_BITS = int(MAX_INT_DIGITS * math.log2(10))

Number = int | float
_T = TypeVar("_T")


def _checked(value: _T) -> _T:
    """``value``, or :class:`ToolError` if it is too large (an integer of too many digits, an
    infinite float) or not a real number."""
    if isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise ToolError(f"Result too large (more than {MAX_INT_DIGITS} digits)")
    if isinstance(value, float) and math.isinf(value):
        # Float arithmetic overflows to inf silently (only ** and math functions raise).
        raise ToolError("Result too large")
    if isinstance(value, complex):
        raise ToolError("Result is not a real number")
    return value


def _binary(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        return _checked(op(a, b))

    return apply


def _power(base: Any, exponent: Any) -> Any:
    # Estimate integer powers from a lower bound on their size, so that 9**9**9 is refused
    # at once instead of being computed and then measured.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and exponent * (abs(base).bit_length() - 1) > _MAX_BITS
    ):
        raise ToolError(f"Result too large (more than {MAX_INT_DIGITS} digits)")
    return _checked(base**exponent)


def _round(number: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(number)
    if not isinstance(ndigits, int):
        raise ToolError("round() digits must be an integer")
    # round(n, -k) computes 10**k; keep k within the integer size limit.
    if abs(ndigits) > MAX_INT_DIGITS:
        raise ToolError(f"round() digits must be between -{MAX_INT_DIGITS} and {MAX_INT_DIGITS}")
    return round(number, ndigits)


_OPERATORS: dict[type[ast.AST], Callable[..., Any]] = {
    ast.Add: _binary(operator.add),
    ast.Sub: _binary(operator.sub),
    ast.Mult: _binary(operator.mul),
    ast.Div: _binary(operator.truediv),
    ast.FloorDiv: _binary(operator.floordiv),
    ast.Mod: _binary(operator.mod),
    ast.Pow: _power,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": _round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "log": math.log,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
}

_NAMES: dict[str, float] = {"pi": math.pi, "e": math.e}

# Syntax nodes that may appear at all; anything else is refused by _check_syntax.
_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load, *_OPERATORS,
)

_REFUSED: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Compare: "comparisons",
    ast.BoolOp: "boolean operators",
    ast.IfExp: "conditional expressions",
    ast.Lambda: "lambda",
    ast.NamedExpr: "assignment",
    ast.JoinedStr: "strings",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Starred: "starred arguments",
    ast.keyword: "keyword arguments",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.BitAnd: "bitwise operators",
    ast.BitOr: "bitwise operators",
    ast.BitXor: "bitwise operators",
    ast.Invert: "bitwise operators",
    ast.LShift: "shifts",
    ast.RShift: "shifts",
    ast.MatMult: "matrix multiplication",
    ast.Not: "'not'",
}


def _make_evaluator() -> Any:
    evaluator = simpleeval.SimpleEval(
        operators=dict(_OPERATORS), functions=dict(_FUNCTIONS), names=dict(_NAMES)
    )
    # Defence in depth: even if _check_syntax let something through, simpleeval would refuse
    # every node type it has no handler for.
    evaluator.nodes = {t: h for t, h in evaluator.nodes.items() if t in _ALLOWED_NODES}
    return evaluator


# One shared evaluator: evaluation is synchronous and never awaits, so calls cannot interleave
# on the event loop.
_EVALUATOR = _make_evaluator()


def _check_syntax(tree: ast.AST) -> str | None:
    """Why ``tree`` is refused, or ``None`` when every node is on the whitelist."""
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return "expression is nested too deeply"
        if not isinstance(node, _ALLOWED_NODES):
            what = _REFUSED.get(type(node), f"{type(node).__name__} syntax")
            return f"{what} not allowed"
        if isinstance(node, ast.Constant) and type(node.value) not in (int, float):
            if isinstance(node.value, str | bytes):
                return "strings not allowed"
            return "only real numbers are allowed"
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                return "only calls of the built-in functions are allowed"
            if node.func.id not in _FUNCTIONS:
                return f"unknown function {node.func.id!r}"
            if node.keywords:
                return "keyword arguments not allowed"
            children: list[ast.AST] = list(node.args)
        else:
            if isinstance(node, ast.Name) and node.id not in _NAMES:
                if node.id in _FUNCTIONS:
                    return f"{node.id!r} is a function; call it, as in {node.id}(x)"
                return f"unknown name {node.id!r}"
            children = list(ast.iter_child_nodes(node))
        stack.extend((child, depth + 1) for child in children)
    return None


def evaluate(expression: str) -> Number:
    """The value of ``expression``.

    Raises:
        ToolError: the expression is not allowed arithmetic, or its evaluation fails (division
            by zero, domain error, result too large).
    """
    text = expression.strip()
    if not text:
        raise ToolError("Invalid expression: empty expression")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ToolError(f"Invalid expression: longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError):
        raise ToolError(f"Invalid expression {text!r}: syntax error") from None
    except (RecursionError, MemoryError):
        raise ToolError(f"Invalid expression {text!r}: expression is nested too deeply") from None
    reason = _check_syntax(tree)
    if reason is not None:
        raise ToolError(f"Invalid expression {text!r}: {reason}")
    try:
        result = _EVALUATOR.eval(text, previously_parsed=tree)
    except ZeroDivisionError:
        raise ToolError("Division by zero") from None
    except OverflowError:
        raise ToolError("Result too large") from None
    except ValueError as exc:
        raise ToolError(f"Math error in {text!r}: {exc}") from None
    except (TypeError, simpleeval.InvalidExpression) as exc:
        raise ToolError(f"Invalid expression {text!r}: {exc}") from None
    if not isinstance(result, int | float) or isinstance(result, bool):
        raise ToolError(f"Invalid expression {text!r}: the result is not a number")
    return _checked(result)


async def math_calc(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """``<expression> = <result>``, e.g. ``2 + 2 * 3 = 8`` or ``100 / 4 = 25.0``.

    Raises:
        ToolError: see :func:`evaluate`.
    """
    expression = str(arguments.get("expression", ""))
    result = evaluate(expression)
    return tool_result(f"{expression.strip()} = {result!r}")


TOOL = Tool(
    name="math_calc",
    title="Calculator",
    description="Perform basic math calculations",
    input_schema={
        "type": "object",
        "properties": {
            "expression": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_EXPRESSION_LENGTH,
                "description": "Arithmetic expression, e.g. '2 + 2 * 3' or 'sqrt(2) * pi'; "
                "operators + - * / // % **, functions abs round min max sqrt sin cos tan "
                "log exp floor ceil, constants pi e",
            },
        },
        "required": ["expression"],
    },
    handler=math_calc,
    at_once=True,
    annotations={"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
)
