"""The demo tools and the registry that enables, lists, validates and runs them.

Each tool lives in its own module and exports one :class:`Tool` named ``TOOL``. A handler
receives the validated arguments and a :class:`ToolContext` and returns a ``tools/call``
result dict (see :func:`mcp_multi.protocol.methods.tool_result`); it raises
:class:`ToolError` for a failure the caller should see as ``isError: true``.

A tool that needs its client awaits ``ctx.ask(method, params)`` (sampling, elicitation, roots;
see :mod:`mcp_multi.server.asking`), which works the same in both protocol eras.

Tools that start processes take a slot of the server's :class:`CommandSlots` first, so that no
number of callers or sessions can make the server run more than ``settings.max_commands`` of
them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp_multi.protocol.errors import MCPError
from mcp_multi.protocol.params_headers import HeaderAnnotationError, HeaderParam, header_params
from mcp_multi.protocol.text import clip
from mcp_multi.server.settings import ServerSettings
from mcp_multi.server.tools.validation import InputValidator

if TYPE_CHECKING:
    from mcp_multi.server.asking import Asker, Questions

__all__ = [
    "ALL_TOOLS",
    "NO_CLIENT",
    "AskFn",
    "CommandSlots",
    "DisabledToolError",
    "RunTaskFn",
    "TaskWork",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "UnknownToolError",
]

# Characters of a caller's text (a tool name, a schema violation) an error shows: a caller's
# megabyte comes back as a line, not once in the message and again in ``data``.
SHOWN = 200


class ToolError(MCPError):
    """A tool ran and failed; the message is shown to the caller with ``isError: true``."""


class UnknownToolError(MCPError):
    """No tool of that name exists: ``Unknown tool: NAME``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool: {clip(name, SHOWN)}")
        self.name = name


class DisabledToolError(MCPError):
    """The tool exists but ``--tools`` left it out: the seed's message."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Tool '{name}' is not enabled on this server")
        self.name = name


ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]
LogFn = Callable[[str, Any], Awaitable[None]]
# (method, params) -> the client's result: what ``ToolContext.ask`` is.
AskFn = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _no_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


async def _no_log(level: str, data: Any) -> None:
    return None


class _NoClient:
    """The asker of a tool run where no client can be asked (outside a request)."""

    async def ask(self, method: str, params: dict[str, Any], *,
                  key: str | None = None) -> dict[str, Any]:
        raise ToolError(f"No client to ask {method}: this tool runs outside a request")

    async def ask_all(self, questions: Questions) -> dict[str, dict[str, Any]]:
        raise ToolError("No client to ask: this tool runs outside a request")

    def can_ask(self, method: str, params: Mapping[str, Any] | None = None) -> bool:
        return False


NO_CLIENT = _NoClient()


class CommandSlots:
    """The commands one server runs at once: at most ``limit``, and at most a share of them
    (half, at least one) for any one caller, so one session cannot take every slot.

    A caller over either bound waits for a slot to be freed, a bounded time, then is told the
    server is busy. Releasing wakes every waiter to check again; waiters are few (the cap is
    small and each waits a bounded time), so that stays cheap.
    """

    def __init__(self) -> None:
        self.running = 0
        self._by_caller: Counter[str] = Counter()
        self._waiters: list[asyncio.Future[None]] = []

    @staticmethod
    def share(limit: int) -> int:
        """The most slots one caller may hold under ``limit``."""
        return max(1, limit // 2)

    def _fits(self, caller: str, limit: int) -> bool:
        return self.running < limit and self._by_caller[caller] < self.share(limit)

    @contextlib.asynccontextmanager
    async def hold(self, caller: str, limit: int, wait: float) -> AsyncIterator[None]:
        """Run the body holding one slot; ``caller`` names who asks (a session id).

        Raises:
            ToolError: no slot was free within ``wait`` seconds: the server is busy.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not self._fits(caller, limit):
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise ToolError(self._busy(caller, limit)) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.running += 1
        self._by_caller[caller] += 1
        try:
            yield
        finally:
            self.running -= 1
            self._by_caller[caller] -= 1
            if not self._by_caller[caller]:
                del self._by_caller[caller]
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _busy(self, caller: str, limit: int) -> str:
        share = self.share(limit)
        if self._by_caller[caller] >= share and share < limit:
            return (f"Server busy: this session already runs {share} commands, its share of "
                    f"the {limit} the server runs at once; try again when one has finished")
        return (f"Server busy: {limit} commands are already running, the most the server "
                "runs at once; try again later")


@dataclass(slots=True)
class ToolContext:
    """What a running tool may use: settings, progress/log notifications to its caller, the
    server's command slots with the caller's name (its session id) to count them by, and its
    client to ask (``asker``: the request being served).

    A tool that may run as a task (``execution.taskSupport``) returns
    ``await ctx.as_task(work)``: where the client can take a task, ``run_task`` starts
    ``work`` as one and the call answers with the task's handle; elsewhere ``work`` runs at
    once. What the tool does before that (asking the client, say) happens in the call itself.
    """

    settings: ServerSettings
    progress: ProgressFn = _no_progress
    log: LogFn = _no_log
    commands: CommandSlots = field(default_factory=CommandSlots)
    caller: str = ""
    asker: Asker = NO_CLIENT
    run_task: RunTaskFn | None = None

    async def ask(self, method: str, params: dict[str, Any], *,
                  key: str | None = None) -> dict[str, Any]:
        """Ask the client ``method`` (``sampling/createMessage``, ``elicitation/create``,
        ``roots/list``) with ``params`` and return its result dict.

        ``key`` names the question within the call (the 2026-07-28 ``inputRequests`` key);
        by default it is derived from the order of the asks, so a tool must ask the same
        questions in the same order when run again with the same answers.

        Raises:
            MissingRequiredClientCapability: the client did not declare what it needs (the
                call fails with -32021).
            AskFailed: the client refused, did not answer in time, or went away (a
                :class:`ToolError`: the caller sees ``isError``).
        """
        return await self.asker.ask(method, params, key=key)

    async def ask_all(self, questions: Questions) -> dict[str, dict[str, Any]]:
        """Ask several questions at once, ``{key: (method, params)}``; answers by key."""
        return await self.asker.ask_all(questions)

    def can_ask(self, method: str, params: Mapping[str, Any] | None = None) -> bool:
        """Whether the client declared the capability asking ``method`` needs."""
        return self.asker.can_ask(method, params)

    async def as_task(self, work: TaskWork) -> dict[str, Any]:
        """``work``'s result, or the handle of the task running it (see the class)."""
        if self.run_task is None:
            return await work(self)
        return await self.run_task(work)


# The work a tool hands to ``ToolContext.as_task``, and what starts it as a task.
TaskWork = Callable[[ToolContext], Awaitable[dict[str, Any]]]
RunTaskFn = Callable[[TaskWork], Awaitable[dict[str, Any]]]


Handler = Callable[[dict[str, Any], ToolContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Handler
    title: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)  # taskSupport (tasks extension)
    # The handler answers at once: it never awaits anything that waits (no I/O, no asking
    # the client, no sleeping) and its work is bounded. The endpoints then serve its calls
    # in the request's own task, with no stream to hand the answer over.
    at_once: bool = False
    # The input schema compiled, once for every server that offers the tool.
    validator: InputValidator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "validator", InputValidator(self.input_schema))

    def to_wire(self) -> dict[str, Any]:
        """The tool's entry in a ``tools/list`` result."""
        entry: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        }
        if self.title:
            entry["title"] = self.title
        if self.annotations:
            entry["annotations"] = self.annotations
        if self.execution:
            entry["execution"] = self.execution
        return entry


def _load_all() -> dict[str, Tool]:
    from mcp_multi.server.tools import echo, get_time, list_files, math_calc, run_command

    tools = [m.TOOL for m in (echo, get_time, list_files, run_command, math_calc)]
    return {t.name: t for t in tools}


ALL_TOOLS: dict[str, Tool] = _load_all()


class ToolRegistry:
    """The tools one server offers: all of them, or those ``--tools`` names, then the
    ``extra`` tools of a profile (which ``--tools`` does not filter).

    Input validators are compiled once here, not per call; ``commands`` holds the slots of
    the commands its tools run, for the whole server.
    """

    def __init__(self, enabled: tuple[str, ...] | list[str] | None = None,
                 extra: tuple[Tool, ...] = ()) -> None:
        if enabled is None:
            names = list(ALL_TOOLS)
        else:
            unknown = [n for n in enabled if n not in ALL_TOOLS]
            if unknown:
                raise ValueError(
                    f"unknown tool(s): {', '.join(unknown)}; valid tools: {', '.join(ALL_TOOLS)}"
                )
            names = list(dict.fromkeys(enabled))
        tools = {n: ALL_TOOLS[n] for n in names}
        for tool in extra:
            if tool.name in ALL_TOOLS or tool.name in tools:
                raise ValueError(f"tool {tool.name} is defined twice")
            tools[tool.name] = tool
        self._enable(tools)
        # Arguments mirrored into Mcp-Param-* headers, for the tools that have any (an
        # invalid annotation is a bad tool definition: the server does not start).
        self._header_params: dict[str, tuple[HeaderParam, ...]] = {}
        for n, t in self._tools.items():
            try:
                found = header_params(t.input_schema)
            except HeaderAnnotationError as exc:
                raise ValueError(f"tool {n}: {exc}") from None
            if found:
                self._header_params[n] = found
        # Whether any tool mirrors arguments into headers (asked before every modern call).
        self.mirrors_params = bool(self._header_params)
        # Every tool this server has; ``_tools`` holds those enabled now (an admin may
        # disable some while the server runs; see mcp_multi.server.auth.admin).
        self._offered = dict(self._tools)
        self.commands = CommandSlots()

    @property
    def names(self) -> list[str]:
        """The tools enabled now."""
        return list(self._tools)

    @property
    def offered(self) -> list[str]:
        """Every tool this server has, enabled or not (``--tools`` bounds it for good)."""
        return list(self._offered)

    def set_enabled(self, name: str, enabled: bool) -> bool:
        """Enable or disable the tool ``name`` while the server runs; False when it already
        was. A disabled tool leaves ``tools/list`` and its calls are refused.

        Raises:
            UnknownToolError: this server has no tool ``name``.
        """
        if name not in self._offered:
            raise UnknownToolError(name)
        if (name in self._tools) == enabled:
            return False
        on = set(self._tools) ^ {name}
        self._enable({n: t for n, t in self._offered.items() if n in on})
        return True

    def _enable(self, tools: dict[str, Tool]) -> None:
        """Make ``tools`` the ones enabled now."""
        self._tools = tools
        self._listing = [t.to_wire() for t in tools.values()]
        # The enabled tools whose calls may wait on something (not Tool.at_once): a call of
        # any other name is answered at once (a tool that is not there, an immediate error).
        self.waiting = frozenset(n for n, t in tools.items() if not t.at_once)

    def list_tools(self) -> list[dict[str, Any]]:
        return self._listing

    def get(self, name: str) -> Tool:
        """The enabled tool ``name``.

        Raises:
            UnknownToolError: no tool has that name.
            DisabledToolError: the tool exists but is not enabled here (``--tools`` left it
                out, or an admin disabled it).
        """
        tool = self._tools.get(name)
        if tool is not None:
            return tool
        if name in ALL_TOOLS or name in self._offered:
            raise DisabledToolError(name)
        raise UnknownToolError(name)

    def header_params(self, name: str) -> tuple[HeaderParam, ...]:
        """The arguments of tool ``name`` mirrored into ``Mcp-Param-*`` headers (often none)."""
        return self._header_params.get(name, ())

    def validation_errors(self, name: str, arguments: dict[str, Any]) -> list[str]:
        """Readable schema violations of ``arguments``, each naming the field; empty when valid."""
        return self._offered[name].validator.errors(arguments, SHOWN)
