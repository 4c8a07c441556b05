"""The file token store: where it lives, who may read it, and that it survives two clients
writing at once."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_multi.client.auth import StoredGrant
from mcp_multi.client.auth import store as store_module
from mcp_multi.client.auth.store import (
    FileTokenStore,
    TokenStoreError,
    default_token_path,
    open_token_store,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX modes and owners")
RESOURCE = "https://mcp.example/mcp"


def _grant(token: str = "at-1") -> StoredGrant:
    return StoredGrant(access_token=token, refresh_token="rt-1", expires_at=2e9, scope="read",
                       issuer="https://as.example", client_id="client-1",
                       client_secret="s3cret", token_endpoint_auth_method="client_secret_basic")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_a_grant_round_trips_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "mcp-multi" / "tokens.json"
    store = FileTokenStore(path)
    assert store.load(RESOURCE) is None
    store.save(RESOURCE, _grant())
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    loaded = store.load(RESOURCE)
    assert loaded is not None
    assert (loaded.access_token, loaded.refresh_token, loaded.client_secret) == (
        "at-1", "rt-1", "s3cret")
    assert loaded.expires_at == 2e9 and loaded.issuer == "https://as.example"
    # Another run reads the same file; another resource is another key.
    assert FileTokenStore(path).load("https://other.example/mcp") is None
    store.save(RESOURCE, _grant("at-2"))
    assert FileTokenStore(path).resources() == [RESOURCE]
    assert FileTokenStore(path).load(RESOURCE).access_token == "at-2"  # type: ignore[union-attr]
    assert store.delete(RESOURCE) is True
    assert store.delete(RESOURCE) is False
    assert store.load(RESOURCE) is None
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_where_the_file_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(store_module.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_token_path() == tmp_path / "xdg" / "mcp-multi" / "tokens.json"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_token_path() == tmp_path / "home" / ".local/state/mcp-multi/tokens.json"
    monkeypatch.setenv(store_module.ENV_VAR, str(tmp_path / "env.json"))
    assert default_token_path() == tmp_path / "env.json"
    store = open_token_store()
    assert isinstance(store, FileTokenStore) and store.path == tmp_path / "env.json"
    explicit = open_token_store(tmp_path / "flag.json")
    assert isinstance(explicit, FileTokenStore) and explicit.path == tmp_path / "flag.json"


@posix_only
def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(RESOURCE, _grant())
    os.chmod(path, 0o644)
    before = path.read_bytes()
    with pytest.raises(TokenStoreError, match=r"readable or writable by others.*chmod 600"):
        FileTokenStore(path).load(RESOURCE)
    with pytest.raises(TokenStoreError):
        FileTokenStore(path).save(RESOURCE, _grant("at-new"))
    assert path.read_bytes() == before


@posix_only
@pytest.mark.skipif(os.name == "posix" and os.getuid() != 0, reason="chown needs root")
def test_a_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(RESOURCE, _grant())
    os.chown(path, 65534, -1)
    with pytest.raises(TokenStoreError, match="owned by someone else"):
        FileTokenStore(path).load(RESOURCE)


@posix_only
def test_a_symlink_and_an_open_directory_are_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    FileTokenStore(real).save(RESOURCE, _grant())
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with pytest.raises(TokenStoreError, match="cannot be read"):
        FileTokenStore(link).load(RESOURCE)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(TokenStoreError, match="writable by others"):
        FileTokenStore(shared / "tokens.json").save(RESOURCE, _grant())


@posix_only
def test_content_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("{not json")
    os.chmod(path, 0o600)
    with pytest.raises(TokenStoreError, match="not valid JSON"):
        FileTokenStore(path).load(RESOURCE)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(TokenStoreError, match="not a token store"):
        FileTokenStore(path).load(RESOURCE)
    path.write_bytes(b" " * (store_module.MAX_FILE_BYTES + 1))
    with pytest.raises(TokenStoreError, match="larger than"):
        FileTokenStore(path).load(RESOURCE)


@posix_only
def test_the_store_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    with pytest.raises(TokenStoreError, match="access_token is longer than"):
        store.save(RESOURCE, _grant("x" * (store_module.MAX_VALUE_CHARS + 1)))
    monkeypatch.setattr(store_module, "MAX_ENTRIES", 3)
    for index in range(5):
        store.save(f"https://s{index}.example/mcp", _grant())
    assert store.resources() == [f"https://s{index}.example/mcp" for index in (2, 3, 4)]


_WRITER = """
import sys
from pathlib import Path
from mcp_multi.client.auth import StoredGrant
from mcp_multi.client.auth.store import FileTokenStore
store = FileTokenStore(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()  # all writers start together
for index in range(60):
    store.save(f"https://{sys.argv[2]}{index}.example/mcp", StoredGrant(access_token="t"))
"""


@posix_only
def test_two_clients_saving_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), name],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for name in ("a", "b", "c")]
    for writer in writers:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.close()
    assert [writer.wait(timeout=30) for writer in writers] == [0, 0, 0]
    assert len(FileTokenStore(path).resources()) == 180


def test_the_keyring_is_optional(tmp_path: Path) -> None:
    try:
        import keyring  # type: ignore[import-not-found, unused-ignore]  # noqa: F401
    except ImportError:
        with pytest.raises(TokenStoreError, match="needs the keyring package"):
            open_token_store("keyring")
    else:  # pragma: no cover - keyring is not a dependency
        pytest.skip("keyring is installed here")
