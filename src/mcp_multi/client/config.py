"""``--config FILE``: servers from the ``mcpServers`` JSON of Claude Desktop, Cursor and VS Code.

::

    {"mcpServers": {
        "files":  {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem",
                   "/tmp"], "env": {"DEBUG": "1"}},
        "remote": {"url": "https://example.com/mcp", "headers": {"Authorization": "Bearer T"}},
        "legacy": {"type": "sse", "url": "http://localhost:8081/sse"}
    }}

VS Code's ``servers`` key (``.vscode/mcp.json``) is read the same way. An entry's ``type`` (or
``transport``) is one of ``stdio``, ``sse``, ``http``, ``streamable-http``, ``streamableHttp``,
``websocket`` or ``ws``; without one, a ``command`` means stdio and a ``url`` is read as on the
command line (``.../sse`` is legacy SSE, ``ws://`` WebSocket, any other path Streamable HTTP).
stdio entries take ``command``, ``args``, ``env`` and ``cwd``; remote ones ``url``,
``headers`` and ``oauth`` (:func:`parse_oauth`). Entries with ``"disabled": true`` are skipped.

Every problem is a :class:`ConfigError` whose message is one line naming the file, the server
and what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..transport import stdio_url
from .auth.settings import OAuthConfigError, parse_oauth
from .targets import ServerSpec, normalize_transport, resolve_target, valid_name

__all__ = ["ConfigError", "load_config", "parse_config", "parse_header", "parse_oauth"]

_SECTIONS = ("mcpServers", "servers")
_REMOTE_DEFAULT = "http"


class ConfigError(ValueError):
    """The config file cannot be used; the message says where and why."""


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` (the form of ``--header``) as a name and a value.

    Raises:
        ValueError: no colon, or a name that is not an HTTP token.
    """
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(c.isspace() or not c.isprintable() or c in '()<>@,;:\\"/[]?={}'
                                    for c in name):
        raise ValueError(f"bad header {text!r}: expected 'Name: value'")
    return name, value.strip()


def load_config(path: Path) -> list[ServerSpec]:
    """The servers a config file names, in file order.

    Raises:
        ConfigError: the file cannot be read, is not JSON, or describes a server badly.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                          f"{exc.msg}") from None
    return parse_config(document, str(path))


def parse_config(document: Any, source: str = "config") -> list[ServerSpec]:
    """The servers of a decoded config document (see the module docstring).

    Args:
        document: the decoded JSON.
        source: how errors name the document (its path).

    Raises:
        ConfigError: the document describes no servers, or one badly.
    """
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a JSON object with an \"mcpServers\" object")
    sections = [document[key] for key in _SECTIONS if key in document]
    if not sections:
        raise ConfigError(f"{source}: no \"mcpServers\" (or VS Code \"servers\") object")
    specs: list[ServerSpec] = []
    seen: set[str] = set()
    for section in sections:
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: \"mcpServers\" must be an object of servers by name")
        for name, entry in section.items():
            where = f"{source}: server {name!r}"
            if name in seen:
                raise ConfigError(f"{where} is defined twice")
            seen.add(name)
            if not valid_name(name):
                raise ConfigError(f"{where}: bad name; use letters, digits, _ - .")
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: expected an object")
            if entry.get("disabled") is True:
                continue
            specs.append(_server(name, entry, where))
    return specs


def _server(name: str, entry: dict[str, Any], where: str) -> ServerSpec:
    declared = entry.get("type", entry.get("transport"))
    kind: str | None = None
    if declared is not None:
        if not isinstance(declared, str):
            raise ConfigError(f"{where}: \"type\" must be a string")
        try:
            kind = normalize_transport(declared)
        except ValueError:
            raise ConfigError(f"{where}: unknown type {declared!r} (choose from stdio, sse, "
                              "http, streamable-http, streamableHttp, websocket)") from None
    command, url = entry.get("command"), entry.get("url")
    if kind is None and command is not None and url is not None:
        raise ConfigError(f"{where}: has both \"command\" and \"url\"; say which with \"type\"")
    if kind == "stdio" or (kind is None and command is not None):
        return _stdio_server(name, entry, where)
    if url is None:
        raise ConfigError(f"{where}: needs \"command\" (stdio) or \"url\" (remote)")
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"{where}: \"url\" must be an http(s) or ws(s) URL, not {url!r}")
    try:
        kind, url = resolve_target(url, kind, default=_REMOTE_DEFAULT)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    headers = _strings(entry.get("headers"), "headers", where)
    raw_oauth = entry.get("oauth", entry.get("auth"))
    try:
        oauth = parse_oauth(raw_oauth) if raw_oauth is not None else None
    except OAuthConfigError as exc:
        raise ConfigError(f"{where}: \"oauth\": {exc}") from None
    return ServerSpec(name, kind, url, headers=headers, oauth=oauth)


def _stdio_server(name: str, entry: dict[str, Any], where: str) -> ServerSpec:
    command = entry.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ConfigError(f"{where}: stdio needs a \"command\" string")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str | int | float) for a in args):
        raise ConfigError(f"{where}: \"args\" must be a list of strings")
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ConfigError(f"{where}: \"cwd\" must be a string")
    env = _strings(entry.get("env"), "env", where)
    return ServerSpec(name, "stdio", stdio_url([command, *(str(a) for a in args)]),
                      env=env, cwd=cwd)


def _strings(value: Any, key: str, where: str) -> Mapping[str, str]:
    """An object of string values (numbers and booleans are written as JSON writes them)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: \"{key}\" must be an object of strings")
    result: dict[str, str] = {}
    for name, item in value.items():
        if isinstance(item, bool):
            result[name] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            result[name] = str(item)
        else:
            raise ConfigError(f"{where}: {key}[{name!r}] must be a string")
    return result
