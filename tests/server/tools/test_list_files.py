"""The list_files tool: sorted names, confined to the server root."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from mcp_multi.server.settings import ServerSettings
from mcp_multi.server.tools import ToolContext, ToolError
from mcp_multi.server.tools.list_files import MAX_ENTRIES, TOOL


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


def _ctx(root: Path) -> ToolContext:
    return ToolContext(settings=ServerSettings(root=root))


async def _list(root: Path, **arguments: str | bool) -> str:
    result = await TOOL.handler(dict(arguments), _ctx(root))
    assert "isError" not in result
    text: str = result["content"][0]["text"]
    return text


async def _refused(root: Path, path: str) -> str:
    with pytest.raises(ToolError) as err:
        await TOOL.handler({"path": path}, _ctx(root))
    return str(err.value)


async def test_lists_as_the_seed_shows(root: Path) -> None:
    for name in ("README.md", "mcp_server.py", "mcp_client.py"):
        (root / name).write_text("")
    result = await TOOL.handler({"path": "."}, _ctx(root))
    assert result == {
        "content": [
            {"type": "text", "text": "Files in .:\nmcp_client.py\nmcp_server.py\nREADME.md"}
        ]
    }


async def test_path_defaults_to_the_root(root: Path) -> None:
    (root / "a.txt").write_text("")
    assert await _list(root) == "Files in .:\na.txt"


async def test_subdirectory_and_hidden_entries(root: Path) -> None:
    sub = root / "sub"
    sub.mkdir()
    for name in ("b", "A", ".hidden", "c"):
        (sub / name).write_text("")
    (sub / "dir").mkdir()
    assert await _list(root, path="sub") == "Files in sub:\nA\nb\nc\ndir"
    assert await _list(root, path="sub/", all=True) == "Files in sub/:\n.hidden\nA\nb\nc\ndir"


async def test_absolute_path_inside_root(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "x").write_text("")
    assert await _list(root, path=str(root / "sub")) == f"Files in {root / 'sub'}:\nx"
    assert await _list(root, path=str(root)) == f"Files in {root}:\nsub"


async def test_dotdot_that_stays_inside_is_fine(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "y").write_text("")
    assert await _list(root, path="sub/../") == "Files in sub/../:\nsub\ny"


async def test_empty_directory(root: Path) -> None:
    assert await _list(root) == "Files in .:\n(empty)"


@pytest.mark.parametrize("path", ["..", "../", "sub/../..", "../root/../..", "/", "/tmp"])
async def test_escape_by_dotdot_or_absolute_path_is_denied(root: Path, path: str) -> None:
    (root / "sub").mkdir()
    message = await _refused(root, path)
    assert message == f"Access denied: {path} is outside the server root"


async def test_nonexistent_outside_root_is_denied_not_probed(root: Path) -> None:
    message = await _refused(root, "/nonexistent")
    assert message == "Access denied: /nonexistent is outside the server root"


async def test_escape_by_symlink_is_denied(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("")
    (outside / "deeper").mkdir()
    (root / "link").symlink_to(outside)
    (root / "rel").symlink_to("../outside")
    for path in ("link", "link/", "link/deeper", "rel", "./rel/deeper"):
        assert await _refused(root, path) == f"Access denied: {path} is outside the server root"


async def test_symlink_within_root_is_followed(root: Path) -> None:
    (root / "real").mkdir()
    (root / "real" / "f").write_text("")
    (root / "alias").symlink_to(root / "real")
    assert await _list(root, path="alias") == "Files in alias:\nf"


async def test_root_given_through_a_symlink(root: Path, tmp_path: Path) -> None:
    (root / "f").write_text("")
    via = tmp_path / "via"
    via.symlink_to(root)
    assert await _list(via) == "Files in .:\nf"
    assert await _list(via, path=str(via)) == f"Files in {via}:\nf"


async def test_missing_directory(root: Path) -> None:
    assert await _refused(root, "missing") == "Directory not found: missing"
    assert await _refused(root, "missing/deeper") == "Directory not found: missing/deeper"


async def test_not_a_directory(root: Path) -> None:
    (root / "file.txt").write_text("")
    assert await _refused(root, "file.txt") == "Not a directory: file.txt"


async def test_nul_byte_is_an_invalid_path(root: Path) -> None:
    assert (await _refused(root, "a\x00b")).startswith("Invalid path: 'a\\x00b'")


async def test_entries_are_capped(root: Path) -> None:
    extra = 5
    for i in range(MAX_ENTRIES + extra):
        (root / f"f{i:05d}").touch()
    lines = (await _list(root)).split("\n")
    assert lines[0] == "Files in .:"
    assert lines[1:-1] == [f"f{i:05d}" for i in range(MAX_ENTRIES)]
    assert lines[-1] == f"... and {extra} more"


def test_list_files_listing() -> None:
    wire = TOOL.to_wire()
    assert wire["description"] == "List files in a directory"
    assert wire["inputSchema"]["properties"]["path"] == {
        "type": "string",
        "default": ".",
        "description": "Directory to list, relative to the server root",
    }
    assert wire["annotations"]["readOnlyHint"] is True


async def test_relative_links_are_walked_inside_the_root(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("")
    (root / "a" / "up").symlink_to("..")  # back to the root, one level up: still inside
    (root / "chain").symlink_to("a/up/a/b")
    assert await _list(root, path="chain") == "Files in chain:\nf"
    assert await _list(root, path="a/up/a/b/..") == "Files in a/up/a/b/..:\nb\nup"


async def test_a_link_loop_is_an_invalid_path(root: Path) -> None:
    (root / "loop").symlink_to("loop")
    assert await _refused(root, "loop") == "Invalid path: 'loop' (symbolic link loop)"


async def test_a_link_to_a_file_is_not_a_directory(root: Path) -> None:
    (root / "file.txt").write_text("")
    (root / "to-file").symlink_to("file.txt")
    assert await _refused(root, "to-file") == "Not a directory: to-file"
    (root / "dangling").symlink_to("nowhere")
    assert await _refused(root, "dangling") == "Directory not found: dangling"


async def test_no_descriptor_is_left_open(root: Path, tmp_path: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)
    (root / "loop").symlink_to("loop")
    (root / "f").write_text("")
    before = len(os.listdir("/proc/self/fd"))
    for path in ("a/b", "a/b/../..", "a/b/../../..", "out", "loop", "a/missing", "f/x"):
        with contextlib.suppress(ToolError):
            await TOOL.handler({"path": path}, _ctx(root))
    assert len(os.listdir("/proc/self/fd")) == before
