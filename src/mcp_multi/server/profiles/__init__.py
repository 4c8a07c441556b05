"""Profiles: named sets of extra tools, resources, resource templates and prompts a server can
add to its own with ``--profile NAME``.

The seed's server (no profile) keeps exactly its five tools and their outputs. A profile adds
fixtures that a test suite expects by name: ``conformance`` holds everything the official
conformance suite's server scenarios call. Each area of the protocol contributes its fixtures
from a module of its own; :mod:`.conformance` gathers them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..prompts import Prompt
from ..resources import Resource, ResourceTemplate
from ..tools import Tool

if TYPE_CHECKING:
    from ..handlers.router import ServerContext

__all__ = ["PROFILES", "Profile", "combine", "load_profile"]


@dataclass(frozen=True, slots=True)
class Profile:
    """What a profile adds to a server.

    ``on_start`` are called once with the server's context when it is built: fixtures that
    act on the server (change its prompt list, announce a resource update) keep what they
    need from it then.
    """

    name: str
    tools: tuple[Tool, ...] = ()
    resources: tuple[Resource, ...] = ()
    templates: tuple[ResourceTemplate, ...] = ()
    prompts: tuple[Prompt, ...] = ()
    on_start: tuple[Callable[[ServerContext], None], ...] = ()


def combine(name: str, *parts: Profile) -> Profile:
    """One profile holding everything ``parts`` hold, in their order."""
    return Profile(
        name,
        tools=tuple(t for p in parts for t in p.tools),
        resources=tuple(r for p in parts for r in p.resources),
        templates=tuple(t for p in parts for t in p.templates),
        prompts=tuple(q for p in parts for q in p.prompts),
        on_start=tuple(f for p in parts for f in p.on_start),
    )


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
