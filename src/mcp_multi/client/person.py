"""Asking the person at the terminal what a server asks the client: sampling and elicitation.

:func:`person_handlers` gives the shell :class:`~.answering.ClientHandlers` whose sampling
and elicitation callbacks ask the person (roots stay the ``--roots`` policy: nobody types
directories for each request). The shell uses them when stdin is a terminal; elsewhere the
policies of :func:`~.answering.policy_handlers` answer, so nothing waits forever.

- **Sampling**: the request is shown (each message with its role, clipped and escaped, the
  system prompt, the model preferences, the token limit) and the person types the reply; an
  empty reply declines (the server gets the "user rejected" error).
- **Elicitation, form mode**: the message, then the form field by field with its title,
  description and default; enums are numbered choices, booleans y/n, numbers are parsed;
  each answer is checked against its field's schema (``jsonschema``) and asked again when it
  does not fit, and the whole form against the requested schema. The person accepts,
  declines or cancels.
- **Elicitation, URL mode**: the URL is shown (escaped) and the person says whether to open
  it; it is opened only on a yes, never silently.

Questions are asked one at a time (a lock): a second server's question waits its turn.
While a question is on screen, ``patch_stdout`` is in place, so other servers'
notifications print above it instead of through it. Ctrl-C or Ctrl-D at a question
cancels (elicitation) or declines (sampling) that question only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import webbrowser
from collections.abc import Callable, Iterator
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout

from ..protocol.text import for_display
from .answering import ClientHandlers, Declined, field_problem
from .rendering import content_lines

__all__ = ["PERSON_TIMEOUT", "Person", "person_handlers"]

PERSON_TIMEOUT = 600.0  # a person may think for a while; a server is not kept forever
MODEL_NAME = "person"
MAX_FIELDS = 50
MAX_CHOICES = 100

Write = Callable[[str], None]


class _Cancelled(Exception):
    """The person cancelled (Ctrl-C, Ctrl-D, or typed cancel)."""


class Person:
    """Asks the person at the terminal; :meth:`sample` and :meth:`elicit` are the handlers.

    Args:
        write: prints one line (stdout by default).
        input, output: prompt_toolkit's input and output (the terminal by default; tests
            pass a pipe input).
        terminal: keep other output above the question with ``patch_stdout`` while asking.
        open_url: opens a URL the person agreed to open (the web browser by default).
    """

    def __init__(self, write: Write | None = None, *, input: Input | None = None,
                 output: Output | None = None, terminal: bool = True,
                 open_url: Callable[[str], object] | None = None) -> None:
        self._write = write or (lambda line: print(line, flush=True))
        self._session: PromptSession[str] = PromptSession(input=input, output=output)
        self._terminal = terminal
        self._open_url = open_url or webbrowser.open
        self._turn = asyncio.Lock()

    # -- the handlers ------------------------------------------------------------------

    async def sample(self, server: str, params: dict[str, Any]) -> dict[str, Any]:
        """Show a ``sampling/createMessage`` request and take the person's reply.

        Raises:
            Declined: the person gave no reply.
        """
        async with self._turn:
            for line in sampling_lines(server, params):
                self._write(line)
            try:
                with self._above():
                    reply = await self._ask("reply (empty declines)> ")
            except _Cancelled:
                reply = ""
        if not reply.strip():
            raise Declined("The person declined the sampling request")
        return {"role": "assistant", "content": {"type": "text", "text": reply},
                "model": MODEL_NAME, "stopReason": "endTurn"}

    async def elicit(self, server: str, params: dict[str, Any]) -> dict[str, Any]:
        """Show an ``elicitation/create`` request, form or URL, and take the answer."""
        async with self._turn:
            try:
                with self._above():
                    if params.get("mode") == "url":
                        return await self._elicit_url(server, params)
                    return await self._elicit_form(server, params)
            except _Cancelled:
                self._write("  cancelled")
                return {"action": "cancel"}

    # -- elicitation -------------------------------------------------------------------

    async def _elicit_url(self, server: str, params: dict[str, Any]) -> dict[str, Any]:
        url = str(params.get("url", ""))
        self._write(f"[{server}] asks you to open a URL: "
                    f"{for_display(str(params.get('message', '')))}")
        self._write(f"  {for_display(url, 2000)}")
        answer = await self._choice("open it? (y)es, (n)o = decline, (c)ancel [n]> ", "n")
        if answer == "c":
            raise _Cancelled
        if answer != "y":
            return {"action": "decline"}
        if url.startswith(("https://", "http://")):
            await asyncio.to_thread(self._open_url, url)
        else:
            self._write("  not opened: only http and https URLs are opened")
        return {"action": "accept"}

    async def _elicit_form(self, server: str, params: dict[str, Any]) -> dict[str, Any]:
        schema = params.get("requestedSchema")
        schema = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        required = {str(r) for r in required} if isinstance(required, list) else set()
        self._write(f"[{server}] asks for input: {for_display(str(params.get('message', '')))}")
        fields = [(str(k), v if isinstance(v, dict) else {})
                  for k, v in list(properties.items())[:MAX_FIELDS]]
        for name, prop in fields:
            self._write(_field_summary(name, prop, name in required))
        answer = await self._choice("(a)ccept and fill in, (d)ecline, (c)ancel [a]> ", "a")
        if answer == "c":
            raise _Cancelled
        if answer == "d":
            return {"action": "decline"}
        while True:
            content: dict[str, Any] = {}
            for name, prop in fields:
                value = await self._field(name, prop, name in required)
                if value is not _OMITTED:
                    content[name] = value
            error = field_problem(content, schema)
            if error is None:
                break
            self._write(f"  the form does not fit the requested schema: {error}; again")
        for line in ("  you entered:", *_json_lines(content)):
            self._write(line)
        answer = await self._choice("send it? (a)ccept, (d)ecline, (c)ancel [a]> ", "a")
        if answer == "c":
            raise _Cancelled
        if answer == "d":
            return {"action": "decline"}
        return {"action": "accept", "content": content}

    async def _field(self, name: str, prop: dict[str, Any], required: bool) -> Any:
        """One field's value, asked until it fits its schema (``_OMITTED``: left out)."""
        shown = for_display(name, 100)
        default = prop.get("default", _OMITTED)
        choices = _choices(prop)
        if choices:
            for number, (_, label) in enumerate(choices, start=1):
                self._write(f"    {number}. {for_display(label, 200)}")
        hint = "" if default is _OMITTED else f" [{for_display(_as_text(default), 100)}]"
        while True:
            text = (await self._ask(f"  {shown}{hint}> ")).strip()
            if not text:
                if default is not _OMITTED:
                    return default
                if not required:
                    return _OMITTED
                self._write(f"  {shown} is required")
                continue
            try:
                value = _parse(text, prop, choices)
            except ValueError as exc:
                self._write(f"  {exc}; again")
                continue
            error = field_problem(value, prop)
            if error is None:
                return value
            self._write(f"  {error}; again")

    # -- asking ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _above(self) -> Iterator[None]:
        """While asking on a terminal, other output prints above the question."""
        if not self._terminal:
            yield
            return
        with patch_stdout(raw=True):
            yield

    async def _ask(self, prompt: str) -> str:
        try:
            return await self._session.prompt_async(prompt)
        except (KeyboardInterrupt, EOFError):
            raise _Cancelled from None

    async def _choice(self, prompt: str, default: str) -> str:
        """The first letter of the answer (``default`` for an empty one), lower-cased."""
        text = (await self._ask(prompt)).strip().lower()
        return text[:1] if text else default


_OMITTED: Any = object()


def person_handlers(policies: ClientHandlers | None = None, *,
                    person: Person | None = None) -> ClientHandlers:
    """Handlers that ask the person at the terminal for sampling and elicitation.

    Args:
        policies: the policy handlers in force; their roots stay (``--roots``).
        person: who asks (a :class:`Person` on the terminal by default).
    """
    person = person or Person()
    return ClientHandlers(sampling=person.sample, elicitation=person.elicit,
                          roots=policies.roots if policies is not None else None,
                          timeout=max(PERSON_TIMEOUT, policies.timeout if policies else 0.0))


# -- showing a request -----------------------------------------------------------------

def sampling_lines(server: str, params: dict[str, Any]) -> list[str]:
    """A ``sampling/createMessage`` request as the person reads it."""
    lines = [f"[{server}] asks for a model reply (sampling):"]
    system = params.get("systemPrompt")
    if system:
        lines.append(f"  system: {for_display(str(system), 1000)}")
    messages = params.get("messages")
    for message in (messages if isinstance(messages, list) else [])[:50]:
        if not isinstance(message, dict):
            continue
        role = for_display(str(message.get("role", "?")), 40)
        content = message.get("content")
        items = content if isinstance(content, list) else [content]
        lines.append(f"  {role}:")
        for item in items[:20]:
            lines += content_lines(item, "    ")
    preferences = params.get("modelPreferences")
    if isinstance(preferences, dict) and preferences:
        lines.append(f"  model preferences: {_preferences(preferences)}")
    if params.get("maxTokens") is not None:
        lines.append(f"  max tokens: {for_display(str(params.get('maxTokens')), 40)}")
    return lines


def _preferences(preferences: dict[str, Any]) -> str:
    parts = []
    hints = preferences.get("hints")
    names = [str(h.get("name")) for h in hints[:10] if isinstance(h, dict)] if isinstance(
        hints, list) else []
    if names:
        parts.append("hints " + ", ".join(names))
    for key in ("intelligencePriority", "speedPriority", "costPriority"):
        if key in preferences:
            parts.append(f"{key.removesuffix('Priority')} {preferences[key]}")
    return for_display("; ".join(parts) or json.dumps(preferences, default=repr), 500)


def _field_summary(name: str, prop: dict[str, Any], required: bool) -> str:
    kind = prop.get("type", "string")
    line = f"  {for_display(name, 100)} ({for_display(str(kind), 40)}"
    line += ", required)" if required else ")"
    title = prop.get("title")
    if title:
        line += f" {for_display(str(title), 200)}"
    description = prop.get("description")
    if description:
        line += f" - {for_display(str(description), 500)}"
    return line


def _choices(prop: dict[str, Any]) -> list[tuple[Any, str]]:
    """The field's choices as (value, label): ``enum`` (with ``enumNames``), ``oneOf`` of
    ``const`` with ``title``, or an array's item choices."""
    if prop.get("type") == "array" and isinstance(prop.get("items"), dict):
        return _choices(prop["items"])
    enum = prop.get("enum")
    if isinstance(enum, list):
        names = prop.get("enumNames")
        labels = names if isinstance(names, list) and len(names) == len(enum) else enum
        return [(v, str(label)) for v, label in zip(enum, labels, strict=True)][:MAX_CHOICES]
    for key in ("oneOf", "anyOf"):
        options = prop.get(key)
        if isinstance(options, list):
            return [(o["const"], str(o.get("title", o["const"])))
                    for o in options if isinstance(o, dict) and "const" in o][:MAX_CHOICES]
    return []


def _parse(text: str, prop: dict[str, Any], choices: list[tuple[Any, str]]) -> Any:
    """A typed answer as the value its field's type wants.

    Raises:
        ValueError: it cannot be that type (the message says what was expected).
    """
    kind = prop.get("type")
    if kind == "array":
        return [_pick(part.strip(), choices) if choices else part.strip()
                for part in text.split(",") if part.strip()]
    if choices:
        return _pick(text, choices)
    if kind == "boolean":
        lowered = text.lower()
        if lowered in ("y", "yes", "true", "1"):
            return True
        if lowered in ("n", "no", "false", "0"):
            return False
        raise ValueError("answer y or n")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("a whole number is expected") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("a number is expected") from None
        return int(number) if number.is_integer() and "." not in text else number
    return text


def _pick(text: str, choices: list[tuple[Any, str]]) -> Any:
    if text.isdigit() and 1 <= int(text) <= len(choices):
        return choices[int(text) - 1][0]
    for value, label in choices:
        if text in (str(value), label):
            return value
    raise ValueError(f"choose a number from 1 to {len(choices)}")


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=repr)


def _json_lines(content: dict[str, Any]) -> list[str]:
    return [f"    {for_display(str(k), 100)}: {for_display(_as_text(v), 300)}"
            for k, v in content.items()]
