"""Test mode's output: the table printed on stdout and the JUnit XML or JSON report for CI.

Every text of a :class:`~.checklist.CheckResult` is escaped once more on its way out
(:func:`~mcp_multi.protocol.text.printable` leaves printable text as it is): XML 1.0 cannot
hold most control characters, and a terminal must not receive them.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, replace
from pathlib import Path

from ..protocol.text import printable
from .checklist import FAIL, PASS, SKIP, CheckResult, TestReport

__all__ = ["format_report", "write_report"]


def _escaped(result: CheckResult) -> CheckResult:
    return replace(result, server=printable(result.server), check=printable(result.check),
                   detail=printable(result.detail))


def format_report(report: TestReport) -> list[str]:
    """The report as a table, one line per check, and a summary line."""
    headers = ("SERVER", "CHECK", "RESULT", "TIME", "DETAIL")
    rows = [(printable(r.server), printable(r.check), r.status, f"{r.seconds * 1000:.1f} ms",
             printable(r.detail)) for r in report.results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(headers[:4])]

    def line(cells: tuple[str, ...]) -> str:
        server, check, status, elapsed, detail = cells
        return (f"{server:<{widths[0]}}  {check:<{widths[1]}}  {status:<{widths[2]}}  "
                f"{elapsed:>{widths[3]}}  {detail}").rstrip()

    lines = [line(headers), *(line(row) for row in rows)]
    lines.append(
        f"Summary: {report.count(PASS)} passed, {report.count(FAIL)} failed, "
        f"{report.count(SKIP)} skipped in {report.seconds:.2f} s"
    )
    return lines


def write_report(report: TestReport, path: Path) -> None:
    """Write ``report`` for CI: JSON when ``path`` ends in ``.json``, else JUnit XML."""
    if path.suffix.lower() == ".json":
        document = {
            "passed": report.count(PASS),
            "failed": report.count(FAIL),
            "skipped": report.count(SKIP),
            "seconds": round(report.seconds, 6),
            "ok": report.ok,
            "results": [asdict(_escaped(r)) for r in report.results],
        }
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return
    suites = ET.Element("testsuites", name="mcp-client", tests=str(len(report.results)),
                        failures=str(report.count(FAIL)), skipped=str(report.count(SKIP)),
                        time=f"{report.seconds:.6f}")
    servers: dict[str, list[CheckResult]] = {}
    for result in map(_escaped, report.results):
        servers.setdefault(result.server, []).append(result)
    for server, results in servers.items():
        suite = ET.SubElement(
            suites, "testsuite", name=server, tests=str(len(results)),
            failures=str(sum(r.status == FAIL for r in results)),
            skipped=str(sum(r.status == SKIP for r in results)),
            time=f"{sum(r.seconds for r in results):.6f}")
        for result in results:
            case = ET.SubElement(suite, "testcase", classname=server, name=result.check,
                                 time=f"{result.seconds:.6f}")
            if result.status == FAIL:
                ET.SubElement(case, "failure", message=result.detail).text = result.detail
            elif result.status == SKIP:
                ET.SubElement(case, "skipped", message=result.detail)
            elif result.detail:
                ET.SubElement(case, "system-out").text = result.detail
    ET.indent(suites)
    path.write_bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n")
