"""The load mode's pure parts: sharing a plan between processes, tallies and their merging,
error kinds, and the JSON report's shape."""

from __future__ import annotations

from mcp_multi.client.bench.outcome import Tally, error_kind
from mcp_multi.client.bench.plan import Call, Plan, split
from mcp_multi.client.bench.report import TargetReport, json_document
from mcp_multi.protocol.errors import (
    ConnectionClosed,
    HTTPStatusError,
    MethodNotFound,
    ProtocolError,
    RequestTimeout,
    TransportError,
)


def test_split_shares_everything_evenly_at_least_one_each() -> None:
    shares = split(Plan(concurrency=5, calls=11, rate=100.0, sessions=3, processes=2))
    assert [s.concurrency for s in shares] == [3, 2]
    assert [s.calls for s in shares] == [6, 5]
    assert [s.sessions for s in shares] == [2, 1]
    assert [s.rate for s in shares] == [50.0, 50.0]
    assert all(s.processes == 1 for s in shares)


def test_split_never_makes_an_empty_share() -> None:
    shares = split(Plan(concurrency=2, calls=None, sessions=1, processes=4))
    assert len(shares) == 2
    assert [s.sessions for s in shares] == [1, 1]
    assert [s.concurrency for s in split(Plan(concurrency=8, calls=1, processes=4))] == [8]


def test_error_kinds() -> None:
    assert error_kind(MethodNotFound("no")) == "jsonrpc -32601"
    assert error_kind(HTTPStatusError("busy", 503)) == "http 503"
    assert error_kind(RequestTimeout("slow")) == "timeout"
    assert error_kind(ConnectionClosed("gone")) == "connection lost"
    assert error_kind(TransportError("refused")) == "connection lost"
    assert error_kind(ProtocolError("garbage")) == "other"


def test_tallies_travel_and_merge() -> None:
    first, second = Tally(), Tally()
    for ms in (1, 2, 3, 4):
        first.record(ms / 1000)
    second.record(0.010)
    second.errors["timeout"] += 2
    first.warmup_calls, second.warmup_calls = 3, 4
    first.duration, second.duration = 2.0, 2.5
    second.stopped = "connection lost: gone"
    merged = Tally.merge([Tally.from_wire(first.to_wire()), Tally.from_wire(second.to_wire())])
    figures = merged.figures()
    assert figures["calls"] == 7 and figures["ok"] == 5 and figures["error_count"] == 2
    assert figures["errors"] == {"timeout": 2}
    assert figures["warmup_calls"] == 7
    assert figures["duration_s"] == 2.5 and figures["calls_per_s"] == 2.8
    assert 9.9 <= figures["max_ms"] <= 10.1
    assert 2.9 <= figures["p50_ms"] <= 3.1
    assert figures["complete"] is False and figures["stopped"] == "connection lost: gone"


def test_json_document_shape() -> None:
    tally = Tally()
    tally.record(0.001)
    tally.duration = 1.0
    ran = TargetReport("a", "http://h/mcp", "http", "2026-07-28", tally=tally)
    failed = TargetReport("b", "ws://h/ws", "websocket", error="b has no tool 'x'")
    document = json_document("2026-12-03T21:00:00Z", Call.tool_call("echo", {}),
                             Plan(calls=1, duration=None), [ran, failed])
    assert list(document) == ["version", "started", "command", "options", "targets"]
    assert document["command"] == "echo"
    assert list(document["options"]) == ["concurrency", "duration_s", "calls", "rate",
                                          "sessions", "warmup_s", "processes", "timeout_s"]
    assert list(document["targets"][0]) == [
        "name", "url", "transport", "protocol_version", "calls", "ok", "errors",
        "error_count", "warmup_calls", "duration_s", "calls_per_s", "p50_ms", "p90_ms",
        "p99_ms", "p999_ms", "max_ms", "mean_ms", "complete", "stopped"]
    assert document["targets"][1] == {"name": "b", "url": "ws://h/ws",
                                      "error": "b has no tool 'x'"}
