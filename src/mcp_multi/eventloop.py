"""Which event loop the server and the load mode (``mcp-client bench``) run on: uvloop where
it is installed, asyncio otherwise.

uvloop (libuv under asyncio's interface) moves the socket transports, the timers and the
scheduling of callbacks out of Python; for a server whose requests are small that is most
of what the loop does, and measured side by side it serves more of them (see the commit
that made it the default); the load generator's calls cost it less CPU the same way. It is
installed on every platform but Windows.

``MCP_EVENT_LOOP`` picks by hand: ``asyncio`` (the escape hatch: the standard loop),
``uvloop`` (insist on it; warns and falls back when it is missing), ``auto`` or unset (uvloop
when installed). The server's start-up line says which one runs (:func:`loop_name`).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["EVENT_LOOP_ENV", "loop_factory", "loop_name", "run"]

logger = logging.getLogger(__name__)

EVENT_LOOP_ENV = "MCP_EVENT_LOOP"
_CHOICES = ("auto", "asyncio", "uvloop")

T = TypeVar("T")


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What makes the server's loop: uvloop's, or None for asyncio's own. ``choice``
    defaults to ``$MCP_EVENT_LOOP``; a value that is none of ``auto``, ``asyncio``,
    ``uvloop`` is warned about and taken as ``auto``."""
    if choice is None:
        choice = os.environ.get(EVENT_LOOP_ENV, "auto")
    choice = choice.strip().lower() or "auto"
    if choice not in _CHOICES:
        logger.warning("%s=%r is none of %s: using auto", EVENT_LOOP_ENV, choice,
                       ", ".join(_CHOICES))
        choice = "auto"
    if choice == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if choice == "uvloop":
            logger.warning("%s=uvloop, but uvloop is not installed: using asyncio",
                           EVENT_LOOP_ENV)
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], choice: str | None = None) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what the start-up line calls the running loop."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
