"""Profiles: named sets of extra tools (and, later, resources and prompts) a server can add to
its own with ``--profile NAME``.

The seed's server (no profile) keeps exactly its five tools and their outputs. A profile adds
fixtures that a test suite expects by name: ``conformance`` holds everything the official
conformance suite's server scenarios call. Each area of the protocol contributes its fixtures
from a module of its own; :mod:`.conformance` gathers them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..tools import Tool

__all__ = ["PROFILES", "Profile", "load_profile"]


@dataclass(frozen=True, slots=True)
class Profile:
    """What a profile adds to a server."""

    name: str
    tools: tuple[Tool, ...] = ()


def _conformance() -> Profile:
    from .conformance import profile

    return profile()


PROFILES: dict[str, Callable[[], Profile]] = {"conformance": _conformance}


def load_profile(name: str | None) -> Profile:
    """The profile ``name`` (an empty one for ``None``).

    Raises:
        ValueError: no profile has that name.
    """
    if name is None:
        return Profile("")
    make = PROFILES.get(name)
    if make is None:
        raise ValueError(f"unknown profile: {name}; valid profiles: {', '.join(PROFILES)}")
    return make()
