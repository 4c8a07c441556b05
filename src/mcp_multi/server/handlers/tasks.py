"""The tasks extension's methods (``tasks/get``, ``tasks/update``, ``tasks/cancel``;
2026-07-28 only) and what ``tools/call`` asks of it.

Every method needs the client to declare ``io.modelcontextprotocol/tasks`` in the request's
client capabilities (-32021 otherwise, naming it). ``tasks/result`` and ``tasks/list`` of the
2025-11-25 design are gone (-32601): the result is inlined in ``tasks/get``, and nobody can
list tasks. In the handshake era nothing here exists: results there have no ``resultType``
to tell a task handle from a result, and tools run to the end inside the call.

:func:`task_context` is the hook of ``tools/call``: for a tool whose ``execution.taskSupport``
is ``optional`` or ``required`` it lets the tool become a task (:meth:`ToolContext.as_task`)
when the client can take one, and refuses a ``required`` one when it cannot.
:func:`listen_tasks` is the hook of ``subscriptions/listen``: its ``taskIds`` get
``notifications/tasks`` on the listen stream, each what ``tasks/get`` would answer then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from ...protocol import methods as m
from ...protocol.errors import InvalidParams
from ...protocol.tasks import (
    TASKS_EXTENSION,
    TaskSupport,
    declares_tasks,
    missing_tasks_capability,
    task_support,
)
from ...protocol.versions import MODERN
from ..asking import Questions, refusal
from ..tasks import Owner, TaskControl
from ..tools import TaskWork, Tool, ToolContext
from .router import Call, ServerContext, route

__all__ = ["TaskAsker", "advertise", "client_takes_tasks", "listen_tasks", "task_context",
           "tasks_cancel", "tasks_get", "tasks_update"]


def advertise(server: ServerContext, capabilities: dict[str, Any]) -> dict[str, Any]:
    """``capabilities`` (``server/discover``'s) with the tasks extension declared, when one
    of the server's tools can run as a task; unchanged otherwise."""
    registry = server.registry
    if any(task_support(registry.get(name).execution) is not TaskSupport.FORBIDDEN
           for name in registry.names):
        extensions = capabilities.setdefault("extensions", {})
        extensions[TASKS_EXTENSION] = {}
    return capabilities


def client_takes_tasks(call: Call) -> bool:
    """Whether this request's client declared the tasks extension (2026-07-28 only)."""
    return call.envelope is not None and declares_tasks(call.envelope.client_capabilities)


def task_context(call: Call, tool: Tool, ctx: ToolContext) -> None:
    """Let ``tool`` run as a task on this call where it may (sets ``ctx.run_task``).

    Raises:
        MissingRequiredClientCapability: the tool runs only as a task and this client cannot
            take one.
    """
    support = task_support(tool.execution)
    if support is TaskSupport.FORBIDDEN:
        return
    if not client_takes_tasks(call):
        if support is TaskSupport.REQUIRED:
            raise missing_tasks_capability(f"tool '{tool.name}' runs only as a task")
        return
    runner, owner, settings = call.server.tasks, Owner.of(call.session), call.server.settings
    commands = call.server.registry.commands
    declared = call.envelope.client_capabilities if call.envelope is not None else {}

    async def run_task(work: TaskWork) -> dict[str, Any]:
        async def as_task(control: TaskControl) -> dict[str, Any]:
            async def progress(done: float, total: float | None, message: str | None) -> None:
                if message:
                    control.say(message)

            return await work(ToolContext(settings=settings, progress=progress,
                                          commands=commands, caller=owner.client,
                                          asker=TaskAsker(control, declared)))

        return runner.start(owner, as_task, f"Running {tool.name}")

    ctx.run_task = run_task


class TaskAsker:
    """How the work of a task asks its client: the task waits in ``input_required`` with the
    question listed, until ``tasks/update`` brings the answer (see
    :class:`~mcp_multi.server.tasks.TaskRunner`). The task mints the keys, each used once;
    a key the tool suggests is not needed. A client that did not declare what a question
    needs (in the request that made the task) is not asked: the task fails with -32021."""

    def __init__(self, control: TaskControl, declared: Mapping[str, Any]) -> None:
        self._control = control
        self._declared = declared

    def can_ask(self, method: str, params: Mapping[str, Any] | None = None) -> bool:
        return refusal(method, params or {}, self._declared) is None

    async def ask(self, method: str, params: dict[str, Any], *,
                  key: str | None = None) -> dict[str, Any]:
        refused = refusal(method, params, self._declared)
        if refused is not None:
            raise refused
        return await self._control.ask(method, params)

    async def ask_all(self, questions: Questions) -> dict[str, dict[str, Any]]:
        keys = list(questions)
        answers = await asyncio.gather(*(self.ask(*questions[k]) for k in keys))
        return dict(zip(keys, answers, strict=True))


# Task ids one subscriptions/listen may ask about.
MAX_LISTENED = 256


def listen_tasks(call: Call, wanted: Mapping[str, Any]) -> tuple[list[str], Callable[[], None]]:
    """The ``taskIds`` part of a ``subscriptions/listen``: status notifications of those
    tasks (the ones this caller may see) go to the listen stream. Returns the ids agreed to,
    for the acknowledgement, and what ends the listening.

    Raises:
        MissingRequiredClientCapability: task ids asked for by a client that did not declare
            the extension.
        InvalidParams: ``taskIds`` is not a list of at most :data:`MAX_LISTENED` ids.
    """
    task_ids = wanted.get("taskIds")
    if task_ids is None:
        return [], lambda: None
    owner = _require_extension(call, "task status notifications")
    if not isinstance(task_ids, list) or len(task_ids) > MAX_LISTENED:
        raise InvalidParams(
            f'Invalid params: "taskIds" must be a list of at most {MAX_LISTENED} task ids')
    runner, send = call.server.tasks, call.notify
    accepted = runner.listen(owner, task_ids, send)
    return accepted, lambda: runner.unlisten(accepted, send)


def _require_extension(call: Call, method: str) -> Owner:
    if not client_takes_tasks(call):
        raise missing_tasks_capability(f"{method} is a method of the tasks extension")
    return Owner.of(call.session)


def _task_id(call: Call) -> Any:
    task_id = call.params.get("taskId")
    if not isinstance(task_id, str):
        raise InvalidParams('Invalid params: "taskId" must be a string')
    return task_id


async def _about_task(call: Call, method: str) -> dict[str, Any]:
    owner = _require_extension(call, method)
    return await call.server.tasks.answer(owner, method, _task_id(call), call.params)


@route(m.TASKS_GET, MODERN)
async def tasks_get(call: Call) -> dict[str, Any]:
    return await _about_task(call, m.TASKS_GET)


@route(m.TASKS_UPDATE, MODERN)
async def tasks_update(call: Call) -> dict[str, Any]:
    return await _about_task(call, m.TASKS_UPDATE)


@route(m.TASKS_CANCEL, MODERN)
async def tasks_cancel(call: Call) -> dict[str, Any]:
    return await _about_task(call, m.TASKS_CANCEL)
