"""``--mode test``: run the checklist on every connected server, print the table, write a report.

The checklist itself is :mod:`.checklist`; the table and the JUnit XML or JSON report are
:mod:`.reports`. This module only runs one after the other and turns the verdict into the
process exit code (0: no check failed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .checklist import (
    KNOWN_TOOLS,
    CheckResult,
    TestReport,
    run_checks,
    sample_arguments,
)
from .multi import MultiServerMCPClient
from .reports import format_report, write_report

__all__ = [
    "KNOWN_TOOLS",
    "CheckResult",
    "TestReport",
    "format_report",
    "run_checks",
    "run_test_mode",
    "sample_arguments",
    "write_report",
]


async def run_test_mode(
    client: MultiServerMCPClient,
    connect_errors: dict[str, Exception],
    *,
    report_path: Path | None,
    write: Callable[[str], None],
    status: Callable[[str], None],
) -> int:
    """Run the checklist, print the table, write the report; return the exit code.

    Args:
        client: the connected servers (each is removed by the checklist's last check).
        connect_errors: servers that could not be connected; each fails its handshake.
        report_path: where to write the report (JSON if it ends in ``.json``), or ``None``.
        write: where the table's lines go (stdout).
        status: where status and error lines go (stderr).
    """
    report = await run_checks(client, connect_errors)
    for line in format_report(report):
        write(line)
    if report_path is not None:
        try:
            write_report(report, report_path)
        except OSError as exc:
            status(f"Error: cannot write the report {report_path}: {exc.strerror or exc}")
            return 1
        status(f"Report written to {report_path}")
    return 0 if report.ok else 1
