"""The run_command tool: exit codes, output cap, and no process outliving the call."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mcp_multi.server.cli import build_parser, settings_from_args
from mcp_multi.server.settings import ServerSettings
from mcp_multi.server.tools import ToolContext, ToolError
from mcp_multi.server.tools.run_command import TOOL


def _ctx(root: Path, **settings: Any) -> ToolContext:
    return ToolContext(settings=ServerSettings(root=root, **settings))


async def _run(root: Path, command: str, **settings: Any) -> dict[str, Any]:
    return await TOOL.handler({"command": command}, _ctx(root, **settings))


def _is_gone(pid: int) -> bool:
    """True once ``pid`` has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not _is_gone(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def _read_line(path: Path) -> str | None:
    """The first line of ``path`` once it is completely written, else ``None``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text if text.endswith("\n") else None


async def _wait_for_line(path: Path, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while (line := _read_line(path)) is None:
        assert time.monotonic() < deadline, f"{path} never written"
        await asyncio.sleep(0.01)
    return line


async def test_output_and_exit_code(tmp_path: Path) -> None:
    result = await _run(tmp_path, "echo out; echo err >&2")
    assert result == {
        "content": [{"type": "text", "text": "out\nerr\nExit code: 0"}],
        "structuredContent": {
            "exitCode": 0,
            "output": "out\nerr\n",
            "truncated": False,
            "timedOut": False,
        },
    }


async def test_output_without_final_newline(tmp_path: Path) -> None:
    result = await _run(tmp_path, "printf abc")
    assert result["content"][0]["text"] == "abc\nExit code: 0"
    assert result["structuredContent"]["output"] == "abc"


async def test_nonzero_exit_is_an_error_result(tmp_path: Path) -> None:
    result = await _run(tmp_path, "echo failing; exit 3")
    assert result["isError"] is True
    assert result["content"][0]["text"] == "failing\nExit code: 3"
    assert result["structuredContent"]["exitCode"] == 3


@pytest.fixture
def real_root(tmp_path: Path) -> Path:
    return tmp_path.resolve()


async def test_runs_in_the_root_with_no_stdin(real_root: Path) -> None:
    result = await _run(real_root, "pwd -P; cat")  # cat would block on an inherited stdin
    assert result["structuredContent"]["output"] == f"{real_root}\n"


async def test_undecodable_output_is_replaced(tmp_path: Path) -> None:
    result = await _run(tmp_path, r"printf 'a\377b'")
    assert result["structuredContent"]["output"] == "a\ufffdb"


async def test_output_is_capped_and_the_rest_drained(tmp_path: Path) -> None:
    # 1 MB through a 1000-byte cap: the writer must still finish (we keep draining).
    result = await _run(
        tmp_path, "head -c 1000000 /dev/zero | tr '\\0' x", command_output_cap=1000
    )
    structured = result["structuredContent"]
    assert structured == {
        "exitCode": 0,
        "output": "x" * 1000,
        "truncated": True,
        "timedOut": False,
    }
    assert result["content"][0]["text"] == (
        "x" * 1000 + "\n[output truncated at 1000 bytes]\nExit code: 0"
    )
    assert "isError" not in result


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    result = await TOOL.handler(
        {"command": "sleep 30 & echo $!; sleep 30", "timeout": 0.3}, _ctx(tmp_path)
    )
    assert time.monotonic() - started < 5
    assert result["isError"] is True
    assert result["content"][0]["text"].endswith("\nCommand timed out after 0.3s")
    structured = result["structuredContent"]
    assert structured["timedOut"] is True
    grandchild = int(structured["output"])
    assert await _wait_gone(grandchild), "background job survived the timeout"


async def test_timeout_is_capped_by_the_server_limit(tmp_path: Path) -> None:
    result = await TOOL.handler(
        {"command": "sleep 30", "timeout": 100}, _ctx(tmp_path, command_timeout=0.2)
    )
    assert result["content"][0]["text"] == "Command timed out after 0.2s"
    assert result["structuredContent"]["exitCode"] == -9


async def test_background_job_holding_output_hits_the_timeout(tmp_path: Path) -> None:
    result = await _run(tmp_path, "sleep 30 & echo started", command_timeout=0.3)
    assert result["content"][0]["text"] == "started\nCommand timed out after 0.3s"


async def test_leftovers_are_cleared_after_a_normal_exit(tmp_path: Path) -> None:
    result = await _run(tmp_path, "sleep 30 >/dev/null 2>&1 & echo $!")
    assert result["structuredContent"]["exitCode"] == 0
    assert await _wait_gone(int(result["structuredContent"]["output"]))


async def test_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "bg.pid"
    task = asyncio.create_task(_run(tmp_path, f"sleep 30 & echo $! > {pid_file}; sleep 30"))
    grandchild = int(await _wait_for_line(pid_file))
    assert not _is_gone(grandchild)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _wait_gone(grandchild), "background job survived cancellation"


async def test_refused_on_a_public_bind_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(ToolError) as err:
        await _run(tmp_path, "echo hi", host="0.0.0.0")
    assert str(err.value) == (
        "run_command is refused: the server listens on 0.0.0.0, not loopback, "
        "and no auth token is set"
    )
    result = await _run(tmp_path, "echo hi", host="0.0.0.0", auth_token="secret")
    assert result["structuredContent"]["output"] == "hi\n"


async def test_blank_command(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="No command given"):
        await _run(tmp_path, "   ")


async def test_missing_root_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="Cannot start command"):
        await _run(tmp_path / "missing", "true")


def test_run_command_listing() -> None:
    wire = TOOL.to_wire()
    assert wire["description"] == "Execute a shell command"
    schema = wire["inputSchema"]
    assert schema["required"] == ["command"]
    assert schema["properties"]["command"]["minLength"] == 1
    assert schema["properties"]["timeout"]["type"] == "number"
    assert wire["annotations"]["destructiveHint"] is True
    assert wire["annotations"]["openWorldHint"] is True


async def test_a_call_over_the_cap_waits_for_a_slot_then_is_told_busy(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, max_commands=1, command_slot_wait=0.2)
    pid_file = tmp_path / "pid"
    first = asyncio.create_task(TOOL.handler({"command": f"echo $$ > {pid_file}; sleep 30"}, ctx))
    await _wait_for_line(pid_file)
    started = time.monotonic()
    with pytest.raises(ToolError) as err:
        await TOOL.handler({"command": "echo never"}, ctx)
    assert time.monotonic() - started >= 0.2
    assert str(err.value) == ("Server busy: 1 commands are already running, the most the "
                              "server runs at once; try again later")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # The cancelled call gave its slot back.
    assert (await TOOL.handler({"command": "echo next"}, ctx))["content"][0]["text"] == (
        "next\nExit code: 0")


def test_max_commands_option() -> None:
    parser = build_parser()
    assert settings_from_args(parser.parse_args(["--max-commands", "3"])).max_commands == 3
    assert settings_from_args(parser.parse_args([])).max_commands == 8
    with pytest.raises(ValueError, match="--max-commands 0 is out of range"):
        settings_from_args(parser.parse_args(["--max-commands", "0"]))
