"""The shell's commands for resources, templates, prompts, completions, subscriptions, the
log level and tasks, and how it shows notifications, progress and rich tool results.

The servers are real: the official SDK's server of ``sdk_features_server.py`` (it has every
feature these commands use) over Streamable HTTP in both protocol eras and over stdio, ours,
and a scripted one that offers nothing but tools. The shell is driven through a string
stdin, as a pipe would drive it.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mcp_multi.client.commands import Shell
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.notices import Notices
from mcp_multi.client.repl import ShellCompleter, run_shell
from mcp_multi.client.testmode import run_checks
from mcp_multi.transport import stdio_url

from ..conftest import StartServer
from .scripted import StartScripted
from .sdk_features_server import build_features_server
from .test_sdk_interop import serving
from .test_shell_parsing import complete

FEATURES_STDIO = Path(__file__).with_name("sdk_features_server.py")


class ShellRun:
    """A shell whose client shows notifications; ``out`` and ``err`` collect its output."""

    def __init__(self, **client_options: Any) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self.notices = Notices(lambda line: self.out.write(line + "\n"), status=self.err)
        self.client = MultiServerMCPClient(timeout=20, on_notification=self.notices.hook,
                                           **client_options)
        self.shell = Shell(self.client, out=self.out, notices=self.notices)

    async def lines(self, commands: str) -> list[str]:
        start = len(self.out.getvalue())
        await run_shell(self.shell, terminal=False, stdin=io.StringIO(commands))
        return self.out.getvalue()[start:].splitlines()


@pytest.fixture
async def features_url() -> AsyncIterator[str]:
    async with serving(build_features_server().streamable_http_app()) as port:
        yield f"http://127.0.0.1:{port}/mcp"


@pytest.mark.parametrize("version", ["2025-11-25", None])  # None: 2026-07-28 with this SDK
async def test_lists_reads_prompts_and_completions(features_url: str,
                                                   version: str | None) -> None:
    run = ShellRun(protocol_version=version)
    async with run.client:
        await run.client.add("f", features_url)
        lines = await run.lines("""\
resources
templates f
prompts
read f info://about
read f file:///notes.txt
prompt f greet {"name": "Ada", "style": "warm"}
complete f prompt:greet name a
complete f resource:file:///{path} path s
complete f prompt:greet name zzz
tasks
""")
    assert lines == [
        "[f]:",
        "  info://about: about (text/plain) - What this server is",
        "[f]:",
        "  file:///{path}: file (text/plain) - A file by its path",
        "[f]:",
        "  greet(name, style?): Greet someone",
        "[f] info://about:",
        "  info://about (text/plain):",
        "    a features server",
        "    with two lines",
        "[f] file:///notes.txt:",
        "  file:///notes.txt (text/plain):",
        "    contents of notes.txt",
        "[f] prompt greet:",
        "  description: Greet someone",
        "  user:",
        "    Say hello to Ada in a warm way",
        "[f]:", "  Ada", "  Alan", "  (2 shown of 2)",
        "[f]:", "  src", "  (1 shown of 1)",
        "[f]:", "  (no completions)", "  (0 shown of 0)",
        "[f]: no tasks (the server does not offer them)",
    ]


async def test_every_server_at_once_and_one_line_for_what_a_server_lacks(
        features_url: str, start_mcp_server: StartServer,
        start_scripted: StartScripted) -> None:
    ours = await start_mcp_server(name="ours", tools=("echo",))
    bare = await start_scripted()  # tools only: no resources, prompts or completions
    run = ShellRun()
    async with run.client:
        await run.client.add("f", features_url)
        await run.client.add("ours", f"localhost:{ours.port}")
        await run.client.add("bare", bare.url("websocket"))
        lines = await run.lines("""\
resources
prompts bare
templates bare
read bare x://y
complete bare prompt:p a
loglevel bare info
subscribe bare x://y
read ours server://nope
prompts nobody
complete f nothing:x a
complete f prompt:greet
loglevel f loud
read f
""")
    # Each server's part, in the order the servers were added.
    assert lines[:3] == ["[f]:", "  info://about: about (text/plain) - What this server is",
                         "[ours]:"]
    assert lines[3].startswith("  server://info: ") and "(application/json)" in lines[3]
    end = lines.index("[bare]: no resources (the server does not offer them)")
    assert all(line.startswith("  server://") for line in lines[3:end])
    lines = lines[end - 5:]  # as if our server had two resources
    assert lines[6:13] == [
        "[bare]: no prompts (the server does not offer them)",
        "[bare]: no resource templates (the server does not offer them)",
        "[bare]: no resources (the server does not offer them)",
        "[bare]: no completions (the server does not offer them)",
        "[bare]: no log messages (the server does not offer them)",
        "[bare]: no resource subscriptions (the server does not offer them)",
        lines[12],
    ]
    assert lines[12].startswith("Error: ") and "server://nope" in lines[12]
    assert lines[13:] == [
        "Error: Unknown server: nobody (connected: f, ours, bare)",
        "Error: bad reference 'nothing:x': use prompt:NAME or resource:URI_TEMPLATE",
        "Error: usage: complete <server> <prompt:NAME|resource:URI_TEMPLATE> <argument> "
        "[value]",
        "Error: unknown level 'loud': use one of debug, info, notice, warning, error, "
        "critical, alert, emergency",
        "Error: usage: read <server> <uri>",
    ]


@pytest.mark.parametrize("version", ["2025-11-25", None])
async def test_subscriptions_and_log_messages_are_tagged_notifications(
        features_url: str, version: str | None) -> None:
    run = ShellRun(protocol_version=version)
    async with run.client:
        await run.client.add("f", features_url)
        modern = run.client.get("f").era == "modern"
        updated = asyncio.ensure_future(run.notices.wait_for(
            lambda server, note: note.method == "notifications/resources/updated", 10))
        await asyncio.sleep(0)  # the waiter is in place
        lines = await run.lines("""\
subscribe f file:///a.txt
call f touch {"uri": "file:///a.txt"}
""")
        assert lines[0] == "[f] subscribed to file:///a.txt"
        # The update may come before or after the tool's result (on its own stream).
        assert (await updated).params["uri"] == "file:///a.txt"
        assert "[f] resource updated: file:///a.txt" in run.out.getvalue().splitlines()
        lines = await run.lines("""\
unsubscribe f file:///a.txt
call f touch {"uri": "file:///a.txt"}
unsubscribe f file:///a.txt
loglevel f info
call f slow {}
""")
    assert lines[0] == "[f] unsubscribed from file:///a.txt"
    assert not any("resource updated" in line for line in lines)
    if modern:  # 2026-07-28 has no unsubscribe of its own, nor logging/setLevel
        assert lines[2] == "Error: not subscribed to file:///a.txt on f"
        assert lines[3] == ("[f]: 2026-07-28 has no logging/setLevel (the level travels "
                            "with each request)")
    else:
        assert lines[2] == "[f] unsubscribed from file:///a.txt"
        assert lines[3] == "[f] log level set to info"
        assert "[f] log info: slow started" in lines
    assert lines[-1].startswith("Result: {'content': [{'text': 'slow done'")
    # Progress is status: on stderr, one plain line each when not on a terminal.
    assert run.err.getvalue().splitlines() == [
        "[f] progress 1/3: step 1", "[f] progress 2/3: step 2", "[f] progress 3/3: step 3"]


async def test_rich_tool_results_are_shown_readably(features_url: str) -> None:
    run = ShellRun()
    async with run.client:
        await run.client.add("f", features_url)
        lines = await run.lines('call f picture {}\ncall f weather {"city": "Oslo"}\n')
    text = "\n".join(lines)
    assert "iVBOR" not in text and "UklGR" not in text  # no base64 of the image or sound
    assert lines[:7] == [
        "Result:",
        "  a picture",
        "  image (image/png, 1000 bytes)",
        "  audio (audio/wav, 2048 bytes)",
        "  resource file:///notes.txt (text/plain):",
        "    line one",
        "    line two",
    ]
    assert lines[7] == "  structuredContent:"
    assert '"data": "<base64, 1000 bytes>",' in text
    # A text-only result keeps the seed's one line, structuredContent and all.
    assert lines[-1].startswith("Result: {'content': [{'text': '{\\n  \"city\": \"Oslo\"")
    assert lines[-1].endswith("'structuredContent': {'city': 'Oslo', 'celsius': 21, "
                              "'sky': ['clear', 'calm']}}")


async def test_the_commands_over_stdio() -> None:
    run = ShellRun()
    async with run.client:
        await run.client.add("f", stdio_url([sys.executable, str(FEATURES_STDIO)]))
        lines = await run.lines("prompts\ncomplete f prompt:greet name g\nread f info://about\n")
    assert lines == ["[f]:", "  greet(name, style?): Greet someone", "[f]:", "  Grace",
                     "  (1 shown of 1)", "[f] info://about:", "  info://about (text/plain):",
                     "    a features server", "    with two lines"]


async def test_completion_offers_what_the_listings_showed(features_url: str) -> None:
    run = ShellRun()
    async with run.client:
        await run.client.add("f", features_url)
        await run.lines("prompts\nresources\ntemplates\n")
        completer = ShellCompleter(run.client, run.shell.seen)
        assert complete(completer, "prompt f g") == ["greet"]
        assert complete(completer, "read f i") == ["info://about"]
        assert complete(completer, "subscribe f ") == ["info://about"]
        assert complete(completer, "complete f ") == [
            "prompt:greet", "resource:file:///{path}", "prompt:", "resource:"]
        assert complete(completer, "loglevel f w") == ["warning"]
        assert complete(completer, "templates ") == ["f"]


async def test_test_mode_checks_prompts_templates_and_completions(
        features_url: str, start_scripted: StartScripted) -> None:
    bare = await start_scripted()
    async with MultiServerMCPClient(timeout=20) as client:
        await client.add("f", features_url)
        await client.add("bare", bare.url("websocket"))
        report = await run_checks(client)
    results = {(r.server, r.check): r for r in report.results}
    assert results[("f", "resources/templates/list")].detail == "1 templates: file:///{path}"
    assert results[("f", "prompts/list")].detail == "1 prompts: greet"
    # The required argument is filled from the server's completions.
    assert results[("f", "prompts/get")].detail == "greet(name='Ada'): 1 message(s)"
    assert results[("f", "completion/complete")].detail == "greet name: 3 value(s): Ada, " \
        "Alan, Grace"
    for check in ("resources/templates/list", "prompts/list", "prompts/get",
                  "completion/complete"):
        assert results[("f", check)].status == "PASS"
        assert results[("bare", check)].status == "SKIP"  # not offered: not failed for it
