"""The shell, driven through pipes against real servers: the seed's sessions, word for word.

The seed's example sessions run as a real ``python mcp_client.py`` process whose stdin is a
pipe; the servers are ours, in this test's event loop, on free loopback ports. Finer error
cases drive :class:`Shell` in-process with a string buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import io
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.repl import Shell, ShellCompleter, run_shell

from ..conftest import StartServer
from .test_shell_parsing import complete

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0


async def run_client(args: list[str], commands: str = "", cwd: Path = ROOT,
                     timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """Run ``python mcp_client.py ARGS`` with ``commands`` on its stdin, within ``timeout``."""
    env = {**os.environ, "MCP_CLIENT_HISTORY": os.devnull, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "mcp_client.py"), *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate(commands.encode())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def seed_root(tmp_path: Path) -> Path:
    """A directory holding what the seed's ``list_files`` example shows."""
    for name in ("mcp_client.py", "mcp_server.py", "README.md"):
        (tmp_path / name).write_text("")
    return tmp_path


async def test_seed_example_session_with_named_servers(
        start_mcp_server: StartServer, seed_root: Path) -> None:
    calc = await start_mcp_server(name="calculator", tools=("math_calc", "echo"), root=seed_root)
    files = await start_mcp_server(name="filesystem", tools=("list_files", "echo"),
                                   root=seed_root)
    admin = await start_mcp_server(name="admin", tools=("run_command", "get_time", "echo"))
    commands = f"""\
servers
tools calc
tools files
call calc math_calc {{"expression": "2 + 2 * 3"}}
call files list_files {{"path": "."}}
add admin localhost:{admin.port} sse
servers
broadcast echo {{"message": "Hello from all servers!"}}
quit
"""
    code, out, err = await run_client(
        [f"calc=localhost:{calc.port}", f"files=localhost:{files.port}",
         "--transport", "websocket"], commands)
    assert code == 0, err
    echo = "{'content': [{'type': 'text', 'text': 'Echo: Hello from all servers!'}]}"
    assert out.splitlines() == [
        "Connected servers: ['calc', 'files']",
        "[calc]:",
        "  math_calc: Perform basic math calculations",
        "  echo: Echo back the provided message",
        "[files]:",
        "  list_files: List files in a directory",
        "  echo: Echo back the provided message",
        "Result: {'content': [{'type': 'text', 'text': '2 + 2 * 3 = 8'}]}",
        "Result: {'content': [{'type': 'text', 'text': "
        "'Files in .:\\nmcp_client.py\\nmcp_server.py\\nREADME.md'}]}",
        "Add server succeeded",
        "Connected servers: ['calc', 'files', 'admin']",
        f"[calc] {{'jsonrpc': '2.0', 'id': 1, 'result': {echo}}}",
        f"[files] {{'jsonrpc': '2.0', 'id': 1, 'result': {echo}}}",
        f"[admin] {{'jsonrpc': '2.0', 'id': 1, 'result': {echo}}}",
    ]
    assert "Connected to calc at ws://localhost:" in err


async def test_seed_tool_filtering_and_error_handling(start_mcp_server: StartServer) -> None:
    math = await start_mcp_server(name="math-only", tools=("math_calc",))
    time_ = await start_mcp_server(name="time-only", tools=("get_time",))
    full = await start_mcp_server(name="full-server")
    commands = """\
tools math    # Should only show math_calc
tools time    # Should only show get_time
call math math_calc {"expression": "10 * 5"}
call math get_time {} # Should fail - tool not enabled
call math nonexistent_tool {}
call math math_calc {"expression": "invalid"}
call nonexistent_server echo {"message": "test"}
call full resources/read {"uri": "server://info"}
call full echo {"message": "unterminated"
remove time
servers
"""
    code, out, err = await run_client(
        [f"math=localhost:{math.port}", f"time=localhost:{time_.port}",
         f"full=localhost:{full.port}"], commands)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:4] == ["[math]:", "  math_calc: Perform basic math calculations",
                         "[time]:", "  get_time: Get the current server time"]
    rest = lines[4:]
    assert rest[0] == "Result: {'content': [{'type': 'text', 'text': '10 * 5 = 50'}]}"
    assert rest[1] == "Error: Tool 'get_time' is not enabled on this server (-32602)"
    assert rest[2].startswith("Error: Unknown tool: nonexistent_tool")
    assert rest[3].startswith("Result: {") and "'isError': True" in rest[3]
    assert rest[4] == "Error: Unknown server: nonexistent_server (connected: math, time, full)"
    assert rest[5].startswith("Result: {'contents': [{'uri': 'server://info'")
    assert '"full-server"' in rest[5]
    assert rest[6].startswith("Error: invalid JSON arguments at column")
    assert rest[7:] == ["Remove server succeeded", "Connected servers: ['math', 'full']"]


async def test_auto_names_and_sse_transport_from_the_command_line(
        start_mcp_server: StartServer) -> None:
    one = await start_mcp_server(name="one")
    two = await start_mcp_server(name="two")
    code, out, err = await run_client(
        [f"localhost:{one.port}", f"localhost:{two.port}", "--transport", "sse"],
        'servers\nbroadcast get_time {}\ncall server2 echo {"message": "SSE Server 2"}\n')
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Connected servers: ['server1', 'server2']"
    assert lines[1].startswith("[server1] {'jsonrpc': '2.0', 'id': 1, 'result': {'content'")
    assert lines[2].startswith("[server2] {'jsonrpc': '2.0', 'id': 1, 'result': {'content'")
    assert lines[3] == "Result: {'content': [{'type': 'text', 'text': 'Echo: SSE Server 2'}]}"
    assert "(sse, server 'one'" in err


async def test_failed_add_and_startup_failure(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    await server.close()  # its port is now closed
    code, out, err = await run_client(
        [f"ghost=localhost:{server.port}"],
        f"add sse1 localhost:{server.port} sse\nservers\n")
    assert code == 0
    assert out.splitlines() == [
        f"Failed to add server: Cannot connect to http://localhost:{server.port}/sse: "
        "Connection refused",
        "Connected servers: []",
    ]
    assert f"Failed to connect to ghost (ws://localhost:{server.port}/ws)" in err


def stdio_server_command(name: str, *tools: str) -> str:
    """The command line of our server on stdio, as a shell would take it."""
    words = [sys.executable, "-m", "mcp_multi.server", "--stdio", "--name", name,
             "--log-level", "WARNING"]
    if tools:
        words += ["--tools", *tools]
    return " ".join(words)


async def test_one_session_with_a_stdio_server_and_a_streamable_http_server(
        start_mcp_server: StartServer) -> None:
    http = await start_mcp_server(name="http-server", tools=("echo", "math_calc"))
    stdio = stdio_server_command("stdio-server", "echo", "get_time")
    commands = f"""\
add local stdio {stdio}
add api2 localhost:{http.port} http
servers
tools local
call api math_calc {{"expression": "2 + 2 * 3"}}
call local echo {{"message": "over stdio"}}
call api2 echo {{"message": "over http"}}
call local math_calc {{"expression": "1"}}
broadcast echo {{"message": "both"}}
remove local
servers
quit
"""
    code, out, err = await run_client([f"api=http://127.0.0.1:{http.port}/mcp"], commands)
    assert code == 0, err
    echo = "{'content': [{'type': 'text', 'text': 'Echo: both'}]}"
    assert out.splitlines() == [
        "Add server succeeded",
        "Add server succeeded",
        "Connected servers: ['api', 'local', 'api2']",
        "[local]:",
        "  echo: Echo back the provided message",
        "  get_time: Get the current server time",
        "Result: {'content': [{'type': 'text', 'text': '2 + 2 * 3 = 8'}]}",
        "Result: {'content': [{'type': 'text', 'text': 'Echo: over stdio'}]}",
        "Result: {'content': [{'type': 'text', 'text': 'Echo: over http'}]}",
        "Error: Tool 'math_calc' is not enabled on this server (-32602)",
        f"[api] {{'jsonrpc': '2.0', 'id': 1, 'result': {echo}}}",
        f"[local] {{'jsonrpc': '2.0', 'id': 1, 'result': {echo}}}",
        f"[api2] {{'jsonrpc': '2.0', 'id': 1, 'result': {echo}}}",
        "Remove server succeeded",
        "Connected servers: ['api', 'api2']",
    ]
    assert "(http, server 'http-server', protocol 2026-07-28)" in err


async def test_command_line_stdio_and_http_servers_with_a_forced_version(
        start_mcp_server: StartServer) -> None:
    http = await start_mcp_server(name="h")
    code, out, err = await run_client(
        [f"api=http://127.0.0.1:{http.port}/mcp",
         f"local=stdio:{stdio_server_command('s')}", "--protocol-version", "2025-06-18",
         "--trace"], 'call local echo {"message": "x"}\nservers\n')
    assert code == 0, err
    assert out.splitlines() == ["Result: {'content': [{'type': 'text', 'text': 'Echo: x'}]}",
                                "Connected servers: ['api', 'local']"]
    assert "(http, server 'h', protocol 2025-06-18)" in err
    assert "(stdio, server 's', protocol 2025-06-18)" in err
    assert "server/discover" not in err  # a forced handshake version: no probe
    code, _, err = await run_client(["--protocol-version", "1999-01-01"], "")
    assert code == 2 and "invalid choice: '1999-01-01'" in err


async def test_demo_opens_the_seed_servers() -> None:
    code, out, err = await run_client(
        ["--demo"], 'servers\ntools admin\ncall calc math_calc {"expression": "2 + 2 * 3"}\n'
                    'call files list_files {"path": "."}\nquit\n')
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:5] == [
        "Connected servers: ['calc', 'files', 'admin']",
        "[admin]:",
        "  run_command: Execute a shell command",
        "  get_time: Get the current server time",
        "  echo: Echo back the provided message",
    ]
    assert "Result: {'content': [{'type': 'text', 'text': '2 + 2 * 3 = 8'}]}" in lines
    assert any(line.startswith("Result: {'content': [{'type': 'text', 'text': 'Files in .:")
               for line in lines)
    assert "(sse, server 'filesystem'" in err


async def test_trace_prints_every_frame_to_stderr(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    code, out, err = await run_client(
        [f"s1=localhost:{server.port}", "--trace"], "call s1 echo {\"message\": \"hi\"}\n")
    assert code == 0
    assert out == "Result: {'content': [{'type': 'text', 'text': 'Echo: hi'}]}\n"
    assert '[s1] -> {"jsonrpc":"2.0","id":1,"method":"initialize"' in err
    assert '[s1] <- {"jsonrpc":"2.0","id":1,"result":' in err
    assert '[s1] -> {"jsonrpc":"2.0","method":"notifications/initialized"}' in err
    assert ('[s1] -> {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo",'
            '"arguments":{"message":"hi"},"_meta":{"progressToken":"shell-1"}}}') in err
    assert "[s1] progress 0: Calling echo\n" in err  # progress is status: stderr


async def test_help_and_bad_command_lines() -> None:
    code, out, _ = await run_client(["--help"], "")
    assert code == 0 and "--transport" in out and "--mode" in out and "--demo" in out
    code, _, err = await run_client(["calc=localhost:99999"], "")
    assert code == 2 and "bad port 99999" in err
    code, _, err = await run_client(["localhost:1", "--transport", "pigeon"], "")
    assert code == 2 and "unknown transport" in err


async def shell_lines(client: MultiServerMCPClient, commands: str) -> list[str]:
    out = io.StringIO()
    await run_shell(Shell(client, out=out), terminal=False, stdin=io.StringIO(commands))
    return out.getvalue().splitlines()


async def test_shell_in_process_usage_errors(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server(name="s", tools=("echo",))
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("s1", f"localhost:{server.port}")
        lines = await shell_lines(client, """\
frobnicate
call s1
add onlyname
remove
tools a b
broadcast
broadcast echo [1]
call s1 echo {"message": "ok"}
exit
servers
""")
    assert lines == [
        "Error: unknown command 'frobnicate' (type 'help' for the commands)",
        "Error: usage: call <server> <tool|method> [json_args]",
        "Error: usage: add <name> <host:port|url> [transport] | add <name> stdio <command...>",
        "Error: usage: remove <name>",
        "Error: usage: tools [server]",
        "Error: usage: broadcast <tool> [json_args]",
        "Error: JSON arguments must be an object, not list",
        "Result: {'content': [{'type': 'text', 'text': 'Echo: ok'}]}",
    ]


async def test_shell_with_no_servers_and_a_server_gone(start_mcp_server: StartServer) -> None:
    async with MultiServerMCPClient(timeout=10) as client:
        assert await shell_lines(client, "servers\ntools\nbroadcast echo {}\n") == [
            "Connected servers: []", "No servers connected", "Error: no servers connected"]
        server = await start_mcp_server()
        connection = await client.add("gone", f"localhost:{server.port}")
        await server.close()
        with pytest.raises(Exception):  # noqa: B017 - until the reader has seen the close
            async with asyncio.timeout(10):
                while True:
                    await connection.ping()
        lines = await shell_lines(client, "tools\ncall gone echo {}\nbroadcast echo {}\n")
    assert lines[0].startswith("[gone]: Error: gone: ")
    assert lines[1].startswith("Error: gone: ")
    assert lines[2].startswith("[gone] Error: gone: ")


async def test_terminal_mode_keeps_history_and_completes_names(
        start_mcp_server: StartServer, tmp_path: Path) -> None:
    server = await start_mcp_server(tools=("echo", "get_time"))
    history = tmp_path / "state" / "history"
    out = io.StringIO()
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("calc", f"localhost:{server.port}")
        await client.list_tools()
        completer = ShellCompleter(client)
        assert complete(completer, "call c") == ["calc"]
        assert complete(completer, "call calc ge") == ["get_time"]
        assert complete(completer, "broadcast e") == ["echo"]
        assert complete(completer, "tools ") == ["calc"]
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            pipe.send_text('servers\rcall calc echo {"message": "tty"}\rquit\r')
            async with asyncio.timeout(TIMEOUT):
                await run_shell(Shell(client, out=out), terminal=True, history_path=history)
    assert out.getvalue().splitlines() == [
        "Connected servers: ['calc']",
        "Result: {'content': [{'type': 'text', 'text': 'Echo: tty'}]}",
    ]
    assert "+servers" in history.read_text() and "+quit" in history.read_text()


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_real_terminal_prompt_and_tab_completion(tmp_path: Path) -> None:
    """``mcp-client --demo`` on a pseudo-terminal: prompt_toolkit, completion, history."""
    master, slave = os.openpty()
    history = tmp_path / "history"
    env = {**os.environ, "MCP_CLIENT_HISTORY": str(history), "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "mcp_client.py"), "--demo"],
                            stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env,
                            cwd=ROOT)
    os.close(slave)
    seen = b""

    def read_until(token: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + TIMEOUT
        while token not in seen:
            assert time.monotonic() < deadline, (token, seen[-500:])
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 65536)

    try:
        read_until(b"\x1b[?2004h")  # the prompt is up (bracketed paste switched on)
        os.write(master, b"servers\r")
        read_until(b"Connected servers: ['calc', 'files', 'admin']")
        os.write(master, b"call calc ma\t")
        read_until(b"math_calc")
        os.write(master, b' {"expression": "6 * 7"}\r')
        read_until(b"6 * 7 = 42")
        os.write(master, b"quit\r")
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        assert proc.stderr is not None
        proc.stderr.close()
    assert "+call calc math_calc" in history.read_text()


@contextlib.asynccontextmanager
async def _piped_client(port: int) -> AsyncIterator[asyncio.subprocess.Process]:
    """The client shell reading commands from a pipe that stays open, connected to the server
    on ``port`` as ``s`` and done with its first command; killed at the end if it still runs."""
    env = {**os.environ, "MCP_CLIENT_HISTORY": os.devnull}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "mcp_client.py"), f"s=localhost:{port}", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        async with asyncio.timeout(TIMEOUT):
            assert (await proc.stderr.readline()).startswith(b"Connected to s at ")
            proc.stdin.write(b"servers\n")
            assert await proc.stdout.readline() == b"Connected servers: ['s']\n"
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_ctrl_c_while_waiting_for_piped_input_exits(start_mcp_server: StartServer) -> None:
    server = await start_mcp_server()
    async with _piped_client(server.port) as proc, asyncio.timeout(TIMEOUT):
        proc.send_signal(signal.SIGINT)  # stdin stays open: the reader thread is blocked
        assert await proc.wait() == 130


def _tgkill() -> Callable[[int, int, int], int] | None:
    """glibc's tgkill (a signal to one thread of another process), where there is one."""
    try:
        return cast(Callable[[int, int, int], int], ctypes.CDLL(None, use_errno=True).tgkill)
    except (AttributeError, OSError):
        return None


def _wchan(pid: int) -> str:
    """Where in the kernel the main thread of ``pid`` sleeps ("" where /proc does not say)."""
    try:
        return Path(f"/proc/{pid}/task/{pid}/wchan").read_text()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/wchan").is_file() or _tgkill() is None,
                    reason="needs /proc and tgkill to pick the thread that gets the signal")
async def test_ctrl_c_given_to_another_thread_still_exits(start_mcp_server: StartServer) -> None:
    """The kernel may hand Ctrl-C to any thread of the client (the stdin reader, a resolver
    thread), and only the main thread runs the handler: asleep waiting for a line, it must
    still be woken. Before, the client then waited for input for ever (seen on busy CI)."""
    tgkill = _tgkill()
    assert tgkill is not None
    server = await start_mcp_server()
    async with _piped_client(server.port) as proc, asyncio.timeout(TIMEOUT):
        # The main thread asleep in the loop's select (else it would run the handler at its
        # next step anyway, and this test would prove nothing).
        while "epoll" not in _wchan(proc.pid):  # noqa: ASYNC110 - no event for this
            await asyncio.sleep(0.01)
        others = sorted(int(tid) for tid in os.listdir(f"/proc/{proc.pid}/task")
                        if int(tid) != proc.pid)
        assert others, "the stdin reader thread is running"
        assert tgkill(proc.pid, others[-1], signal.SIGINT) == 0
        assert await proc.wait() == 130


async def test_servers_tells_connected_from_disconnected(start_mcp_server: StartServer) -> None:
    alive = await start_mcp_server(name="alive", tools=("echo",))
    doomed = await start_mcp_server(name="doomed", tools=("echo",))
    async with MultiServerMCPClient(timeout=10) as client:
        await client.add("a", f"localhost:{alive.port}")
        await client.add("d", f"localhost:{doomed.port}", "sse")
        await doomed.close()
        async with asyncio.timeout(TIMEOUT):
            while client.get("d").closed_reason is None:  # noqa: ASYNC110 - the reader's state
                await asyncio.sleep(0.01)
        lines = await shell_lines(client, "servers\n")
        assert lines[0] == "Connected servers: ['a']"
        assert lines[1].startswith("Disconnected servers: d (")
        lines = await shell_lines(client, f"add d localhost:{alive.port}\nservers\n")
        assert lines == ["Add server succeeded", "Connected servers: ['a', 'd']"]
