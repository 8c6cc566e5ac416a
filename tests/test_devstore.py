"""devstore: the dev server's store URL, recorded per user, answered only while something listens there."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from flipper.core import devstore


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path


def test_a_recorded_url_is_found_while_something_listens_there(runtime_dir: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listening:
        url = f"redis://127.0.0.1:{listening.getsockname()[1]}"
        devstore.record(url)
        assert devstore.path() == runtime_dir / "flipper-dev-store"
        assert devstore.recorded_url() == url
    assert devstore.recorded_url() is None  # the server is gone (killed before it could forget)


def test_nothing_recorded_is_none() -> None:
    assert devstore.recorded_url() is None


def test_forget_removes_only_its_own_url() -> None:
    devstore.record("redis://127.0.0.1:1")
    devstore.forget("redis://127.0.0.1:2")  # another server's: ours stays
    assert devstore.path().read_text(encoding="utf-8").strip() == "redis://127.0.0.1:1"
    devstore.forget("redis://127.0.0.1:1")
    assert not devstore.path().exists()


def test_without_a_runtime_dir_the_file_is_in_the_users_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert devstore.path() == tmp_path / ".cache" / "flipper" / "dev-store"
    devstore.record("redis://127.0.0.1:1")
    assert devstore.path().exists()


def test_importing_it_pulls_in_neither_uvicorn_nor_fakeredis() -> None:
    import subprocess
    import sys

    code = "import sys, flipper.core.devstore; print(sorted({'uvicorn', 'fakeredis'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
