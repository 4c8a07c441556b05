"""The seed's server command lines, run as real processes."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from .wire import connect

ROOT = Path(__file__).resolve().parents[2]
SHIM = str(ROOT / "mcp_server.py")


@asynccontextmanager
async def running(*args: str) -> AsyncIterator[str]:
    """Run ``mcp_server.py ARGS --port 0``; yields the base URL it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, SHIM, *args, "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r" on (\S+):(\d+) ", line)
        assert match, line
        yield f"http://{match[1]}:{match[2]}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


@pytest.mark.parametrize("args, tools", [
    ((), ["echo", "get_time", "list_files", "run_command", "math_calc"]),
    (("--name", "math-server", "--tools", "math_calc", "echo"), ["math_calc", "echo"]),
    (("--name", "file-server", "--tools", "list_files", "echo"), ["list_files", "echo"]),
    (("--host", "127.0.0.1", "--name", "admin", "--tools", "run_command", "get_time",
      "list_files"), ["run_command", "get_time", "list_files"]),
])
async def test_seed_command_lines(args: tuple[str, ...], tools: list[str]) -> None:
    async with running(*args) as url:
        for transport in ("websocket", "sse"):
            peer = await connect(transport, url)
            init = await peer.initialize()
            name = args[args.index("--name") + 1] if "--name" in args else "mcp-server"
            assert init["result"]["serverInfo"]["name"] == name
            listed = (await peer.request("tools/list"))["result"]["tools"]
            assert [t["name"] for t in listed] == tools
            await peer.close()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SHIM, *args], capture_output=True, text=True,
                          timeout=30, cwd=ROOT)


def test_help() -> None:
    out = _run("--help")
    assert out.returncode == 0
    for option in ("--host", "--port", "--name", "--tools", "--root", "--log-level"):
        assert option in out.stdout


def test_unknown_tool_is_a_startup_error() -> None:
    out = _run("--tools", "math_calc", "bogus")
    assert out.returncode == 2
    assert "unknown tool(s): bogus; valid tools: echo, get_time, list_files, run_command, " \
           "math_calc" in out.stderr
    assert "Traceback" not in out.stderr


async def test_port_in_use_is_one_line() -> None:
    async with running() as url:
        port = url.rsplit(":", 1)[1]
        out = await asyncio.to_thread(_run, "--port", port)
    assert out.returncode == 1
    assert "cannot listen on 127.0.0.1:" + port in out.stderr
    assert "Traceback" not in out.stderr


def test_help_says_what_the_token_guards() -> None:
    out = _run("--help")
    assert "/metrics" in out.stdout and "/healthz stays open" in " ".join(out.stdout.split())


def test_connection_limits_are_options_with_one_line_errors() -> None:
    out = _run("--help")
    for option in ("--max-connections", "--header-timeout", "--keepalive-timeout"):
        assert option in out.stdout
    for args, message in ((("--max-connections", "0"), "--max-connections 0 is out of range"),
                          (("--header-timeout", "nan"), "--header-timeout nan must be"),
                          (("--keepalive-timeout", "-1"), "--keepalive-timeout -1.0 must be")):
        out = _run(*args)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_buffer_and_body_bounds_are_options_with_one_line_errors() -> None:
    from mcp_multi.server.cli import build_parser, settings_from_args

    out = _run("--help")
    for option in ("--max-buffered-bytes", "--body-timeout"):
        assert option in out.stdout
    settings = settings_from_args(build_parser().parse_args(
        ["--max-buffered-bytes", "1000000", "--body-timeout", "2.5"]))
    assert settings.body_timeout == 2.5
    assert (settings.websocket_total_buffer == settings.sse_total_buffer
            == settings.http_total_buffer == 1000000)
    for args, message in ((("--max-buffered-bytes", "0"), "--max-buffered-bytes 0 is out of"),
                          (("--body-timeout", "inf"), "--body-timeout inf must be")):
        out = _run(*args)
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_send_timeout_is_an_option_for_every_transport() -> None:
    from mcp_multi.server.cli import build_parser, settings_from_args

    assert "--send-timeout" in _run("--help").stdout
    settings = settings_from_args(build_parser().parse_args(["--send-timeout", "2.5"]))
    assert settings.send_timeout == settings.websocket_send_timeout == 2.5
    out = _run("--send-timeout", "0")
    assert out.returncode == 2 and "--send-timeout 0.0 must be" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_scale_out_options_are_documented_and_parsed() -> None:
    from mcp_multi.server.cli import build_parser, settings_from_args

    help_text = " ".join(_run("--help").stdout.split())
    assert "--session-store URL" in help_text and "--workers N" in help_text
    assert "Without it sessions stay in this process's memory" in help_text
    assert "--as-worker" not in help_text  # the supervisor's own marker
    settings = settings_from_args(build_parser().parse_args(
        ["--session-store", "redis://127.0.0.1:6379/2", "--workers", "3"]))
    assert settings.session_store == "redis://127.0.0.1:6379/2" and settings.workers == 3
    assert settings.worker is None
    assert "6379" not in repr(settings)  # a store URL may carry a password
    defaults = settings_from_args(build_parser().parse_args([]))
    assert defaults.session_store is None and defaults.workers == 1


def test_several_workers_without_a_store_are_refused_in_one_line() -> None:
    out = _run("--workers", "2")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "mcp-server: error: --workers 2 needs --session-store: sessions live in one "
        "process's memory, so a request reaching another worker would not find its session"]
    # The supervisor's marker, given by hand, finds no supervisor at the other end of stdin.
    out = subprocess.run([sys.executable, SHIM, "--as-worker", "1"], capture_output=True,
                         text=True, timeout=30, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "mcp-server: error: --as-worker is given by the supervisor of --workers to the "
        "processes it starts, not by hand"]


@pytest.mark.parametrize("args, message", [
    (("--workers", "2", "--stdio", "--session-store", "redis://127.0.0.1/0"),
     "--workers 2 cannot be used with --stdio"),
    (("--session-store", "http://127.0.0.1:6379/0"),
     "--session-store http://127.0.0.1:6379/0: a session store is redis://HOST:PORT/DB, "
     "rediss://HOST:PORT/DB or unix://PATH"),
    (("--session-store", "redis://user:secret@127.0.0.1:99999/0"),
     "--session-store redis://user:***@127.0.0.1:99999/0: a session store is"),
    (("--session-store", "redis://127.0.0.1/x"), "--session-store redis://127.0.0.1/x: a"),
    (("--session-store", "unix://"), "--session-store unix://: a session store is"),
    (("--workers", "2", "--session-store", "redis://h/0", "--as-worker", "3"),
     "--as-worker 3 is out of range"),
])
def test_scale_out_mistakes_are_one_line_usage_errors(
        args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from mcp_multi.server.cli import main

    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"mcp-server: error: {message}"), err
    assert "secret" not in err


def test_session_store_urls_of_every_kind_pass() -> None:
    from mcp_multi.server.cli import check_session_store_url

    for url in ("redis://127.0.0.1:6379/0", "redis://localhost", "rediss://u:p@cache:6380/1",
                "unix:///run/redis/redis.sock"):
        check_session_store_url(url)
