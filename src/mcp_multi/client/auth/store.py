"""Where a person's grants live between runs: one JSON file per user, only its owner can read.

:class:`FileTokenStore` is the :class:`~.oauth.TokenStore` of ``mcp-client``. The file is
``$XDG_STATE_HOME/mcp-multi/tokens.json`` (``~/.local/state/mcp-multi/tokens.json`` without
``XDG_STATE_HOME``); ``--token-store PATH`` or ``$MCP_CLIENT_TOKEN_STORE`` put it elsewhere.
It holds access and refresh tokens and the client registrations they were issued to, so:

- it is created ``0600`` in a directory created ``0700``, and never used when it (or an
  existing file at its place) is readable or writable by anyone but its owner, is owned by
  someone else, or is a symlink: a one-line :class:`TokenStoreError` says which and how to
  fix it (``chmod 600 PATH``), instead of reading or writing tokens others can see;
- it is written whole and atomically (a temporary file in the same directory, flushed, then
  renamed over the old one), under an advisory lock so two clients refreshing at once do not
  lose each other's grant;
- it is bounded: at most :data:`MAX_FILE_BYTES` read, :data:`MAX_ENTRIES` grants (the ones
  saved longest ago are dropped first), :data:`MAX_VALUE_CHARS` per value.

Grants are keyed by the resource (the MCP server's canonical URL, as the flow names it).

The system keyring is optional: where the ``keyring`` package is importable (it is not a
dependency of this project; install it yourself), ``--token-store keyring`` keeps each grant
as one keyring secret instead (:class:`KeyringTokenStore`). Windows has no POSIX modes: there
the file's permission checks are left to the user profile's ACLs.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .agent import AuthorizationFailed
from .oauth import StoredGrant, TokenStore

__all__ = [
    "ENV_VAR",
    "KEYRING",
    "MAX_ENTRIES",
    "MAX_FILE_BYTES",
    "MAX_VALUE_CHARS",
    "FileTokenStore",
    "KeyringTokenStore",
    "TokenStoreError",
    "default_token_path",
    "open_token_store",
]

ENV_VAR = "MCP_CLIENT_TOKEN_STORE"
KEYRING = "keyring"
MAX_FILE_BYTES = 1 << 20
MAX_ENTRIES = 256
MAX_VALUE_CHARS = 16 * 1024
_MAX_RESOURCE_CHARS = 2048
_VERSION = 1
_POSIX = os.name == "posix"


class TokenStoreError(AuthorizationFailed):
    """The token store cannot be used safely (permissions, owner, content, size)."""


def default_token_path() -> Path:
    """``$MCP_CLIENT_TOKEN_STORE``, else ``$XDG_STATE_HOME/mcp-multi/tokens.json``, else
    ``~/.local/state/mcp-multi/tokens.json``."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return Path(explicit).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "mcp-multi" / "tokens.json"


def open_token_store(where: str | Path | None = None) -> TokenStore:
    """The store ``--token-store`` names: ``None`` the default file, ``"keyring"`` the system
    keyring, anything else a file path.

    Raises:
        TokenStoreError: ``keyring`` was asked for but the package is not installed.
    """
    if where is None:
        where = os.environ.get(ENV_VAR) or default_token_path()
    if str(where) == KEYRING:
        return KeyringTokenStore()
    return FileTokenStore(Path(where).expanduser())


class FileTokenStore:
    """Grants in one JSON file that only its owner can read (see the module docstring).

    Args:
        path: the file; its directory is created (``0700``) on the first save.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, resource: str) -> StoredGrant | None:
        """The grant kept for ``resource``, or ``None``.

        Raises:
            TokenStoreError: the file is unsafe or not a token store.
        """
        entry = self._read().get(resource)
        return StoredGrant.from_dict(entry) if isinstance(entry, dict) else None

    def save(self, resource: str, grant: StoredGrant) -> None:
        """Keep ``grant`` for ``resource`` (replacing what was kept).

        Raises:
            TokenStoreError: the file or its directory is unsafe, a value is too large, or
                the file cannot be written.
        """
        entry = _entry(resource, grant)
        with self._locked():
            grants = self._read()
            grants.pop(resource, None)
            grants[resource] = entry
            self._write(_bounded(grants))

    def delete(self, resource: str) -> bool:
        """Forget ``resource``'s grant; ``True`` when there was one."""
        with self._locked():
            grants = self._read()
            if grants.pop(resource, None) is None:
                return False
            self._write(grants)
            return True

    def resources(self) -> list[str]:
        """The resources a grant is kept for."""
        return list(self._read())

    def _read(self) -> dict[str, Any]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._error(f"cannot be read ({exc.strerror or exc})") from None
        with os.fdopen(fd, "rb") as file:
            self._check_file(os.fstat(file.fileno()))
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise self._error(f"is larger than {MAX_FILE_BYTES} bytes; not a token store")
        if not data.strip():
            return {}
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise self._error("is not valid JSON; remove it to start afresh") from None
        grants = document.get("grants") if isinstance(document, dict) else None
        if not isinstance(grants, dict):
            raise self._error("is not a token store (no \"grants\" object)")
        return grants

    def _write(self, grants: dict[str, Any]) -> None:
        text = json.dumps({"version": _VERSION, "grants": grants}, indent=1, sort_keys=True)
        try:
            fd, temp = tempfile.mkstemp(prefix=".tokens-", suffix=".tmp",
                                        dir=self.path.parent)
        except OSError as exc:
            raise self._error(f"cannot be written ({exc.strerror or exc})") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                if _POSIX:
                    os.fchmod(file.fileno(), 0o600)  # mkstemp's mode already; said again
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise self._error(f"cannot be written ({exc.strerror or exc})") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Make the directory safe, then hold the store's advisory lock (POSIX) while a
        read-modify-write runs."""
        self._prepare_directory()
        if not _POSIX:
            yield
            return
        import fcntl

        lock = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            raise self._error(f"cannot be locked ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _prepare_directory(self) -> None:
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = directory.stat()
        except OSError as exc:
            raise self._error(f"cannot be created ({exc.strerror or exc})") from None
        if not _POSIX:
            return
        if info.st_uid != os.getuid() and info.st_uid != 0:
            raise TokenStoreError(f"token store directory {directory} is owned by someone "
                                  "else; use --token-store with a path of your own")
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            raise TokenStoreError(f"token store directory {directory} is writable by others; "
                                  f"chmod 700 {directory} or use another --token-store")

    def _check_file(self, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise self._error("is not a regular file")
        if not _POSIX:
            return
        if info.st_uid != os.getuid():
            raise self._error("is owned by someone else; it is not used")
        if info.st_mode & 0o077:
            raise self._error(f"is readable or writable by others (mode "
                              f"{stat.S_IMODE(info.st_mode):o}); chmod 600 {self.path}")

    def _error(self, what: str) -> TokenStoreError:
        return TokenStoreError(f"token store {self.path} {what}")


class KeyringTokenStore:
    """Grants in the system keyring (service ``mcp-multi``, one secret per resource), where
    the optional ``keyring`` package is installed.

    Raises:
        TokenStoreError: on creation, when ``keyring`` cannot be imported.
    """

    SERVICE = "mcp-multi"

    def __init__(self) -> None:
        try:
            import keyring  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise TokenStoreError("--token-store keyring needs the keyring package "
                                  "(pip install keyring); it is not installed") from None
        self._keyring: Any = keyring

    def load(self, resource: str) -> StoredGrant | None:
        try:
            text = self._keyring.get_password(self.SERVICE, resource)
        except Exception as exc:  # every backend has its own errors
            raise TokenStoreError(f"the system keyring failed: {type(exc).__name__}") from None
        if not text:
            return None
        try:
            entry = json.loads(text)
        except ValueError:
            return None
        return StoredGrant.from_dict(entry) if isinstance(entry, dict) else None

    def save(self, resource: str, grant: StoredGrant) -> None:
        text = json.dumps(_entry(resource, grant))
        try:
            self._keyring.set_password(self.SERVICE, resource, text)
        except Exception as exc:
            raise TokenStoreError(f"the system keyring failed: {type(exc).__name__}") from None

    def delete(self, resource: str) -> bool:
        try:
            if self._keyring.get_password(self.SERVICE, resource) is None:
                return False
            self._keyring.delete_password(self.SERVICE, resource)
        except Exception as exc:
            raise TokenStoreError(f"the system keyring failed: {type(exc).__name__}") from None
        return True


def _entry(resource: str, grant: StoredGrant) -> dict[str, Any]:
    """The stored form of a grant, refused when it is out of bounds."""
    if len(resource) > _MAX_RESOURCE_CHARS:
        raise TokenStoreError(f"resource URL longer than {_MAX_RESOURCE_CHARS} characters; "
                              "not stored")
    entry = grant.to_dict()
    for name, value in entry.items():
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            raise TokenStoreError(f"the grant's {name} is longer than {MAX_VALUE_CHARS} "
                                  "characters; not stored")
    entry["saved_at"] = time.time()
    return entry


def _bounded(grants: dict[str, Any]) -> dict[str, Any]:
    """At most :data:`MAX_ENTRIES` grants: the ones saved longest ago are dropped."""
    if len(grants) <= MAX_ENTRIES:
        return grants

    def saved_at(item: tuple[str, Any]) -> float:
        value = item[1].get("saved_at") if isinstance(item[1], dict) else None
        return float(value) if isinstance(value, int | float) else 0.0

    return dict(sorted(grants.items(), key=saved_at)[-MAX_ENTRIES:])

