"""The tasks extension's wire shapes and the life of a task, as data."""

from __future__ import annotations

import pytest

from mcp_multi.protocol.tasks import (
    TASKS_EXTENSION,
    IllegalTransition,
    TaskState,
    TaskStatus,
    TaskSupport,
    declares_tasks,
    isoformat,
    missing_tasks_capability,
    task_support,
)


def state() -> TaskState:
    return TaskState("t1", ttl_ms=60_000, poll_interval_ms=1000, created_at=0.0)


def test_create_result_is_flat_and_carries_no_outcome() -> None:
    created = state().create_result()
    assert created == {"resultType": "task", "taskId": "t1", "status": "working",
                       "createdAt": "1970-01-01T00:00:00.000Z",
                       "lastUpdatedAt": "1970-01-01T00:00:00.000Z", "ttlMs": 60_000,
                       "pollIntervalMs": 1000}


def test_the_outcome_is_inlined_by_status() -> None:
    task = state()
    task.input_requests["k"] = {"method": "elicitation/create", "params": {}}
    task.advance(TaskStatus.INPUT_REQUIRED, now=1.5)
    assert task.detailed()["inputRequests"] == {"k": {"method": "elicitation/create",
                                                      "params": {}}}
    assert task.detailed()["lastUpdatedAt"] == "1970-01-01T00:00:01.500Z"
    task.complete({"content": []})
    assert task.detailed()["result"] == {"content": []} and "inputRequests" not in task.detailed()
    failed = state()
    failed.fail({"code": -32603, "message": "boom"}, "boom")
    assert failed.detailed()["error"]["code"] == -32603 and "result" not in failed.detailed()
    assert failed.detailed()["statusMessage"] == "boom"


def test_terminal_statuses_go_nowhere() -> None:
    for end in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
        task = state()
        task.advance(end)
        for other in TaskStatus:
            if other is not end:
                with pytest.raises(IllegalTransition):
                    task.advance(other)


def test_negotiation_helpers() -> None:
    assert declares_tasks({"extensions": {TASKS_EXTENSION: {}}})
    assert not declares_tasks({"extensions": []}) and not declares_tasks(None)
    assert not declares_tasks({"tasks": {}})  # the 2025-11-25 slot is not the extension
    assert task_support({"taskSupport": "required"}) is TaskSupport.REQUIRED
    assert task_support({"taskSupport": "bogus"}) is TaskSupport.FORBIDDEN
    assert task_support(None) is TaskSupport.FORBIDDEN
    err = missing_tasks_capability("x")
    assert err.code == -32021
    assert err.data == {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
    assert isoformat(1.0) == "1970-01-01T00:00:01.000Z"
