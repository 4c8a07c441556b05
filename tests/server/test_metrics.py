"""``/metrics`` text: the counters, and which process rendered them."""

from __future__ import annotations

from mcp_multi.server.metrics import render_metrics
from mcp_multi.server.resources import ServerStats


def test_one_process_alone_says_nothing_of_instances_or_workers() -> None:
    stats = ServerStats()
    stats.opened("http")
    text = render_metrics("srv", stats, 1024)
    assert 'mcp_connections{server="srv",transport="http"} 1' in text
    assert "mcp_instance_info" not in text and "mcp_worker_info" not in text


def test_an_instance_and_a_worker_name_themselves() -> None:
    text = render_metrics('a "b"', ServerStats(), 1024, instance="0123456789ab", worker=2)
    lines = text.splitlines()
    assert "# TYPE mcp_instance_info gauge" in lines
    assert 'mcp_instance_info{server="a \\"b\\"",instance="0123456789ab"} 1' in lines
    assert "# TYPE mcp_worker_info gauge" in lines
    assert 'mcp_worker_info{server="a \\"b\\"",worker="2"} 1' in lines
    assert text.endswith("\n")
