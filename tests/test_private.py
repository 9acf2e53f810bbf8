"""What the project writes for itself is private: 0700 folders, 0600 files, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from caroud.private import private_dir, private_file
from caroud.redis.embedded import embedded_url, stop_embedded


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the most permissive: anything not asked for explicitly shows
    try:
        yield
    finally:
        os.umask(old)


def test_private_dir_and_file_ignore_the_umask(tmp_path: Path, open_umask: None) -> None:
    folder = private_dir(tmp_path / "a" / "b")
    assert mode(folder) == 0o700
    made = private_file(folder / "f")
    assert mode(made) == 0o600
    loose = folder / "loose"
    loose.write_text("x")
    os.chmod(loose, 0o644)
    assert mode(private_file(loose)) == 0o600 and loose.read_text() == "x"


def test_the_embedded_server_keeps_its_state_private(tmp_path: Path, open_umask: None) -> None:
    embedded_url(tmp_path)
    try:
        home = tmp_path / "valkey"
        assert mode(tmp_path) == 0o700 and mode(home) == 0o700
        assert mode(home / "server.json") == 0o600 and mode(home / "lock") == 0o600
    finally:
        stop_embedded(tmp_path)


def test_the_sqlite_database_is_created_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code = (
        "import os; os.umask(0o022)\n"
        "import django; django.setup()\n"
        "from django.db import connection\n"
        "with connection.cursor() as c: c.execute('CREATE TABLE t (x int)')\n"
    )
    env = os.environ | {
        "CAROUD_DATA_DIR": str(data),
        "DJANGO_SETTINGS_MODULE": "caroud.project.settings",
    }
    env.pop("DATABASE_URL", None)
    env.pop("SECRET_KEY", None)  # the web tests set one; this test wants the file
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert mode(data) == 0o700
    files = sorted(p.name for p in data.iterdir())
    assert "caroud.sqlite3" in files and "secret_key" in files
    for name in files:
        assert mode(data / name) == 0o600, f"{name} is {oct(mode(data / name))}"
