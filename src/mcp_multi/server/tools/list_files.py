"""``list_files``: the names in one directory under the server root.

The tool never looks outside ``settings.root``. A relative path resolves against the root; an
absolute one is accepted only when it lies inside it. The check runs on the fully resolved
path, so ``..`` components and symbolic links that lead out of the root are refused alike, and
the directory that is read is the resolved one, not the name the caller gave.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from mcp_multi.protocol.methods import tool_result
from mcp_multi.server.tools import Tool, ToolContext, ToolError

__all__ = ["MAX_ENTRIES", "TOOL"]

MAX_ENTRIES = 1000
"""Names listed at most; the rest are counted in a final ``... and N more`` line."""


def _resolve_inside(root: Path, path: str) -> Path:
    """``path`` resolved against ``root``; raises :class:`ToolError` if it leaves the root."""
    root = root.resolve()
    try:
        target = (root / path).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        # ValueError: a NUL byte; RuntimeError: a symlink loop (before Python 3.13).
        raise ToolError(f"Invalid path: {path!r} ({exc})") from None
    if target != root and root not in target.parents:
        raise ToolError(f"Access denied: {path} is outside the server root")
    return target


def _list(root: Path, path: str, show_hidden: bool) -> str:
    directory = _resolve_inside(root, path)
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if show_hidden or not e.name.startswith(".")]
    except FileNotFoundError:
        raise ToolError(f"Directory not found: {path}") from None
    except NotADirectoryError:
        raise ToolError(f"Not a directory: {path}") from None
    except PermissionError:
        raise ToolError(f"Permission denied: {path}") from None
    except OSError as exc:
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
    # Resolving and scanning are blocking system calls; a thread keeps the loop free even
    # on a slow or network file system.
    text = await asyncio.to_thread(_list, ctx.settings.root, path, bool(arguments.get("all")))
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
