"""Logging: ``logging/setLevel`` (handshake era), and the progress and log notifications a
request sends while it runs."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from ...protocol import methods as m
from ...protocol.errors import InvalidParams
from ...protocol.jsonrpc import notification
from ...protocol.versions import HANDSHAKE
from ..session import SendFn
from .router import Call, route

__all__ = ["NO_PROGRESS", "LogFn", "ProgressFn", "log_fn", "progress_fn", "set_level"]

ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
LogFn = Callable[[str, Any], Awaitable[None]]


@route(m.LOGGING_SET_LEVEL, HANDSHAKE)
async def set_level(call: Call) -> dict[str, Any]:
    level = call.params.get("level")
    if level not in m.LOG_LEVELS:
        raise InvalidParams(f"Invalid params: level must be one of {', '.join(m.LOG_LEVELS)}")
    call.session.log_level = level
    return {}


async def _no_progress(done: float, total: float | None, message: str | None) -> None:
    return None


# The progress function of a request that asked for none (it says nothing).
NO_PROGRESS: ProgressFn = _no_progress


def progress_fn(params: dict[str, Any], notify: SendFn) -> ProgressFn:
    """Progress notifications for the request's ``progressToken`` (none without one).

    The specification wants the value to increase with each notification: a report that
    does not is dropped here, once for every tool.
    """
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if token is None:
        return NO_PROGRESS
    last: list[float] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        if last and done <= last[0]:
            return
        last[:] = [done]
        p: dict[str, Any] = {"progressToken": token, "progress": done}
        if total is not None:
            p["total"] = total
        if message:
            p["message"] = message
        await notify(notification(m.PROGRESS, p))

    return progress


def log_fn(call: Call, logger_name: str) -> LogFn:
    """Log notifications at or above the level the client asked for (none unless asked)."""
    return functools.partial(_log, call, logger_name)


async def _log(call: Call, logger_name: str, level: str, data: Any) -> None:
    threshold = call.log_level
    if threshold is None or level not in m.LOG_LEVELS:
        return
    if m.LOG_LEVELS.index(level) < m.LOG_LEVELS.index(threshold):
        return
    await call.notify(notification(m.LOGGING_MESSAGE,
                                   {"level": level, "logger": logger_name, "data": data}))
