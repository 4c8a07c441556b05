"""The report of a run: a table per target, the side-by-side comparison, the JSON document.

Only :mod:`.cli` prints; this module makes the text. A :class:`TargetReport` is one target's
outcome: its measured figures (:meth:`.outcome.Tally.figures`), or the one line that says
why it could not run. Figures are shown with thousands separators; latencies in
milliseconds with three significant digits at least.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...protocol.text import for_display
from .outcome import Tally
from .plan import Call, Plan

__all__ = ["JSON_VERSION", "TargetReport", "compare_table", "json_document", "target_table"]

JSON_VERSION = 1
# (label, JSON key) of the latency figures, in the order tables show them.
LATENCIES = (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms"),
             ("max", "max_ms"))


@dataclass(slots=True)
class TargetReport:
    """One target's outcome: ``tally`` when it ran, else ``error`` (why it could not)."""

    name: str
    url: str
    transport: str
    protocol_version: str | None = None
    tally: Tally | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether it ran and every measured call succeeded, as planned."""
        return self.tally is not None and self.tally.error_count == 0 \
            and self.tally.stopped is None

    def to_json(self) -> dict[str, Any]:
        if self.tally is None:
            return {"name": self.name, "url": self.url, "error": self.error}
        return {"name": self.name, "url": self.url, "transport": self.transport,
                "protocol_version": self.protocol_version, **self.tally.figures()}


def json_document(started: str, call: Call, plan: Plan,
                  reports: list[TargetReport]) -> dict[str, Any]:
    """The ``--json`` document."""
    return {"version": JSON_VERSION, "started": started, "command": call.label,
            "options": plan.options(), "targets": [r.to_json() for r in reports]}


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _errors(errors: dict[str, int]) -> str:
    if not errors:
        return "none"
    return ", ".join(f"{for_display(kind, 60)} {count:,}" for kind, count in errors.items())


def _heading(report: TargetReport) -> str:
    era = f", protocol {report.protocol_version}" if report.protocol_version else ""
    return f"{report.name}  {for_display(report.url, 200)}  ({report.transport}{era})"


def target_table(report: TargetReport) -> str:
    """One target's table (or its one line when it could not run)."""
    if report.tally is None:
        return f"{report.name}  {for_display(report.url, 200)}  could not run: {report.error}"
    f = report.tally.figures()
    lines = [
        _heading(report),
        f"  calls      {f['calls']:,} in {f['duration_s']:.2f} s = {_rate(f['calls_per_s'])}/s"
        f"   (ok {f['ok']:,}, warmup {f['warmup_calls']:,})",
        "  latency    " + "   ".join(f"{label} {_ms(f[key])} ms" for label, key in LATENCIES)
        + f"   mean {_ms(f['mean_ms'])} ms",
        f"  errors     {_errors(f['errors'])}",
    ]
    if f["stopped"] is not None:
        lines.append(f"  partial    {f['stopped']}")
    return "\n".join(lines)


def compare_table(reports: list[TargetReport]) -> str:
    """The targets side by side, each later one with its ratio to the first."""
    ran = [r for r in reports if r.tally is not None]
    lines = [f"{r.name}: could not run: {r.error}" for r in reports if r.tally is None]
    if not ran:
        return "\n".join(lines)
    figures = [r.tally.figures() for r in ran if r.tally is not None]
    base = figures[0]
    rows: list[list[str]] = [["", *(r.name for r in ran)]]
    rows.append(["transport", *(f"{r.transport} {r.protocol_version or ''}".rstrip()
                                for r in ran)])

    def row(label: str, key: str, show: Any) -> None:
        cells = [label]
        for index, figure in enumerate(figures):
            text = show(figure[key])
            if index and base[key]:
                text += f" ({figure[key] / base[key]:.2f}x)"
            cells.append(text)
        rows.append(cells)

    row("calls", "calls", lambda v: f"{v:,}")
    row("calls/s", "calls_per_s", _rate)
    for label, key in LATENCIES:
        row(f"{label} ms", key, _ms)
    row("mean ms", "mean_ms", _ms)
    row("errors", "error_count", lambda v: f"{v:,}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in rows]
    for r, figure in zip(ran, figures, strict=True):
        if figure["errors"]:
            table.append(f"{r.name} errors: {_errors(figure['errors'])}")
        if figure["stopped"] is not None:
            table.append(f"{r.name} partial: {figure['stopped']}")
    first = ran[0].name
    table.append(f"(x: ratio to {first})" if len(ran) > 1 else "")
    return "\n".join([*lines, *table]).rstrip()
