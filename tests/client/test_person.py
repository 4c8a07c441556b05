"""The person at the terminal answers sampling and elicitation requests (``client/person.py``).

The prompts are real prompt_toolkit prompts reading a pipe input (``create_pipe_input``),
as a terminal would feed them; what the person reads is collected line by line. The last
tests run the whole way: the official SDK's server asks in the middle of a tool call and
our client's person handlers answer from the pipe.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from mcp_multi.client.answering import ClientHandlers, Declined, policy_handlers
from mcp_multi.client.multi import MultiServerMCPClient
from mcp_multi.client.person import Person, person_handlers

from .sdk_features_server import build_features_server
from .test_sdk_interop import serving

FORM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "title": "Your name", "description": "as you like it"},
        "age": {"type": "integer", "minimum": 0},
        "colour": {"type": "string", "enum": ["red", "green", "blue"], "default": "green"},
        "subscribe": {"type": "boolean", "default": False},
        "email": {"type": "string", "format": "email"},
        "size": {"type": "string", "oneOf": [{"const": "s", "title": "Small"},
                                             {"const": "l", "title": "Large"}]},
    },
    "required": ["name", "age"],
}


@pytest.fixture
def pipe() -> Iterator[PipeInput]:
    with create_pipe_input() as pipe_input:
        yield pipe_input


class Terminal:
    """A person at a pipe: lines shown to them in ``shown``, URLs they opened in ``opened``."""

    def __init__(self, pipe: PipeInput) -> None:
        self.pipe = pipe
        self.shown: list[str] = []
        self.opened: list[str] = []
        self.person = Person(self.shown.append, input=pipe, output=DummyOutput(),
                             terminal=False, open_url=self.opened.append)


@pytest.fixture
def terminal(pipe: PipeInput) -> Terminal:
    return Terminal(pipe)


async def test_a_form_field_by_field_with_defaults_enums_and_validation(
        terminal: Terminal) -> None:
    terminal.pipe.send_text("".join(f"{line}\n" for line in [
        "a",          # accept and fill in
        "",           # name: required
        "Ada",
        "old",        # age: not a number
        "-3",         # age: under the minimum
        "36",
        "3",          # colour: choice 3
        "maybe",      # subscribe: not y/n
        "y",
        "not-an-email",
        "ada@example.org",
        "Large",      # size: by its title
        "a",          # send it
    ]))
    answer = await terminal.person.elicit("srv", {"message": "Who\x1b[2J are you?",
                                                  "requestedSchema": FORM})
    assert answer == {"action": "accept", "content": {
        "name": "Ada", "age": 36, "colour": "blue", "subscribe": True,
        "email": "ada@example.org", "size": "l"}}
    shown = terminal.shown
    assert shown[0] == "[srv] asks for input: Who\\x1b[2J are you?"  # escaped, never raw
    assert shown[1] == "  name (string, required) Your name - as you like it"
    assert "  colour (string)" in shown
    choices = [line for line in shown if line.startswith("    ") and line[4].isdigit()]
    assert choices[:3] == ["    1. red", "    2. green", "    3. blue"]
    assert "    2. Large" in shown
    assert "  name is required" in shown
    assert "  a whole number is expected; again" in shown
    assert "  -3 is less than the minimum of 0; again" in shown
    assert "  answer y or n; again" in shown
    assert "  'not-an-email' is not a 'email'; again" in shown
    assert shown[-7:] == ["  you entered:", "    name: Ada", "    age: 36", "    colour: blue",
                          "    subscribe: true", "    email: ada@example.org", "    size: l"]


async def test_defaults_and_optional_fields_are_kept_or_left_out(terminal: Terminal) -> None:
    terminal.pipe.send_text("\nBob\n7\n\n\n\n\n\n")  # Enter: accept, defaults, omissions, send
    answer = await terminal.person.elicit("srv", {"message": "m", "requestedSchema": FORM})
    assert answer == {"action": "accept", "content": {
        "name": "Bob", "age": 7, "colour": "green", "subscribe": False}}


@pytest.mark.parametrize(("typed", "action"), [
    ("d\n", "decline"), ("c\n", "cancel"), ("\x04", "cancel"),  # Ctrl-D cancels
    ("a\nAda\n1\n\n\n\n\nd\n", "decline"),  # declined after filling in
])
async def test_decline_or_cancel(terminal: Terminal, typed: str, action: str) -> None:
    terminal.pipe.send_text(typed)
    answer = await terminal.person.elicit("srv", {"message": "m", "requestedSchema": FORM})
    assert answer == {"action": action}


async def test_url_mode_shows_the_url_and_opens_it_only_on_yes(terminal: Terminal) -> None:
    params = {"mode": "url", "message": "Sign in", "elicitationId": "e1",
              "url": "https://example.org/auth?x=1\x1b]0;owned\x07"}
    terminal.pipe.send_text("\n")  # Enter: the default is no
    assert await terminal.person.elicit("srv", params) == {"action": "decline"}
    assert terminal.opened == []
    assert terminal.shown == ["[srv] asks you to open a URL: Sign in",
                              "  https://example.org/auth?x=1\\x1b]0;owned\\x07"]
    terminal.pipe.send_text("y\n")
    assert await terminal.person.elicit("srv", params) == {"action": "accept"}
    assert terminal.opened == [params["url"]]
    terminal.pipe.send_text("y\n")
    assert await terminal.person.elicit("srv", {**params, "url": "file:///etc/passwd"}) == {
        "action": "accept"}
    assert terminal.opened == [params["url"]]  # only http(s) is ever opened
    assert terminal.shown[-1] == "  not opened: only http and https URLs are opened"


async def test_sampling_shows_the_request_and_takes_the_reply(terminal: Terminal) -> None:
    params = {
        "messages": [{"role": "user", "content": {"type": "text", "text": "Haiku\x1b[31m?"}},
                     {"role": "assistant", "content": {"type": "image", "mimeType": "image/png",
                                                       "data": "AAAA" * 1000}}],
        "systemPrompt": "You are a poet", "maxTokens": 50,
        "modelPreferences": {"hints": [{"name": "claude"}], "intelligencePriority": 0.8},
    }
    terminal.pipe.send_text("Old pond, frog\n")
    reply = await terminal.person.sample("srv", params)
    assert reply == {"role": "assistant", "content": {"type": "text", "text": "Old pond, frog"},
                     "model": "person", "stopReason": "endTurn"}
    assert terminal.shown == [
        "[srv] asks for a model reply (sampling):",
        "  system: You are a poet",
        "  user:",
        "    Haiku\\x1b[31m?",
        "  assistant:",
        "    image (image/png, 3000 bytes)",
        "  model preferences: hints claude; intelligence 0.8",
        "  max tokens: 50",
    ]
    terminal.pipe.send_text("\n")
    with pytest.raises(Declined):
        await terminal.person.sample("srv", params)


async def test_one_question_at_a_time(terminal: Terminal) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}
    first = asyncio.ensure_future(terminal.person.elicit("one", {"message": "first",
                                                                 "requestedSchema": schema}))
    second = asyncio.ensure_future(terminal.person.elicit("two", {"message": "second",
                                                                  "requestedSchema": schema}))
    terminal.pipe.send_text("a\n1\na\na\n2\na\n")
    assert await first == {"action": "accept", "content": {"x": "1"}}
    assert await second == {"action": "accept", "content": {"x": "2"}}
    headers = [line for line in terminal.shown if line.startswith("[")]
    assert headers == ["[one] asks for input: first", "[two] asks for input: second"]
    # The second question was shown only after the first was answered.
    assert terminal.shown.index("[two] asks for input: second") > terminal.shown.index(
        "    x: 1")


def test_person_handlers_keep_the_roots_policy(tmp_path: Any) -> None:
    policies = policy_handlers(roots=[tmp_path])
    handlers = person_handlers(policies)
    assert handlers.roots is policies.roots
    assert handlers.sampling is not None and handlers.elicitation is not None
    assert set(handlers.capabilities()) == {"sampling", "elicitation", "roots"}
    assert handlers.timeout >= policies.timeout


@pytest.fixture
async def features_url() -> AsyncIterator[str]:
    async with serving(build_features_server().streamable_http_app()) as port:
        yield f"http://127.0.0.1:{port}/mcp"


async def test_the_sdk_server_asks_the_person_in_the_middle_of_a_call(
        features_url: str, terminal: Terminal) -> None:
    handlers: ClientHandlers = person_handlers(person=terminal.person)
    async with MultiServerMCPClient(timeout=20, handlers=handlers,
                                    protocol_version="2025-11-25") as client:
        await client.add("f", features_url)
        terminal.pipe.send_text("a\nAda\n3\n\na\n")  # accept; name; colour 3; age default
        result = await client.call("f", "ask", {})
        assert result["content"][0]["text"] == "hello Ada (blue, 30)"
        assert terminal.shown[0] == "[f] asks for input: Who are you?"
        terminal.pipe.send_text("Old pond\n")
        result = await client.call("f", "haiku", {"topic": "frogs"})
        assert result["content"][0]["text"] == "model person said: Old pond"
        assert "  user:" in terminal.shown and "    Write a haiku about frogs" in terminal.shown
        terminal.pipe.send_text("c\n")
        result = await client.call("f", "ask", {})
        assert result["content"][0]["text"] == "no answer: cancel"
