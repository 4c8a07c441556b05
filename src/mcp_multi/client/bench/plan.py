"""What a load run does: the call, the load, and how it is shared between processes.

Pure data: :class:`Call` says what each call sends, :class:`Plan` how hard and how long
(the command line's options), and :func:`split` divides a plan into the shares of
``--processes`` worker processes, as evenly as it goes and at least one of each per process.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ...protocol import methods

__all__ = ["Call", "Plan", "split"]


@dataclass(frozen=True, slots=True)
class Call:
    """The request every call of the run sends.

    Attributes:
        method: the JSON-RPC method (``tools/call`` for ``--tool``).
        params: its params (``None``: none).
        tool: the tool's name for ``--tool`` (its ``isError`` results are errors), else ``None``.
    """

    method: str
    params: dict[str, Any] | None
    tool: str | None = None

    @classmethod
    def tool_call(cls, name: str, arguments: dict[str, Any]) -> Call:
        return cls(methods.TOOLS_CALL, {"name": name, "arguments": arguments}, name)

    @property
    def label(self) -> str:
        """What the report calls it: the tool's name, or the method."""
        return self.tool if self.tool is not None else self.method


@dataclass(frozen=True, slots=True)
class Plan:
    """The load: ``concurrency`` workers over ``sessions`` sessions per target, for
    ``duration`` seconds or ``calls`` measured calls after ``warmup`` seconds, at ``rate``
    calls per second in total (open model) or as fast as answers come (``None``: closed
    model), each call within ``timeout`` seconds."""

    concurrency: int = 16
    duration: float | None = 10.0
    calls: int | None = None
    rate: float | None = None
    sessions: int = 1
    warmup: float = 1.0
    processes: int = 1
    timeout: float = 30.0

    def options(self) -> dict[str, Any]:
        """The ``options`` object of the JSON report."""
        return {"concurrency": self.concurrency, "duration_s": self.duration,
                "calls": self.calls, "rate": self.rate, "sessions": self.sessions,
                "warmup_s": self.warmup, "processes": self.processes,
                "timeout_s": self.timeout}


def _parts(total: int, count: int) -> list[int]:
    """``total`` divided into ``count`` parts differing by one at most, the larger first."""
    base, extra = divmod(total, count)
    return [base + (1 if index < extra else 0) for index in range(count)]


def split(plan: Plan) -> list[Plan]:
    """The shares of ``plan.processes`` processes: concurrency, sessions, calls and rate
    divided as evenly as they go, each share at least one worker, one session and (with
    ``--calls``) one call; each share is a plan for one process (``processes == 1``).

    A plan with fewer calls than processes gets fewer processes."""
    count = plan.processes
    if plan.calls is not None:
        count = min(count, plan.calls)
    count = max(1, min(count, plan.concurrency))
    workers = _parts(plan.concurrency, count)
    sessions = [max(1, n) for n in _parts(plan.sessions, count)]
    calls = _parts(plan.calls, count) if plan.calls is not None else [None] * count
    rate = plan.rate / count if plan.rate is not None else None
    return [replace(plan, concurrency=workers[i], sessions=min(sessions[i], workers[i]),
                    calls=calls[i], rate=rate, processes=1) for i in range(count)]
