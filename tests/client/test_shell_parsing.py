"""The shell's line parsing and completion, synchronously."""

from __future__ import annotations

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.repl import ArgumentError, ShellCompleter, parse_json_args, strip_comment


@pytest.mark.parametrize(("line", "expected"), [
    ("tools math    # Should only show math_calc", "tools math"),
    ('call calc list_files {"path": "."} # This should fail - tool not enabled',
     'call calc list_files {"path": "."}'),
    ('call s echo {"message": "a # b"}', 'call s echo {"message": "a # b"}'),
    ('call s echo {"message": "say \\" # not a comment"}',
     'call s echo {"message": "say \\" # not a comment"}'),
    ("# only a comment", ""),
    ("  servers  ", "servers"),
    ("call s echo {\"message\": \"tag#1\"}", "call s echo {\"message\": \"tag#1\"}"),
])
def test_strip_comment(line: str, expected: str) -> None:
    assert strip_comment(line) == expected


def test_json_args() -> None:
    assert parse_json_args("") == {}
    assert parse_json_args(' {"expression": "2 + 2 * 3"} ') == {"expression": "2 + 2 * 3"}


@pytest.mark.parametrize(("text", "message"), [
    ('{"a": 1 "b": 2}', "at column 9: Expecting ',' delimiter"),
    ("{'a': 1}", "at column 2"),
    ("[1, 2]", "must be an object, not list"),
    ('"x"', "must be an object, not str"),
    ('{"n": 99999999999999999999999}', "cannot be sent: Integer exceeds 64-bit range"),
    ('{"a": ' + "[" * 300 + "]" * 300 + "}", "cannot be sent: Recursion limit reached"),
    ('{"a": ' + "[" * 100_000, "nested too deeply"),
])
def test_bad_json_args_say_where(text: str, message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        parse_json_args(text)


def complete(completer: ShellCompleter, text: str) -> list[str]:
    document = Document(text, len(text))
    return [c.text for c in completer.get_completions(document, CompleteEvent())]


def test_completion_of_commands_and_transports() -> None:
    completer = ShellCompleter(MultiServerMCPClient())
    assert complete(completer, "") == [
        "servers", "add", "remove", "tools", "call", "broadcast", "ping", "send", "resources",
        "templates", "read", "prompts", "prompt", "complete", "subscribe", "unsubscribe",
        "loglevel", "tasks", "help", "quit", "exit"]
    assert complete(completer, "b") == ["broadcast"]
    assert complete(completer, "add x localhost:1 ") == ["websocket", "sse", "http"]
    assert complete(completer, "add x st") == ["stdio"]
    assert complete(completer, "call nobody res") == [
        "resources/list", "resources/read", "resources/templates/list", "resources/subscribe",
        "resources/unsubscribe"]
