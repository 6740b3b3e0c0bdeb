from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.tickets.systems import System, start_system


def _running(name: str, factory: pytest.TempPathFactory) -> Iterator[System]:
    system = start_system(name, factory.mktemp("ticket-systems"))
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="session")
def redmine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Redmine (Debian's package, SQLite, a database of its own) for the whole test run."""
    yield from _running("redmine", tmp_path_factory)


@pytest.fixture(scope="session")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Request Tracker 5 (Debian's package, SQLite, its standalone server) for the whole run."""
    yield from _running("rt", tmp_path_factory)


@pytest.fixture
def test_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file keyring (a test double) for this process and the toolkit processes it starts."""
    import keyring

    from tests.keyring_backend import FileKeyring

    path = tmp_path / "keyring.json"
    monkeypatch.setenv("TOOLKIT_TEST_KEYRING", str(path))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.keyring_backend.FileKeyring")
    root = str(Path(__file__).resolve().parents[3])
    monkeypatch.setenv("PYTHONPATH", root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    keyring.set_keyring(FileKeyring())
    return path
