"""``WWW-Authenticate`` read as RFC 9110 section 11.6.1 writes it: pure, no I/O.

A header holds one or more challenges, each a scheme followed either by a ``token68`` or by
comma-separated ``name=value`` parameters whose values are tokens or quoted strings (with
backslash escapes); the commas between challenges are the same commas that separate
parameters, so a new challenge is recognised by a token *not* followed by ``=``. Servers
in the wild add spaces around ``=``, leave empty elements (``a=1,,b=2``) and put the
parameters in any order and case; all of that is accepted. What is bounded: the header's
length (:data:`MAX_HEADER`) and the parameters kept (:data:`MAX_PARAMS`).

The MCP client cares about one challenge, ``Bearer`` (:func:`bearer_challenge`): its
``resource_metadata`` (RFC 9728 section 5.1), ``scope`` and ``error`` (RFC 6750 section 3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "MAX_HEADER",
    "MAX_PARAMS",
    "BearerChallenge",
    "Challenge",
    "bearer_challenge",
    "parse_www_authenticate",
]

MAX_HEADER = 8192
MAX_PARAMS = 32
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789"
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68_CHARS = frozenset("-._~+/0123456789"
                           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: its scheme (lower case), its parameters (names in lower case, the
    first of a repeated name kept) or its ``token68``."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None


@dataclass(frozen=True, slots=True)
class BearerChallenge:
    """What a ``Bearer`` challenge tells an MCP client (``None``: not said)."""

    resource_metadata: str | None = None
    scope: str | None = None
    error: str | None = None
    error_description: str | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split()) if self.scope else ()


class _Scanner:
    """A cursor over the header with the few lexical steps the grammar needs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_spaces(self) -> None:
        while self.peek() in (" ", "\t") and not self.at_end():
            self.pos += 1

    def skip_separators(self) -> None:
        while self.peek() in (" ", "\t", ",") and not self.at_end():
            self.pos += 1

    def token(self, chars: frozenset[str] = _TOKEN_CHARS) -> str:
        start = self.pos
        while not self.at_end() and self.text[self.pos] in chars:
            self.pos += 1
        return self.text[start:self.pos]

    def quoted(self) -> str:
        """A quoted string (the opening quote is at the cursor); an unterminated one runs
        to the end of the header."""
        self.pos += 1
        out: list[str] = []
        while not self.at_end():
            ch = self.text[self.pos]
            self.pos += 1
            if ch == "\\" and not self.at_end():
                out.append(self.text[self.pos])
                self.pos += 1
            elif ch == '"':
                break
            else:
                out.append(ch)
        return "".join(out)

    def skip_bad(self) -> None:
        """Skip what no rule matches, up to the next comma."""
        while not self.at_end() and self.text[self.pos] != ",":
            self.pos += 1


def parse_www_authenticate(values: str | Iterable[str]) -> list[Challenge]:
    """Every challenge of one or more ``WWW-Authenticate`` header values, in order.

    Never raises: what cannot be read is skipped.
    """
    if isinstance(values, str):
        values = (values,)
    challenges: list[Challenge] = []
    for value in values:
        challenges.extend(_parse_one(value[:MAX_HEADER]))
    return challenges


def _parse_one(text: str) -> list[Challenge]:
    scanner = _Scanner(text)
    challenges: list[Challenge] = []
    while True:
        scanner.skip_separators()
        if scanner.at_end():
            return challenges
        scheme = scanner.token()
        if not scheme:
            scanner.skip_bad()
            continue
        scanner.skip_spaces()
        token68 = _token68(scanner)
        if token68 is not None:
            challenges.append(Challenge(scheme.lower(), {}, token68))
            continue
        challenges.append(Challenge(scheme.lower(), _params(scanner)))


def _token68(scanner: _Scanner) -> str | None:
    """A token68 at the cursor (followed by the end or a comma), else ``None`` and the
    cursor unmoved."""
    start = scanner.pos
    body = scanner.token(_TOKEN68_CHARS)
    while scanner.peek() == "=" and not scanner.at_end():
        scanner.pos += 1
    end = scanner.pos
    scanner.skip_spaces()
    if body and (scanner.at_end() or scanner.peek() == ","):
        return scanner.text[start:end]
    scanner.pos = start
    return None


def _params(scanner: _Scanner) -> dict[str, str]:
    """``name=value`` pairs up to the start of the next challenge (a token without ``=``)."""
    params: dict[str, str] = {}
    while True:
        scanner.skip_separators()
        if scanner.at_end():
            return params
        start = scanner.pos
        name = scanner.token()
        scanner.skip_spaces()
        if not name or scanner.peek() != "=":
            if name:  # the next challenge's scheme
                scanner.pos = start
                return params
            scanner.skip_bad()
            continue
        scanner.pos += 1
        scanner.skip_spaces()
        value = scanner.quoted() if scanner.peek() == '"' else scanner.token()
        if len(params) < MAX_PARAMS:
            params.setdefault(name.lower(), value)


def bearer_challenge(values: str | Iterable[str] | None) -> BearerChallenge | None:
    """The first ``Bearer`` challenge of the header(s), or ``None`` when there is none."""
    if values is None:
        return None
    for challenge in parse_www_authenticate(values):
        if challenge.scheme == "bearer":
            p = challenge.params
            return BearerChallenge(
                resource_metadata=p.get("resource_metadata") or None,
                scope=p.get("scope") or None,
                error=p.get("error") or None,
                error_description=p.get("error_description") or None,
            )
    return None
