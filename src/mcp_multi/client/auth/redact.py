"""Secrets out of everything the client shows: ``--trace``, logs and error lines.

The authorization code of a redirect, the PKCE verifier, a client secret, an access or
refresh token: whoever reads a trace, a log or a pasted error message must not be able to use
them. The code that handles them never puts them in a message; this module is the second
line, applied where text leaves the program (the trace writer, the log formatter, the
CLI's error lines), so a secret that slipped into a frame, a URL or an exception is masked
there whatever its form:

- a JSON member whose name is a secret field (``"access_token": "…"``), at any depth;
- the same name as a URL query or form parameter (``?code=…&state=…``);
- an ``Authorization``, ``Proxy-Authorization`` or ``DPoP`` header, given as a mapping or as a
  ``Name: value`` line, and a credential after ``Bearer``/``DPoP``/``Basic``;
- anything shaped like a JWT (three base64url parts, the first starting ``eyJ``).

Masking keeps the shape (the field, the scheme) so a trace still shows what happened:
``"access_token": "***"``, ``Authorization: Bearer ***``. ``code`` is masked only where it is
a string: a JSON-RPC error's numeric ``code`` stays readable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MASK",
    "SECRET_FIELDS",
    "SECRET_HEADERS",
    "redact_headers",
    "redact_json",
    "redact_text",
]

MASK = "***"

SECRET_FIELDS = frozenset({
    "access_token", "refresh_token", "id_token", "client_secret", "code", "code_verifier",
    "assertion", "client_assertion", "subject_token", "actor_token", "password",
})
"""Names of JSON members and URL/form parameters whose values are secrets."""

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "dpop", "cookie",
                            "set-cookie"})
"""HTTP headers (lower case) whose values are credentials."""

_FIELDS = "|".join(sorted(SECRET_FIELDS, key=len, reverse=True))
_HEADERS = "|".join(sorted(SECRET_HEADERS, key=len, reverse=True))
# Each alternative keeps what identifies the secret (group 1) and drops the secret itself.
_PATTERN = re.compile(
    # "access_token": "value" (JSON, escapes inside the string included)
    rf'("(?:{_FIELDS})"\s*:\s*)"(?:[^"\\]|\\.)*"'
    # access_token=value in a query string or a form body
    rf"|((?:^|(?<=[?&;#\s\"'(,]))(?:{_FIELDS})=)[^&\s#\"',;)]*"
    # Authorization: value / DPoP: value as a header line
    rf"|^(\s*(?:{_HEADERS})\s*:\s*(?:(?:Bearer|DPoP|Basic)\s+)?).+$"
    # 'Authorization': 'value' in a shown mapping (JSON or Python's repr)
    rf"""|(['"](?:{_HEADERS})['"]\s*:\s*['"])[^'"]*"""
    # Bearer value anywhere (an exception that quoted a header)
    r"|(\b(?:Bearer|DPoP|Basic)\s+)[A-Za-z0-9\-._~+/]{8,}=*"
    # a JWT anywhere
    r"|()\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*",
    re.IGNORECASE | re.MULTILINE,
)
# Cheap test first: most trace frames and log lines hold none of these, and pay nothing more.
_TRIGGER = re.compile(rf"{_FIELDS}|{_HEADERS}|bearer|basic|eyJ", re.IGNORECASE)


def _keep(match: re.Match[str]) -> str:
    kept = next(group for group in match.groups() if group is not None)
    if match.group(1) is not None:
        return f'{kept}"{MASK}"'
    return kept + MASK


def redact_text(text: str) -> str:
    """``text`` with every secret it holds masked (see the module docstring)."""
    if not _TRIGGER.search(text):
        return text
    return _PATTERN.sub(_keep, text)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``headers`` with credential values masked (the scheme kept)."""
    shown: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            shown[name] = f"{scheme} {MASK}" if rest and scheme.isalpha() else MASK
        else:
            shown[name] = redact_text(value)
    return shown


def redact_json(value: Any) -> Any:
    """A copy of a decoded JSON value with the string values of secret fields masked, at any
    depth, and secrets inside other strings masked by :func:`redact_text`."""
    if isinstance(value, dict):
        return {key: (MASK if isinstance(key, str) and key.lower() in SECRET_FIELDS
                      and isinstance(item, str) else redact_json(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value
