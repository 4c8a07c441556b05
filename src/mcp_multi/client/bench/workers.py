"""``--processes P``: the load shared by worker processes, their tallies merged.

Theory of operation. The parent starts ``P`` children (``python -m
mcp_multi.client.bench.workers``), each given its share of the plan (:func:`.plan.split`) as
one JSON line on stdin. A child opens its sessions and says ``{"ready": true}`` (or
``{"error": "..."}``) on stdout; once every child is ready the parent writes ``go``, so all
start together. While they run each child writes ``{"progress": [...]}`` lines about four
times a second and, at the end, ``{"tally": ...}`` with its encoded HDR histogram
(:meth:`.outcome.Tally.to_wire`); the parent adds the progress up for its progress line and
merges the tallies. ``stop`` on a child's stdin (the parent was interrupted), or SIGINT,
ends its run early, with what it has measured. A child that dies leaves the run partial,
never hanging: its stdout ends, and the parent says which child was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any

import orjson

from ...protocol.errors import MCPError
from ...protocol.text import for_display
from .engine import LoadRun, Progress, Target
from .outcome import Tally
from .plan import Call, Plan, split

__all__ = ["WorkerError", "run_processes"]

# Seconds a child may take to start and open its sessions, beyond the plan's timeout.
START_GRACE = 30.0


class WorkerError(MCPError):
    """A worker process could not start its share (the message says why, in one line)."""


class _Child:
    """One worker process, seen from the parent."""

    def __init__(self, index: int, process: asyncio.subprocess.Process) -> None:
        self.index = index
        self.process = process
        self.progress = Progress(0.0, 0, 0, 0)
        self.tally: Tally | None = None

    async def message(self) -> dict[str, Any] | None:
        """The next line the child wrote, decoded; ``None`` once its stdout ended."""
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                return None
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # not ours (a library printing): skip it
            if isinstance(message, dict):
                return message

    def tell(self, line: str) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            with contextlib.suppress(OSError):
                stdin.write(line.encode() + b"\n")

    async def end(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()


async def run_processes(target: Target, call: Call, plan: Plan, *,
                        on_progress: Callable[[Progress], None] | None = None,
                        stopping: asyncio.Event | None = None) -> Tally:
    """Run ``plan`` against ``target`` in ``plan.processes`` worker processes.

    Raises:
        WorkerError: a child could not open its sessions (nothing was measured).
    """
    shares = split(plan)
    children: list[_Child] = []
    try:
        for index, share in enumerate(shares):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", __name__, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE)
            child = _Child(index, process)
            children.append(child)
            child.tell(orjson.dumps({"target": target.to_wire(), "method": call.method,
                                     "params": call.params, "tool": call.tool,
                                     "plan": share.options()}).decode())
        await _all_ready(children, plan.timeout + START_GRACE)
        for child in children:
            child.tell("go")
        return await _collect(children, on_progress, stopping)
    finally:
        await asyncio.gather(*(child.end() for child in children), return_exceptions=True)


async def _all_ready(children: list[_Child], limit: float) -> None:
    async def ready(child: _Child) -> None:
        message = await child.message()
        if message is None:
            raise WorkerError(f"worker process {child.index + 1} ended before it started")
        if "error" in message:
            raise WorkerError(str(message["error"]))

    try:
        async with asyncio.timeout(limit):
            await asyncio.gather(*(ready(child) for child in children))
    except TimeoutError:
        raise WorkerError(f"the worker processes did not start within {limit:g} s") from None


async def _collect(children: list[_Child], on_progress: Callable[[Progress], None] | None,
                   stopping: asyncio.Event | None) -> Tally:
    def report() -> None:
        if on_progress is not None:
            progress = [child.progress for child in children]
            on_progress(Progress(max(p.elapsed for p in progress),
                                 sum(p.calls for p in progress),
                                 sum(p.errors for p in progress),
                                 sum(p.warmup_calls for p in progress)))

    async def follow(child: _Child) -> None:
        while (message := await child.message()) is not None:
            if "progress" in message:
                child.progress = Progress(*message["progress"])
                report()
            elif "tally" in message:
                child.tally = Tally.from_wire(message["tally"])

    async def relay_stop() -> None:
        if stopping is not None:
            await stopping.wait()
            for child in children:
                child.tell("stop")

    relay = asyncio.create_task(relay_stop())
    try:
        await asyncio.gather(*(follow(child) for child in children))
    finally:
        relay.cancel()
    tallies = [child.tally for child in children if child.tally is not None]
    tally = Tally.merge(tallies)
    lost = [child.index + 1 for child in children if child.tally is None]
    if lost and tally.stopped is None:
        tally.stopped = f"worker process {lost[0]} died before it reported"
    return tally


# -- the child --------------------------------------------------------------------------

def _say(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


async def _child_main() -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        order = orjson.loads(await reader.readline())
        target = Target.from_wire(order["target"])
        call = Call(order["method"], order["params"], order["tool"])
        options = order["plan"]
        plan = Plan(concurrency=options["concurrency"], duration=options["duration_s"],
                    calls=options["calls"], rate=options["rate"],
                    sessions=options["sessions"], warmup=options["warmup_s"],
                    timeout=options["timeout_s"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        _say({"error": f"worker process: bad order: {exc}"})
        return 2
    run = LoadRun(target, call, plan)
    try:
        await run.open()
    except (MCPError, ValueError, OSError) as exc:
        _say({"error": for_display(str(exc), 300)})
        return 1
    _say({"ready": True})
    if (await reader.readline()).strip() != b"go":
        await run.close()
        return 1

    async def listen() -> None:
        line = await reader.readline()  # "stop", or the parent went away
        run.stop("interrupted" if line.strip() == b"stop" else "the parent process went away")

    listener = asyncio.create_task(listen())
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, run.stop, "interrupted")

    def tick(progress: Progress) -> None:
        _say({"progress": [progress.elapsed, progress.calls, progress.errors,
                           progress.warmup_calls]})

    try:
        tally = await run.run(tick)
    finally:
        listener.cancel()
        await run.close()
    _say({"tally": tally.to_wire()})
    return 0


def child() -> int:
    """The worker process's main (``python -m mcp_multi.client.bench.workers``)."""
    from ...eventloop import run as run_loop

    try:
        return run_loop(_child_main())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(child())
