"""Roles, and what each role may use: the policy file of ``mcp-server --policy FILE``.

The file is TOML. It names roles and what each may use, then says which callers hold which
roles: by the scopes, subject, client or issuer of their access token (rules), or by a static
bearer token written in the file itself. A caller no rule matches (and a caller with no
credentials at all, such as a stdio client) holds the default role::

    default_role = "guest"        # optional; without it such callers may use nothing

    [roles.guest]
    tools = ["echo", "get_time"]  # tool names or glob patterns (*, ?, [...])
    resources = ["server://info"] # resource URIs or resource templates, or patterns
    prompts = ["explain_*"]       # prompt names or patterns

    [roles.operator]
    tools = ["*"]
    resources = ["server://*"]
    prompts = ["*"]
    admin = true                  # may use the admin tool (admin_tools)

    [[grants]]                    # a caller matching every key given holds the roles
    scope = "mcp:operate"         # the token grants this scope
    roles = ["operator"]

    [[grants]]
    subject = "alice@example.com" # also: client_id, issuer (each an exact string)
    roles = ["operator", "guest"]

    [[tokens]]                    # static bearer tokens: their callers hold the roles
    name = "ci"                   # the caller's subject is "token:ci"
    token = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    roles = ["operator"]
    scopes = ["mcp:operate"]      # optional: the scopes the token stands for

A caller holds the roles of its static token (if any) and of every rule it matches; only when
that is none does it hold ``default_role``. A role's lists are allow-lists: what no role of the
caller names, the caller does not see (``tools/list``, ``resources/list``,
``resources/templates/list``, ``prompts/list``) and cannot use: a call, read, subscription,
``prompts/get`` or completion of it is answered exactly as if it did not exist. A resource read
through a template is allowed when the role names the URI or the template it matches. The admin
tool is visible to roles with ``admin = true`` only, whatever their ``tools`` say.

A token is written either as it is sent or, better, as ``sha256:`` and the hex SHA-256 of it
(``printf %s "$TOKEN" | sha256sum``); either way only the digest is kept in memory, and a
presented token is compared with every digest in constant time.

Loading checks everything and refuses the file with one line naming the first problem (its
place in the file and what was expected): TOML syntax, an unknown key, a value of the wrong
type, a role a rule or token names that the file does not define, a rule with no condition,
two tokens with the same value or the same name.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .principal import Principal

__all__ = [
    "ADMIN_TOOL",
    "Access",
    "Grant",
    "Patterns",
    "Policy",
    "PolicyError",
    "Role",
    "StaticToken",
    "token_digest",
]

# The tool through which an admin role configures the server while it runs (see .admin).
ADMIN_TOOL = "admin_tools"
# A static token's caller has the subject TOKEN_PREFIX + its name, and no issuer.
TOKEN_PREFIX = "token:"
# The name srv-auth gives the principal of ``--auth-token``; a policy token may not take it.
RESERVED_TOKEN_NAMES = frozenset({"static"})
# Callers whose access is kept computed; past it the memo starts over (it only saves work).
_MEMO = 4096

_TOP_KEYS = ("default_role", "roles", "grants", "tokens")
_ROLE_KEYS = ("tools", "resources", "prompts", "admin", "description")
_CONDITIONS = ("scope", "subject", "client_id", "issuer")
_GRANT_KEYS = ("roles", *_CONDITIONS)
_TOKEN_KEYS = ("name", "token", "roles", "scopes")
_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")
_ROLE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is one line naming the problem."""


def token_digest(token: str) -> bytes:
    """The SHA-256 digest a static token is kept and compared as."""
    return hashlib.sha256(token.encode()).digest()


# ------------------------------------------------------------------ what a policy holds


@dataclass(frozen=True, slots=True)
class Patterns:
    """Names or glob patterns (``*``, ``?``, ``[...]``, as :mod:`fnmatch`, case-sensitive)
    compiled once into one expression."""

    patterns: tuple[str, ...] = ()
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = (re.compile("|".join(fnmatch.translate(p) for p in self.patterns))
                 if self.patterns else None)
        object.__setattr__(self, "_regex", regex)

    def __call__(self, name: str) -> bool:
        return self._regex is not None and self._regex.match(name) is not None


@dataclass(frozen=True, slots=True)
class Role:
    """One role: the tools, resources (URIs or templates) and prompts it may use."""

    name: str
    tools: Patterns = Patterns()
    resources: Patterns = Patterns()
    prompts: Patterns = Patterns()
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Grant:
    """A rule: a caller matching every condition given holds ``roles``."""

    roles: tuple[str, ...]
    scope: str | None = None
    subject: str | None = None
    client_id: str | None = None
    issuer: str | None = None

    def matches(self, principal: Principal) -> bool:
        return ((self.scope is None or self.scope in principal.scopes)
                and (self.subject is None or self.subject == principal.subject)
                and (self.client_id is None or self.client_id == principal.client_id)
                and (self.issuer is None or self.issuer == principal.issuer))


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A bearer token the policy file defines, kept as its SHA-256 digest only."""

    name: str
    digest: bytes = field(repr=False)
    roles: tuple[str, ...]
    scopes: frozenset[str] = frozenset()

    @property
    def subject(self) -> str:
        return TOKEN_PREFIX + self.name


class Access:
    """What one caller may use, under one policy: ask it per tool, resource or prompt.

    The filtered lists are kept beside the list they were made from, so a caller asking for
    an unchanged list again costs one identity check.
    """

    __slots__ = ("_lists", "admin", "prompt", "resource", "roles", "tool_patterns")

    def __init__(self, roles: frozenset[str], held: Sequence[Role]) -> None:
        self.roles = roles
        self.admin = any(r.admin for r in held)
        self.tool_patterns = Patterns(tuple(p for r in held for p in r.tools.patterns))
        self.resource = Patterns(tuple(p for r in held for p in r.resources.patterns))
        self.prompt = Patterns(tuple(p for r in held for p in r.prompts.patterns))
        self._lists: dict[str, tuple[object, list[dict[str, Any]]]] = {}

    def tool(self, name: str) -> bool:
        """Whether the caller may see and call tool ``name``."""
        if name == ADMIN_TOOL:
            return self.admin
        return self.tool_patterns(name)

    def readable(self, uri: str, template: str | None = None) -> bool:
        """Whether the caller may read ``uri`` (served by ``template``, if by one)."""
        return self.resource(uri) or (template is not None and self.resource(template))

    def tools(self, listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entries of a ``tools/list`` listing the caller may see."""
        return self._visible("tools", listing, "name", self.tool)

    def resources(self, listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._visible("resources", listing, "uri", self.resource)

    def templates(self, listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._visible("templates", listing, "uriTemplate", self.resource)

    def prompts(self, listing: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._visible("prompts", listing, "name", self.prompt)

    def _visible(self, kind: str, listing: list[dict[str, Any]], key: str,
                 allowed: Any) -> list[dict[str, Any]]:
        kept = self._lists.get(kind)
        if kept is not None and kept[0] is listing:
            return kept[1]
        shown = [entry for entry in listing if allowed(entry[key])]
        self._lists[kind] = (listing, shown)
        return shown


# ------------------------------------------------------------------ the policy


class Policy:
    """A loaded policy file: its roles, rules and static tokens (see the module docstring)."""

    def __init__(self, roles: Mapping[str, Role], default_role: str | None = None,
                 grants: Iterable[Grant] = (), tokens: Iterable[StaticToken] = (),
                 source: str = "<policy>") -> None:
        self.roles = dict(roles)
        self.default_role = default_role
        self.grants = tuple(grants)
        self.tokens = tuple(tokens)
        self.source = source
        self._by_name = {t.name: t for t in self.tokens}
        self._access: dict[Principal, Access] = {}

    # ---------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Read and check the policy file ``path``.

        Raises:
            PolicyError: the file cannot be read, is not TOML, or is not a valid policy.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PolicyError(f"{path}: cannot read the policy file: {reason}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<policy>") -> Policy:
        """The policy written in ``text`` (TOML); ``source`` names it in errors.

        Raises:
            PolicyError: not TOML, or not a valid policy.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{source}: not valid TOML: {exc}") from None
        try:
            return _build(data, source)
        except _Invalid as exc:
            raise PolicyError(f"{source}: {exc}") from None

    # ---------------------------------------------------------------- callers

    def principal_for_token(self, token: str) -> Principal | None:
        """The caller a static bearer token of this policy stands for; ``None`` when the
        token is none of them. Every digest is compared, in constant time, whichever
        matches, so the time taken says nothing about the tokens."""
        digest = token_digest(token)
        found: StaticToken | None = None
        for entry in self.tokens:
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        if found is None:
            return None
        return Principal(found.subject, found.scopes, roles=frozenset(found.roles))

    def roles_for(self, principal: Principal) -> frozenset[str]:
        """The roles ``principal`` holds under this policy (see the module docstring).

        A static token's roles are looked up again by its name, so a reloaded policy applies
        to callers already connected; a principal from an authorization server (it has an
        issuer) never takes a static token's roles, whatever its subject.
        """
        held: set[str] = set()
        if principal.issuer is None and principal.subject.startswith(TOKEN_PREFIX):
            token = self._by_name.get(principal.subject.removeprefix(TOKEN_PREFIX))
            if token is not None:
                held.update(token.roles)
        for grant in self.grants:
            if grant.matches(principal):
                held.update(grant.roles)
        if not held and self.default_role is not None:
            held.add(self.default_role)
        return frozenset(held)

    def access(self, principal: Principal) -> Access:
        """What ``principal`` may use under this policy (computed once per caller)."""
        found = self._access.get(principal)
        if found is None:
            roles = self.roles_for(principal)
            found = Access(roles, [self.roles[name] for name in sorted(roles)])
            if len(self._access) >= _MEMO:
                self._access.clear()
            self._access[principal] = found
        return found


# ------------------------------------------------------------------ checking a file


class _Invalid(Exception):
    """A problem in the policy's data; the message says where (``roles.guest.tools[1]``)."""


def _keys(table: Any, allowed: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _Invalid(f"{where}: expected a table, got {_kind(table)}")
    for key in table:
        if key not in allowed:
            raise _Invalid(f"{where}: unknown key {key!r} (expected one of "
                           f"{', '.join(allowed)})")
    return table


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{where}: expected a non-empty string, got {_kind(value)}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"{where}: expected an array of strings, got {_kind(value)}")
    return tuple(_string(item, f"{where}[{i}]") for i, item in enumerate(value))


def _role(name: str, table: Any) -> Role:
    where = f"roles.{name}"
    if not _ROLE_NAME.fullmatch(name):
        raise _Invalid(f"{where}: a role name holds 1 to 64 letters, digits or _ . : -")
    table = _keys(table, _ROLE_KEYS, where)
    admin = table.get("admin", False)
    if not isinstance(admin, bool):
        raise _Invalid(f"{where}.admin: expected true or false, got {_kind(admin)}")
    if "description" in table:
        _string(table["description"], f"{where}.description")
    lists = {key: Patterns(_strings(table.get(key, []), f"{where}.{key}"))
             for key in ("tools", "resources", "prompts")}
    return Role(name, lists["tools"], lists["resources"], lists["prompts"], admin)


def _role_names(value: Any, where: str, roles: Mapping[str, Role]) -> tuple[str, ...]:
    names = _strings(value, where)
    if not names:
        raise _Invalid(f"{where}: names no role")
    for i, name in enumerate(names):
        if name not in roles:
            raise _Invalid(f"{where}[{i}]: no role {name!r} is defined (roles: "
                           f"{', '.join(roles) or 'none'})")
    return names


def _array_of_tables(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise _Invalid(f"{key}: expected an array of tables ([[{key}]]), got {_kind(value)}")
    return value


def _grant(i: int, table: Any, roles: Mapping[str, Role]) -> Grant:
    where = f"grants[{i}]"
    table = _keys(table, _GRANT_KEYS, where)
    if "roles" not in table:
        raise _Invalid(f"{where}: missing key 'roles'")
    conditions = {key: _string(table[key], f"{where}.{key}")
                  for key in _CONDITIONS if key in table}
    if not conditions:
        raise _Invalid(f"{where}: names no condition (one or more of "
                       f"{', '.join(_CONDITIONS)}); use default_role for every caller")
    return Grant(_role_names(table["roles"], f"{where}.roles", roles), **conditions)


def _token(i: int, table: Any, roles: Mapping[str, Role]) -> StaticToken:
    where = f"tokens[{i}]"
    table = _keys(table, _TOKEN_KEYS, where)
    for key in ("name", "token", "roles"):
        if key not in table:
            raise _Invalid(f"{where}: missing key {key!r}")
    name = _string(table["name"], f"{where}.name")
    if name in RESERVED_TOKEN_NAMES or not _ROLE_NAME.fullmatch(name):
        raise _Invalid(f"{where}.name: {name!r} is reserved or not 1 to 64 letters, digits "
                       "or _ . : -")
    written = _string(table["token"], f"{where}.token")
    hashed = _DIGEST.fullmatch(written)
    if hashed is not None:
        digest = bytes.fromhex(hashed.group(1))
    elif written.startswith("sha256:"):
        raise _Invalid(f"{where}.token: a sha256: digest is 64 hexadecimal digits")
    else:
        digest = token_digest(written)
    scopes = frozenset(_strings(table.get("scopes", []), f"{where}.scopes"))
    return StaticToken(name, digest, _role_names(table["roles"], f"{where}.roles", roles),
                       scopes)


def _build(data: dict[str, Any], source: str) -> Policy:
    _keys(data, _TOP_KEYS, "the policy")
    raw_roles = data.get("roles", {})
    if not isinstance(raw_roles, dict):
        raise _Invalid(f"roles: expected tables ([roles.NAME]), got {_kind(raw_roles)}")
    roles = {name: _role(name, table) for name, table in raw_roles.items()}
    default = data.get("default_role")
    if default is not None:
        default = _string(default, "default_role")
        if default not in roles:
            raise _Invalid(f"default_role: no role {default!r} is defined (roles: "
                           f"{', '.join(roles) or 'none'})")
    grants = [_grant(i, t, roles) for i, t in enumerate(_array_of_tables(data, "grants"))]
    tokens = [_token(i, t, roles) for i, t in enumerate(_array_of_tables(data, "tokens"))]
    names: dict[str, int] = {}
    digests: dict[bytes, int] = {}
    for i, token in enumerate(tokens):
        if token.name in names:
            raise _Invalid(f"tokens[{i}].name: {token.name!r} is already the name of "
                           f"tokens[{names[token.name]}]")
        if token.digest in digests:
            raise _Invalid(f"tokens[{i}].token: the same token as tokens[{digests[token.digest]}]")
        names[token.name], digests[token.digest] = i, i
    return Policy(roles, default, grants, tokens, source)
