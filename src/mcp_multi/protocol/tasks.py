"""The tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663): its wire shapes and the
life of one task, as data.

Theory of operation: a 2026-07-28 client that lists the extension in a request's
``clientCapabilities.extensions`` lets the server answer that request (``tools/call`` only,
so far) with a *task handle* instead of the result: a ``CreateTaskResult``, flat, whose
``resultType`` is ``"task"``. The client then polls ``tasks/get`` with the task id; the answer
is the task's current state, and once the task is terminal it carries the original request's
``result`` (``completed``, tool errors included) or the JSON-RPC ``error`` that ended it
(``failed``). While the work waits on the client (elicitation, sampling, roots) the task is
``input_required`` and lists ``inputRequests``, which the client answers with
``tasks/update``. ``tasks/cancel`` asks for the work to stop. There is no ``tasks/list`` and no
``tasks/result`` (both removed from the 2025-11-25 design): a task id is an unguessable
handle, and nobody can enumerate another caller's tasks.

A task moves through its statuses by :data:`TRANSITIONS`, one table read by
:meth:`TaskState.advance`; nothing leaves a terminal status. A tool says whether it runs as a
task with ``execution.taskSupport``: ``forbidden`` (the default), ``optional`` or
``required``. A client that did not declare the extension never gets a task; a ``required``
tool refuses it with -32021 naming the extension (:func:`missing_tasks_capability`).

The field names are the extension's: ``ttlMs`` (null for unlimited) and ``pollIntervalMs``
in integer milliseconds; ``createdAt`` and ``lastUpdatedAt`` in ISO 8601 UTC.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import MissingRequiredClientCapability

__all__ = [
    "TASKS_EXTENSION",
    "TERMINAL",
    "TRANSITIONS",
    "IllegalTransition",
    "TaskState",
    "TaskStatus",
    "TaskSupport",
    "declares_tasks",
    "isoformat",
    "missing_tasks_capability",
    "task_support",
    "tasks_capability",
]

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"


class TaskStatus(StrEnum):
    WORKING = "working"
    INPUT_REQUIRED = "input_required"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskSupport(StrEnum):
    """A tool's ``execution.taskSupport``."""

    FORBIDDEN = "forbidden"
    OPTIONAL = "optional"
    REQUIRED = "required"


TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

# Where each status may go next. Terminal statuses go nowhere: a task that completed stays
# completed, whatever a late cancel or a late answer says.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.WORKING: frozenset({TaskStatus.INPUT_REQUIRED, *TERMINAL}),
    TaskStatus.INPUT_REQUIRED: frozenset({TaskStatus.WORKING, *TERMINAL}),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A task was asked to move where :data:`TRANSITIONS` does not let it (our bug, never a
    peer's: the peer's requests are refused before they touch a task)."""


def isoformat(epoch: float) -> str:
    """``epoch`` seconds as ISO 8601 UTC with milliseconds: ``2026-07-28T10:30:00.000Z``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(slots=True)
class TaskState:
    """What a task is, as the wire shows it: plain data a store may keep anywhere.

    ``input_requests`` holds the requests the work waits on, by key; ``result`` or ``error``
    is set once the task is terminal (``completed`` or ``failed``).
    """

    task_id: str
    ttl_ms: int | None
    poll_interval_ms: int
    status: TaskStatus = TaskStatus.WORKING
    status_message: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = 0.0
    input_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.updated_at:
            self.updated_at = self.created_at

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def advance(self, status: TaskStatus, message: str | None = None, *,
                now: float | None = None) -> None:
        """Move to ``status`` (a status it already has is no move).

        Raises:
            IllegalTransition: :data:`TRANSITIONS` does not allow it.
        """
        if status is not self.status:
            if status not in TRANSITIONS[self.status]:
                raise IllegalTransition(f"task {self.status} cannot become {status}")
            self.status = status
            if status is not TaskStatus.INPUT_REQUIRED:
                self.input_requests = {}
        if message is not None:
            self.status_message = message
        self.updated_at = time.time() if now is None else now

    def complete(self, result: dict[str, Any]) -> None:
        """The work returned ``result`` (a tool error is a result too)."""
        self.advance(TaskStatus.COMPLETED)
        self.result = result

    def fail(self, error: dict[str, Any], message: str | None = None) -> None:
        """The work ended with the JSON-RPC error object ``error``."""
        self.advance(TaskStatus.FAILED, message)
        self.error = error

    def base(self) -> dict[str, Any]:
        """The fields every task shape shares."""
        wire: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status.value,
            "createdAt": isoformat(self.created_at),
            "lastUpdatedAt": isoformat(self.updated_at),
            "ttlMs": self.ttl_ms,
            "pollIntervalMs": self.poll_interval_ms,
        }
        if self.status_message is not None:
            wire["statusMessage"] = self.status_message
        return wire

    def create_result(self) -> dict[str, Any]:
        """The ``CreateTaskResult`` answering the request that made the task: the task's
        fields at the top level, ``resultType: "task"``, and nothing of its outcome."""
        return {"resultType": "task", **self.base()}

    def detailed(self) -> dict[str, Any]:
        """The ``DetailedTask`` ``tasks/get`` answers (and a status notification carries):
        the outcome inlined once terminal, the pending requests while input is required."""
        wire = self.base()
        if self.status is TaskStatus.INPUT_REQUIRED:
            wire["inputRequests"] = dict(self.input_requests)
        elif self.status is TaskStatus.COMPLETED and self.result is not None:
            wire["result"] = self.result
        elif self.status is TaskStatus.FAILED and self.error is not None:
            wire["error"] = self.error
        return wire


def declares_tasks(capabilities: Mapping[str, Any] | None) -> bool:
    """Whether client ``capabilities`` list the tasks extension."""
    extensions = capabilities.get("extensions") if isinstance(capabilities, Mapping) else None
    return isinstance(extensions, Mapping) and TASKS_EXTENSION in extensions


def tasks_capability() -> dict[str, Any]:
    """The capabilities fragment that declares the extension (server and client alike)."""
    return {"extensions": {TASKS_EXTENSION: {}}}


def task_support(execution: Mapping[str, Any] | None) -> TaskSupport:
    """A tool's ``execution.taskSupport`` (``forbidden`` when absent or unknown)."""
    value = execution.get("taskSupport") if isinstance(execution, Mapping) else None
    try:
        return TaskSupport(value) if isinstance(value, str) else TaskSupport.FORBIDDEN
    except ValueError:
        return TaskSupport.FORBIDDEN


def missing_tasks_capability(why: str) -> MissingRequiredClientCapability:
    """The -32021 refusal of a request that cannot be served to a client that did not
    declare the extension (``why`` says what needs it); ``data`` names the extension as the
    spec shows."""
    return MissingRequiredClientCapability(
        f"Missing required client capability: {why}; declare the {TASKS_EXTENSION} "
        "extension in the request's client capabilities",
        {"requiredCapabilities": tasks_capability()},
    )
