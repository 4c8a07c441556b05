"""What became of calls: the kind of an error, and the tally of a run.

Error kinds are the keys of the report's ``errors`` object, one per cause a person acts on
differently: ``jsonrpc <code>`` (the server answered with a JSON-RPC error), ``http
<status>`` (an HTTP error status without a JSON-RPC answer), ``timeout``, ``connection
lost``, ``tool error`` (a ``tools/call`` result with ``isError: true``) and ``other``
(anything else, e.g. an answer that is not JSON-RPC). :func:`error_kind` maps our exception
tree (:mod:`mcp_multi.protocol.errors`) onto them.

A :class:`Tally` is what one process measured for one target: an HDR histogram of the
latencies of successful calls in microseconds, the errors by kind, the warmup calls, and the
measured time. :meth:`Tally.to_wire` and :meth:`Tally.from_wire` carry it from a worker
process to the parent (the histogram in HdrHistogram's compressed, base64 encoding), and
:meth:`Tally.merge` adds several up.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from ...protocol.errors import (
    ConnectionClosed,
    HTTPStatusError,
    JSONRPCError,
    RequestTimeout,
    TransportError,
)

__all__ = [
    "CONNECTION_LOST",
    "HIGHEST_US",
    "OTHER",
    "TIMEOUT",
    "TOOL_ERROR",
    "Tally",
    "error_kind",
    "http_kind",
    "jsonrpc_kind",
    "new_histogram",
]

TIMEOUT = "timeout"
CONNECTION_LOST = "connection lost"
TOOL_ERROR = "tool error"
OTHER = "other"
# The histogram's range: 1 µs to one hour, 3 significant digits.
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3


def jsonrpc_kind(code: Any) -> str:
    return f"jsonrpc {code}"


def http_kind(status: int) -> str:
    return f"http {status}"


def error_kind(exc: BaseException) -> str:
    """The kind of error ``exc`` is (see the module docstring)."""
    if isinstance(exc, JSONRPCError):
        return jsonrpc_kind(exc.code)
    if isinstance(exc, HTTPStatusError):
        return http_kind(exc.status)
    if isinstance(exc, RequestTimeout | TimeoutError):
        return TIMEOUT
    if isinstance(exc, ConnectionClosed | TransportError | OSError):
        return CONNECTION_LOST
    return OTHER


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


class Tally:
    """What was measured of one target (in one process, or merged from several).

    Attributes:
        histogram: latencies of successful calls, in microseconds.
        pending: latencies (seconds) noted but not yet in the histogram: a worker appends
            to this list (the cheapest thing it can do between an answer and its next call)
            and :meth:`flush` moves them into the histogram off that path.
        errors: failed calls by kind.
        warmup_calls: calls made during the warmup (not measured).
        duration: seconds from the start of the measurement to the end of its last call.
        stopped: why the run ended early or partial (``None``: it ran as planned).
    """

    __slots__ = ("duration", "errors", "histogram", "pending", "stopped", "warmup_calls")

    def __init__(self) -> None:
        self.histogram = new_histogram()
        self.pending: list[float] = []
        self.errors: Counter[str] = Counter()
        self.warmup_calls = 0
        self.duration = 0.0
        self.stopped: str | None = None

    @property
    def ok(self) -> int:
        return int(self.histogram.get_total_count()) + len(self.pending)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def calls(self) -> int:
        return self.ok + self.error_count

    def record(self, seconds: float) -> None:
        """One successful call that took ``seconds``."""
        micros = int(seconds * 1_000_000)
        self.histogram.record_value(min(max(micros, LOWEST_US), HIGHEST_US))

    def flush(self) -> None:
        """Move the :attr:`pending` latencies into the histogram."""
        record = self.histogram.record_value
        for seconds in self.pending:
            record(min(max(int(seconds * 1_000_000), LOWEST_US), HIGHEST_US))
        self.pending.clear()

    def to_wire(self) -> dict[str, Any]:
        """This tally as JSON-ready data (for the parent process)."""
        self.flush()
        return {"histogram": self.histogram.encode().decode("ascii"),
                "errors": dict(self.errors), "warmup_calls": self.warmup_calls,
                "duration": self.duration, "stopped": self.stopped}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Tally:
        """The tally :meth:`to_wire` gave.

        Raises:
            ValueError: ``data`` is not such a tally.
        """
        tally = cls()
        try:
            tally.histogram.decode_and_add(data["histogram"].encode("ascii"))
            tally.errors.update({str(k): int(v) for k, v in data["errors"].items()})
            tally.warmup_calls = int(data["warmup_calls"])
            tally.duration = float(data["duration"])
            stopped = data.get("stopped")
            tally.stopped = str(stopped) if stopped is not None else None
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a tally: {exc}") from None
        return tally

    @classmethod
    def merge(cls, parts: list[Tally]) -> Tally:
        """The tallies of processes that ran side by side, added up: their time is the
        longest of theirs, and the first reason any of them stopped is the run's."""
        total = cls()
        for part in parts:
            part.flush()
            total.histogram.add(part.histogram)
            total.errors.update(part.errors)
            total.warmup_calls += part.warmup_calls
            total.duration = max(total.duration, part.duration)
            if total.stopped is None:
                total.stopped = part.stopped
        return total

    def figures(self) -> dict[str, Any]:
        """The measured figures of the JSON report (milliseconds, rounded to the µs)."""
        self.flush()
        histogram = self.histogram

        def ms(micros: float) -> float:
            return round(micros / 1000, 3)

        return {
            "calls": self.calls, "ok": self.ok, "errors": dict(sorted(self.errors.items())),
            "error_count": self.error_count, "warmup_calls": self.warmup_calls,
            "duration_s": round(self.duration, 3),
            "calls_per_s": round(self.calls / self.duration, 1) if self.duration > 0 else 0.0,
            "p50_ms": ms(histogram.get_value_at_percentile(50)),
            "p90_ms": ms(histogram.get_value_at_percentile(90)),
            "p99_ms": ms(histogram.get_value_at_percentile(99)),
            "p999_ms": ms(histogram.get_value_at_percentile(99.9)),
            "max_ms": ms(histogram.get_max_value()),
            "mean_ms": ms(histogram.get_mean_value()),
            "complete": self.stopped is None, "stopped": self.stopped,
        }
