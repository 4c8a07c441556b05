"""``--profile conformance``: every fixture the official conformance suite's server scenarios
call by name, gathered from one module per area."""

from __future__ import annotations

from ..tools import Tool
from . import Profile, ask_fixtures, combine, content_fixtures, task_fixtures

__all__ = ["profile"]


def profile() -> Profile:
    tools: list[Tool] = []
    tools += ask_fixtures.TOOLS
    tools += task_fixtures.TOOLS
    parts = [content_fixtures.profile()]
    return combine("conformance", *parts,
                   Profile("", tools=tuple(tools), prompts=ask_fixtures.PROMPTS))
