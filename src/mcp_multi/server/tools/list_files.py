"""``list_files``: the names in one directory under the server root.

The tool never looks outside ``settings.root``. A relative path is taken from the root; an
absolute one is accepted only when it resolves to a place inside it.

Theory of operation. Checking a resolved path and then listing it by name is a race: a
component swapped for a symbolic link between the check and the listing is followed out of the
root. So nothing here is looked up by a full name. We open the root once, then walk the path
one component at a time, each opened relative to the descriptor of its parent with
``O_NOFOLLOW`` (``openat``-style), and list the descriptor we end on with ``os.scandir``: what
is listed is what was opened. ``..`` closes the current descriptor and returns to the parent
one, and is refused at the root. A symbolic link met on the way is not opened but read: its
target's components are walked the same way (an absolute target must lie inside the root and
is walked from the root), so a link within the root is followed and one that leads out is
refused, whatever is swapped while we walk.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections import deque
from typing import Any

from mcp_multi.protocol.methods import tool_result
from mcp_multi.server.tools import Tool, ToolContext, ToolError

__all__ = ["MAX_ENTRIES", "MAX_SYMLINKS", "TOOL"]

MAX_ENTRIES = 1000
"""Names listed at most; the rest are counted in a final ``... and N more`` line."""

MAX_SYMLINKS = 40
"""Symbolic links followed in one walk at most (the kernel's own limit): a loop ends here."""

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class _Outside(Exception):
    """The walk would leave the root."""


def _inside(real_root: str, real_path: str) -> list[str]:
    """The components of ``real_path`` below ``real_root``; :class:`_Outside` if not below it."""
    if real_path == real_root:
        return []
    prefix = real_root.rstrip("/") + "/"
    if not real_path.startswith(prefix):
        raise _Outside
    return real_path[len(prefix):].split("/")


def _open_beneath(real_root: str, parts: list[str]) -> int:
    """A descriptor of the directory ``parts`` names under the root, opened without leaving it.

    Raises:
        _Outside: a ``..`` or a symbolic link leads out of the root.
        OSError: a component is missing, not a directory, unreadable, or links loop.
    """
    stack = [os.open(real_root, _DIR)]  # stack[-1] is where we are; stack[0] is the root
    pending = deque(parts)
    links = 0
    try:
        while pending:
            name = pending.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) == 1:
                    raise _Outside
                os.close(stack.pop())
                continue
            try:
                stack.append(os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=stack[-1]))
                continue
            except NotADirectoryError:
                pass  # a file, or a symbolic link that O_NOFOLLOW would not open
            links += 1
            if links > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links")
            try:
                target = os.readlink(name, dir_fd=stack[-1])
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # Not a link. A file, or a link swapped back for a directory since the open:
                # try the name again (the link count bounds the retries).
                if not _is_directory(name, stack[-1]):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
                pending.appendleft(name)
                continue
            if os.path.isabs(target):
                # Only a target inside the root is walked, and from the root's descriptor.
                steps = _inside(real_root, os.path.realpath(target))
                while len(stack) > 1:
                    os.close(stack.pop())
            else:
                steps = target.split("/")
            pending.extendleft(reversed(steps))
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def _is_directory(name: str, dir_fd: int) -> bool:
    """Whether ``name`` in ``dir_fd`` is a directory itself (not a link to one)."""
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _list(root: str, path: str, show_hidden: bool) -> str:
    try:
        real_root = os.path.realpath(root)
        parts = _inside(real_root, os.path.realpath(path)) if os.path.isabs(path) else (
            path.split("/"))
        fd = _open_beneath(real_root, parts)
        try:
            with os.scandir(fd) as entries:
                names = [e.name for e in entries if show_hidden or not e.name.startswith(".")]
        finally:
            os.close(fd)
    except _Outside:
        raise ToolError(f"Access denied: {path} is outside the server root") from None
    except ValueError as exc:  # a NUL byte
        raise ToolError(f"Invalid path: {path!r} ({exc})") from None
    except FileNotFoundError:
        raise ToolError(f"Directory not found: {path}") from None
    except NotADirectoryError:
        raise ToolError(f"Not a directory: {path}") from None
    except PermissionError:
        raise ToolError(f"Permission denied: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ToolError(f"Invalid path: {path!r} (symbolic link loop)") from None
        raise ToolError(f"Cannot list {path}: {exc.strerror or exc}") from None

    names.sort(key=lambda name: (name.casefold(), name))
    lines = [f"Files in {path}:", *names[:MAX_ENTRIES]]
    if len(names) > MAX_ENTRIES:
        lines.append(f"... and {len(names) - MAX_ENTRIES} more")
    elif not names:
        lines.append("(empty)")
    return "\n".join(lines)


async def list_files(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """``Files in <path>:`` then one name per line, sorted without regard to case.

    Names starting with a dot are left out, as ``ls`` does, unless ``all`` is true.

    Raises:
        ToolError: the path is outside the root, missing, not a directory or unreadable.
    """
    path = arguments.get("path") or "."
    # Opening and scanning are blocking system calls; a thread keeps the loop free even
    # on a slow or network file system.
    text = await asyncio.to_thread(_list, str(ctx.settings.root), path,
                                   bool(arguments.get("all")))
    return tool_result(text)


TOOL = Tool(
    name="list_files",
    title="List files",
    description="List files in a directory",
    input_schema={
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "default": ".",
                "description": "Directory to list, relative to the server root",
            },
            "all": {
                "type": "boolean",
                "default": False,
                "description": "Include names that start with a dot",
            },
        },
    },
    handler=list_files,
    annotations={"readOnlyHint": True, "idempotentHint": True, "openWorldHint": False},
)
