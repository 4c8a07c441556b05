"""The server's counters in the Prometheus text exposition format, for ``GET /metrics``."""

from __future__ import annotations

import time

from .resources import ServerStats

__all__ = ["render_metrics"]


def _label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(server_name: str, stats: ServerStats, resident_bytes: int, *,
                   instance: str | None = None, worker: int | None = None) -> str:
    """The exposition text of ``stats`` for the server ``server_name``.

    Several processes may answer one address (instances behind a load balancer, workers on
    one port): each counts only what it served, and says which it is in an info gauge, so
    that a scraper (or a test) can tell whose counters it read.

    Args:
        server_name: the ``server`` label of every sample.
        stats: the live counters.
        resident_bytes: the process's resident memory.
        instance: this process's id in a shared session store, if it uses one: rendered as
            ``mcp_instance_info{server=...,instance=...} 1``.
        worker: this process's number among ``--workers``, if it is one of them: rendered
            as ``mcp_worker_info{server=...,worker=...} 1``.
    """
    server = f'server="{_label(server_name)}"'
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.extend((f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"))
        lines.extend(f"{name}{{{server}{labels}}} {value!r}" for labels, value in samples)

    metric("mcp_connections", "gauge", "Open MCP sessions, by transport.",
           [(f',transport="{_label(t)}"', n) for t, n in sorted(stats.by_transport.items())])
    metric("mcp_sessions_total", "counter", "MCP sessions opened.",
           [("", stats.sessions_total)])
    metric("mcp_requests_total", "counter", "JSON-RPC requests served.",
           [("", stats.requests)])
    metric("mcp_sse_posts_total", "counter",
           "Legacy SSE messages POSTed to this process (held here or handed on).",
           [("", stats.posts_accepted)])
    metric("mcp_tool_calls_total", "counter", "tools/call requests that reached a tool.",
           [("", stats.calls_served)])
    metric("mcp_errors_total", "counter", "JSON-RPC error responses sent.",
           [("", stats.errors)])
    metric("mcp_uptime_seconds", "gauge", "Seconds since the server started.",
           [("", round(time.time() - stats.started, 3))])
    metric("process_resident_memory_bytes", "gauge", "Resident memory of the server.",
           [("", resident_bytes)])
    if instance is not None:
        metric("mcp_instance_info", "gauge", "This instance's id in the shared session store.",
               [(f',instance="{_label(instance)}"', 1)])
    if worker is not None:
        metric("mcp_worker_info", "gauge", "This process's number among the server's workers.",
               [(f',worker="{worker}"', 1)])
    return "\n".join(lines) + "\n"
