"""The log throttle: a few lines per interval, then one summary of what it held back."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from mcp_multi.server.httplog import LogThrottle, RequestErrorLog


def test_throttle_lets_a_few_through_then_sums_up(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = logging.getLogger("test.throttle")
    throttle = LogThrottle(log, "odd things", limit=3, interval=10.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.throttle")
    for i in range(10):
        throttle.log(logging.INFO, "odd thing %d", i)
    assert [r.getMessage() for r in caplog.records] == [f"odd thing {i}" for i in range(3)]
    assert throttle.suppressed == 7
    now[0] += 10.0  # a new interval: first the summary, then the line
    throttle.log(logging.INFO, "odd thing %d", 10)
    assert [r.getMessage() for r in caplog.records][3:] == [
        "7 more odd things in the last 10 s (not logged one by one)", "odd thing 10"]
    throttle.flush()  # nothing held back: no line
    assert len(caplog.records) == 5


def test_throttle_counts_nothing_below_the_level(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.throttle.quiet")
    log.setLevel(logging.WARNING)
    throttle = LogThrottle(log, "odd things", limit=1)
    for _ in range(5):
        throttle.log(logging.INFO, "odd")
    assert throttle.suppressed == 0 and not caplog.records
    log.setLevel(logging.NOTSET)


def test_request_error_log_keeps_tracebacks_of_our_failures_only(
        caplog: pytest.LogCaptureFixture) -> None:
    log = RequestErrorLog(logging.getLogger("test.requests"))
    caplog.set_level(logging.DEBUG, logger="test.requests")
    for _ in range(15):  # as aiohttp reports a request it could not parse
        log.exception("Error handling request from %s", "10.0.0.9",
                      exc_info=BadHttpMessage("Invalid header token:\n\n  b'\x1b]0;x'\n  ^"))
    for _ in range(15):  # as it reports a handler that raised: a bug of ours
        log.exception("Error handling request from %s", "10.0.0.9",
                      exc_info=RuntimeError("boom"))
    log.flush()
    malformed = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(malformed) == 10 and all(r.exc_info is None for r in malformed)
    assert malformed[0].getMessage() == ("malformed HTTP request from 10.0.0.9 (400): "
                                         "Invalid header token: b'\\x1b]0;x' ^")
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 10 and all(r.exc_info for r in failures)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "5 more malformed HTTP requests in the last 0 s (not logged one by one)",
        "5 more request handler failures in the last 0 s (not logged one by one)"]
