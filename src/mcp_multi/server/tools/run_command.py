"""``run_command``: run one shell command in the server root and report its output.

Theory of operation. The command runs under ``/bin/sh`` in a process group of its own
(``start_new_session=True``), with stdin from ``/dev/null`` and stderr merged into stdout. We
read its output incrementally, keep the first ``settings.command_output_cap`` bytes and keep
draining (and counting) the rest, so that a chatty command never blocks on a full pipe nor
fills our memory. The whole run, up to end of output and exit, is bounded by a timeout.

When the call ends, for whatever reason (exit, timeout, cancellation of the request), the
process group is sent ``SIGKILL``: the command and everything it started that stayed in its
group are gone, and a ``sleep 1000 &`` cannot outlive the call. Only a process that deliberately
leaves the group (``setsid``) escapes, as it would any supervisor short of a cgroup.

However many sessions call it, the server runs at most ``settings.max_commands`` commands at
once, and one session at most half of them: a call over either bound waits a bounded time for a
slot (:class:`~mcp_multi.server.tools.CommandSlots`), then is answered that the server is busy.
The slot is held until the command's group is killed and reaped.

Because this tool runs arbitrary commands, it refuses to run on a server bound to a
non-loopback address unless that server requires an auth token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from typing import Any

from mcp_multi.protocol.methods import tool_result
from mcp_multi.protocol.text import clip
from mcp_multi.server.tools import Tool, ToolContext, ToolError

__all__ = ["TOOL"]

logger = logging.getLogger(__name__)

# While a command runs, the caller hears about it this often (when it asked for progress).
PROGRESS_INTERVAL = 1.0

# How long to wait for a SIGKILLed command to be reaped; only a process stuck in the kernel
# (uninterruptible I/O) takes longer, and then we report it without an exit code.
_REAP_TIMEOUT = 5.0

# Characters of a command shown in a log line (the server's and the caller's).
COMMAND_SHOWN = 200


class _OutputCollector(asyncio.SubprocessProtocol):
    """Keeps the first ``cap`` bytes of the command's output and counts the rest."""

    def __init__(self, cap: int) -> None:
        loop = asyncio.get_running_loop()
        self.cap = cap
        self.kept = bytearray()
        self.total = 0
        self.exited: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[None] = loop.create_future()
        self._has_exited = False
        self._output_closed = False

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.total += len(data)
        room = self.cap - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._output_closed = True
        self._check_finished()

    def process_exited(self) -> None:
        self._has_exited = True
        if not self.exited.done():
            self.exited.set_result(None)
        self._check_finished()

    def _check_finished(self) -> None:
        # Finished means the shell exited *and* every writer closed the output pipe; a
        # background job that still holds the pipe keeps the command running.
        if self._has_exited and self._output_closed and not self.finished.done():
            self.finished.set_result(None)


def _kill_group(pid: int) -> None:
    """Send ``SIGKILL`` to the process group ``pid`` leads, if anything of it is left."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _execute(command: str, limit: float, cap: int,
                   ctx: ToolContext) -> tuple[int | None, _OutputCollector, bool]:
    """Run ``command`` to its end, its timeout or our cancellation, its group killed after.

    Returns its exit status (``None`` if it could not be reaped), its output and whether it
    timed out.
    """
    settings = ctx.settings
    shown = clip(command, COMMAND_SHOWN)
    loop = asyncio.get_running_loop()
    starting = asyncio.ensure_future(loop.subprocess_shell(
        lambda: _OutputCollector(cap),
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=settings.root,
        start_new_session=True,
    ))
    try:
        transport, collector = await asyncio.shield(starting)
    except OSError as exc:
        raise ToolError(f"Cannot start command: {exc}") from None
    except asyncio.CancelledError:
        # Cancelled while the shell was being started: it may already run (and have started
        # children), so let the start finish and stop the whole group before giving up.
        with contextlib.suppress(Exception):
            transport, _ = await starting
            _kill_group(transport.get_pid())
            transport.close()
        raise

    timed_out = False
    started = loop.time()
    try:
        await ctx.log("info", f"run_command: started {shown!r} (timeout {limit:g}s)")
        async with asyncio.timeout(limit):
            while not collector.finished.done():
                await asyncio.wait([collector.finished], timeout=PROGRESS_INTERVAL)
                if not collector.finished.done():
                    elapsed = loop.time() - started
                    await ctx.progress(round(elapsed, 3), limit,
                                       f"running {elapsed:.0f}s, {collector.total} bytes of output")
    except TimeoutError:
        timed_out = True
    finally:
        try:
            # On timeout or cancellation this stops the command itself; after a normal exit
            # it clears what the command left running in its group.
            _kill_group(transport.get_pid())
            await asyncio.wait([collector.exited], timeout=_REAP_TIMEOUT)
        finally:
            # Also closes our end of the pipe when a process that left the group holds it.
            transport.close()

    return transport.get_returncode(), collector, timed_out


async def run_command(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Run ``command``; the result text is its output then ``Exit code: N``.

    While it runs, progress (seconds elapsed of the time limit) is reported every
    :data:`PROGRESS_INTERVAL` to a caller that asked for it, and start and end are logged to a
    client that set a log level.

    A non-zero exit or a timeout gives ``isError: true``. ``structuredContent`` carries
    ``exitCode``, ``output``, ``truncated`` and ``timedOut``.

    At most ``settings.max_commands`` commands run in the server at once (a session may hold
    half of them); a call over that waits ``settings.command_slot_wait`` seconds for a slot.

    Raises:
        ToolError: the command is empty, could not be started, the server is exposed
            without authentication, or no slot was free in time (the server is busy).
    """
    settings = ctx.settings
    if not settings.is_loopback and not settings.authenticates:
        raise ToolError(
            f"run_command is refused: the server listens on {settings.host}, "
            "not loopback, and no auth token is set"
        )
    command = str(arguments.get("command", ""))
    if not command.strip():
        raise ToolError("No command given")
    if "\0" in command:
        # The shell cannot be handed one (exec refuses it with a ValueError, not an OSError).
        raise ToolError("Command contains a NUL character")
    limit = settings.command_timeout
    requested = arguments.get("timeout")
    if isinstance(requested, int | float) and 0 < requested < limit:
        limit = float(requested)
    cap = settings.command_output_cap

    # The command as logs and log notifications show it: a caller's megabytes stay out of them.
    shown = clip(command, COMMAND_SHOWN)
    logger.info("run_command: %r (timeout %gs)", shown, limit)
    async with ctx.commands.hold(ctx.caller, settings.max_commands, settings.command_slot_wait):
        returncode, collector, timed_out = await _execute(command, limit, cap, ctx)

    if timed_out:
        await ctx.log("warning", f"run_command: {shown!r} killed after {limit:g}s")
    else:
        await ctx.log("info", f"run_command: {shown!r} exited with {returncode}")
    output = collector.kept.decode("utf-8", errors="replace")
    truncated = collector.total > cap
    lines = []
    if output:
        lines.append(output if output.endswith("\n") else output + "\n")
    if truncated:
        lines.append(f"[output truncated at {cap} bytes]\n")
    if timed_out:
        lines.append(f"Command timed out after {limit:g}s")
    else:
        lines.append(f"Exit code: {returncode}")
    return tool_result(
        "".join(lines),
        is_error=timed_out or returncode != 0,
        structured={
            "exitCode": returncode,
            "output": output,
            "truncated": truncated,
            "timedOut": timed_out,
        },
    )


TOOL = Tool(
    name="run_command",
    title="Run command",
    description="Execute a shell command",
    input_schema={
        "type": "object",
        "properties": {
            "command": {
                "type": "string",
                "minLength": 1,
                "description": "Shell command, run by /bin/sh in the server root",
            },
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "description": "Seconds before the command is killed; "
                "capped by the server's own limit",
            },
        },
        "required": ["command"],
    },
    handler=run_command,
    annotations={
        "readOnlyHint": False,
        "destructiveHint": True,
        "idempotentHint": False,
        "openWorldHint": True,
    },
)
