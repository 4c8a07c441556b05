"""``mcp-client bench``: the load mode's command line (options, pre-flight, progress, report).

::

    mcp-client bench http://127.0.0.1:8080/mcp --tool echo --args '{"message": "hi"}'
    mcp-client bench a=localhost:8080 b=localhost:8081 --tool echo --compare --duration 5
    mcp-client bench http://127.0.0.1:8080/mcp --method tools/list --rate 500 --json

Targets take the client's forms (:mod:`mcp_multi.client.targets`, ``--config`` files too)
and run one after another. Before a target runs, one session is opened and the call is
checked (the tool exists and the arguments pass its ``inputSchema``); a target that fails
that is skipped with one line on stderr. Exit status: 0 when every measured call of every
target succeeded, 1 when some failed, a target was skipped or a run was partial, 2 for bad
options or when no target could run. This module is the only one of the load mode that
prints: the report on stdout (``--json``: one JSON object and nothing else), the progress
line (on a terminal) and error lines on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import jsonschema

from ...eventloop import run as run_loop
from ...protocol.errors import MCPError
from ...protocol.text import for_display
from ...protocol.versions import SUPPORTED_VERSIONS
from ...transport import transport_names
from ..auth.redact import redact_text
from ..config import load_config, parse_header
from ..connection import MCPConnection
from ..targets import DEFAULT_TRANSPORT, ServerSpec, normalize_transport
from .engine import LoadRun, Progress, Target
from .outcome import Tally
from .plan import Call, Plan
from .report import TargetReport, compare_table, json_document, target_table
from .workers import run_processes

__all__ = ["PreflightError", "build_parser", "main", "preflight"]

PROG = "mcp-client bench"
EXAMPLES = """\
examples:
  mcp-client bench http://127.0.0.1:8080/mcp --tool echo --args '{"message": "hi"}'
  mcp-client bench a=localhost:8080 b=localhost:8081 --tool echo --compare --duration 5
  mcp-client bench http://127.0.0.1:8080/mcp --method tools/list --rate 500 --json
  mcp-client bench "stdio:mcp-server --stdio" --tool echo --calls 10000 --processes 2
"""
# How often the progress line is rewritten (seconds).
PROGRESS_EVERY = 0.25


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (``mcp-client bench: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class PreflightError(MCPError):
    """A target cannot be loaded as asked; the message names it, in one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Load MCP servers with one request, many times, and measure them: "
                    "calls/s, latency percentiles (HDR histogram), errors by kind.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help="[NAME=]HOST:PORT, a URL or stdio:CMD (unnamed: server1, ...)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--tool", metavar="NAME", help="call this tool (tools/call)")
    what.add_argument("--method", metavar="M", help="send this method instead (any method)")
    parser.add_argument("--args", default="{}", metavar="JSON",
                        help="the tool's arguments, a JSON object (default {})")
    parser.add_argument("--params", default=None, metavar="JSON",
                        help="the method's params, a JSON object (default: none)")
    parser.add_argument("--transport", default=DEFAULT_TRANSPORT, type=str.lower,
                        help=f"transport for HOST:PORT targets: {' or '.join(transport_names())}"
                             f" (default: {DEFAULT_TRANSPORT})")
    parser.add_argument("--protocol-version", default="auto", metavar="VERSION",
                        choices=("auto", *SUPPORTED_VERSIONS),
                        help="speak only this MCP version (default: the client's choice)")
    parser.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="HTTP header sent to every remote target (repeatable)")
    parser.add_argument("--config", type=Path, action="append", default=[], metavar="FILE",
                        help="targets from an mcpServers JSON file (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="seconds each call may take (default 30)")
    parser.add_argument("--concurrency", type=int, default=16, metavar="N",
                        help="calls in flight at once: workers (default 16)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, default=None, metavar="S",
                        help="seconds to measure, after the warmup (default 10)")
    length.add_argument("--calls", type=int, default=None, metavar="N",
                        help="measure exactly N calls instead")
    parser.add_argument("--rate", type=float, default=None, metavar="R",
                        help="open model: R calls/s in total, latency from when each call "
                             "was due (default: closed model, as fast as answers come)")
    parser.add_argument("--sessions", type=int, default=1, metavar="K",
                        help="sessions (connections) per target; worker w uses w %% K "
                             "(default 1)")
    parser.add_argument("--warmup", type=float, default=1.0, metavar="S",
                        help="seconds of calls made but not measured first (default 1)")
    parser.add_argument("--processes", type=int, default=1, metavar="P",
                        help="worker processes sharing the load (default 1)")
    parser.add_argument("--json", action="store_true",
                        help="the report as one JSON object on stdout")
    parser.add_argument("--compare", action="store_true",
                        help="one table with the targets side by side, ratios to the first")
    parser.add_argument("--no-progress", action="store_true",
                        help="no live progress line on stderr")
    return parser


@dataclass(slots=True)
class _Run:
    """The parsed command line."""

    targets: list[Target]
    call: Call
    plan: Plan
    json: bool
    compare: bool
    progress: bool


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option} must be a JSON object")
    return value


def _positive(value: float | None, option: str, *, whole: bool = False,
              zero: bool = False) -> None:
    if value is None:
        return
    if not (value > 0 or (zero and value == 0)) or not math.isfinite(value):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{option} must be {kind} {'>= 0' if zero else '> 0'}")


def _targets(args: argparse.Namespace) -> list[Target]:
    from ..cli import parse_servers  # the client's own parsing of server arguments

    transport = normalize_transport(args.transport)
    headers = dict(parse_header(text) for text in args.header)
    specs: list[ServerSpec] = [spec for path in args.config for spec in load_config(path)]
    names = [spec.name for spec in specs]
    specs += parse_servers(args.targets, transport, taken=set(names))
    if not specs:
        raise ValueError("name at least one TARGET (or --config FILE)")
    version = None if args.protocol_version == "auto" else args.protocol_version
    return [Target(spec, headers, version) for spec in specs]


def parse(argv: list[str]) -> _Run:
    """The command line, checked; exits 2 with one line when it is wrong."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.tool is None and args.method is None:
            raise ValueError("say what to call: --tool NAME or --method M")
        if args.tool is not None:
            if args.params is not None:
                raise ValueError("--params goes with --method; a tool takes --args")
            call = Call.tool_call(args.tool, _json_object(args.args, "--args"))
        else:
            if args.args != "{}":
                raise ValueError("--args goes with --tool; a method takes --params")
            params = _json_object(args.params, "--params") if args.params is not None else None
            call = Call(args.method, params)
        _positive(args.timeout, "--timeout")
        _positive(args.concurrency, "--concurrency", whole=True)
        _positive(args.duration, "--duration")
        _positive(args.calls, "--calls", whole=True)
        _positive(args.rate, "--rate")
        _positive(args.sessions, "--sessions", whole=True)
        _positive(args.warmup, "--warmup", zero=True)
        _positive(args.processes, "--processes", whole=True)
        duration = args.duration if args.duration is not None else (
            None if args.calls is not None else 10.0)
        plan = Plan(concurrency=args.concurrency, duration=duration, calls=args.calls,
                    rate=args.rate, sessions=args.sessions, warmup=args.warmup,
                    processes=args.processes, timeout=args.timeout)
        targets = _targets(args)
    except (ValueError, MCPError) as exc:
        parser.error(str(exc))
    show = not args.no_progress and not args.json and sys.stderr.isatty()
    return _Run(targets, call, plan, args.json, args.compare, show)


# -- pre-flight ---------------------------------------------------------------------------

def _schema_problem(schema: Any, arguments: dict[str, Any]) -> str | None:
    """Why ``arguments`` fail ``schema`` (one line), or ``None`` when they pass (or the
    schema is not one that can be checked: that is the server's business)."""
    if not isinstance(schema, dict):
        return None
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        error = jsonschema.exceptions.best_match(cls(schema).iter_errors(arguments))
    except (jsonschema.exceptions.SchemaError, jsonschema.exceptions.RefResolutionError):
        return None
    if error is None:
        return None
    where = error.json_path if error.path else ""
    return f"{where + ': ' if where else ''}{error.message}"


async def preflight(target: Target, call: Call, timeout: float) -> MCPConnection:
    """Open one session to ``target`` and check ``call`` makes sense there; return it open.

    Raises:
        PreflightError: the target cannot be reached, has no such tool, or the arguments
            fail its schema (one line naming the target).
    """
    name = target.name
    try:
        connection = await target.open(timeout)
    except (MCPError, ValueError, OSError) as exc:
        raise PreflightError(f"{name} ({target.spec.url}): {for_display(str(exc), 300)}"
                             ) from None
    try:
        if call.tool is not None:
            tools = await connection.list_tools()
            found = next((t for t in tools if t.get("name") == call.tool), None)
            if found is None:
                names = ", ".join(str(t.get("name")) for t in tools) or "none"
                raise PreflightError(f"{name} has no tool {call.tool!r} (it has: "
                                     f"{for_display(names, 300)})")
            assert call.params is not None
            problem = _schema_problem(found.get("inputSchema"), call.params["arguments"])
            if problem is not None:
                raise PreflightError(f"{name}: the arguments for {call.tool!r} fail its "
                                     f"inputSchema: {for_display(problem, 300)}")
    except MCPError as exc:
        await connection.close()
        if isinstance(exc, PreflightError):
            raise
        raise PreflightError(f"{name}: {for_display(str(exc), 300)}") from None
    return connection


# -- running ------------------------------------------------------------------------------

class _ProgressLine:
    """The live line on stderr: ``[server1] 4.2/10 s  41,234 calls  9,812/s  errors 0``."""

    def __init__(self, name: str, plan: Plan, enabled: bool) -> None:
        self.name = name
        self.plan = plan
        self.enabled = enabled
        self._shown = 0.0
        self._last: tuple[float, int] | None = None
        self._rate = 0.0
        self._width = 0

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._shown < PROGRESS_EVERY * 0.8:
            return
        self._shown = now
        plan = self.plan
        made = progress.calls + progress.warmup_calls
        if self._last is not None and progress.elapsed > self._last[0]:
            self._rate = (made - self._last[1]) / (progress.elapsed - self._last[0])
        self._last = (progress.elapsed, made)
        if progress.elapsed < plan.warmup:
            where = f"warmup {progress.elapsed:.1f}/{plan.warmup:g} s  " \
                    f"{progress.warmup_calls:,} calls"
        else:
            measured = progress.elapsed - plan.warmup
            if plan.duration is not None:
                where = f"{measured:.1f}/{plan.duration:g} s  {progress.calls:,} calls"
            else:
                where = f"{measured:.1f} s  {progress.calls:,}/{plan.calls or 0:,} calls"
        text = f"[{self.name}] {where}  {self._rate:,.0f}/s  errors {progress.errors:,}"
        sys.stderr.write("\r" + text.ljust(self._width))
        sys.stderr.flush()
        self._width = len(text)

    def done(self) -> None:
        if self.enabled and self._width:
            sys.stderr.write("\r" + " " * self._width + "\r")
            sys.stderr.flush()


async def _load(target: Target, call: Call, plan: Plan, connection: MCPConnection,
                show: _ProgressLine, stopping: asyncio.Event) -> Tally:
    """Run the plan against one target (pre-flight done: ``connection`` is open)."""
    if plan.processes > 1:
        await connection.close()
        return await run_processes(target, call, plan, on_progress=show, stopping=stopping)
    run = LoadRun(target, call, plan)
    run.adopt(connection)
    try:
        await run.open()
        waiter = asyncio.create_task(stopping.wait())
        waiter.add_done_callback(
            lambda task: None if task.cancelled() else run.stop("interrupted"))
        try:
            return await run.run(show)
        finally:
            waiter.cancel()
    finally:
        await run.close()


async def _unless(stopping: asyncio.Event,
                  opening: Coroutine[Any, Any, MCPConnection]) -> MCPConnection | None:
    """``opening``'s connection, or ``None`` when Ctrl-C came first (it is cancelled)."""
    task = asyncio.ensure_future(opening)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, MCPError):
        await task
    return None


def _status(text: str) -> None:
    sys.stderr.write(f"bench: {redact_text(text)}\n")
    sys.stderr.flush()


async def _run(run: _Run) -> int:
    started = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, stopping.set)
    reports: list[TargetReport] = []
    for target in run.targets:
        if stopping.is_set():
            break
        spec = target.spec
        report = TargetReport(spec.name, spec.url, spec.transport)
        reports.append(report)
        try:
            connection = await _unless(stopping, preflight(target, run.call, run.plan.timeout))
        except PreflightError as exc:
            report.error = str(exc)
            _status(str(exc))
            continue
        if connection is None:
            report.error = "interrupted"
            break
        report.protocol_version = connection.protocol_version
        show = _ProgressLine(spec.name, run.plan, run.progress)
        try:
            report.tally = await _load(target, run.call, run.plan, connection, show, stopping)
        except (MCPError, ValueError, OSError) as exc:
            report.error = f"{spec.name}: {for_display(str(exc), 300)}"
            _status(report.error)
            continue
        finally:
            show.done()
        if not run.json and not run.compare:
            print(target_table(report), flush=True)
    if run.json:
        document = json_document(started, run.call, run.plan, reports)
        print(json.dumps(document), flush=True)
    elif run.compare:
        print(compare_table(reports), flush=True)
    if not any(report.tally is not None for report in reports):
        return 2
    return 0 if all(report.ok for report in reports) else 1


def main(argv: list[str]) -> int:
    """``mcp-client bench ARGV``: run the load; return the exit status."""
    run = parse(argv)
    handler = logging.StreamHandler(sys.stderr)
    logging.basicConfig(level=logging.ERROR, handlers=[handler])
    try:
        return run_loop(_run(run))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (`... | head`): stop quietly, and keep Python's final flush of
        # stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # a bug of ours: still one line, never a traceback
        _status(f"internal error: {type(exc).__name__}: {for_display(str(exc), 300)}")
        return 1
