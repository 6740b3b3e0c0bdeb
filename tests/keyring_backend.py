"""Keyring backends for tests, selected the way keyring intends: set_keyring() in
process, PYTHON_KEYRING_BACKEND for subprocesses. They never touch a real keyring."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring import errors
from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    """A keyring kept in a JSON file named by TOOLKIT_TEST_KEYRING (a test double)."""

    priority = 1

    def _path(self) -> Path:
        return Path(os.environ["TOOLKIT_TEST_KEYRING"])

    def _load(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self._path().read_text())
        except FileNotFoundError:
            return {}
        return data

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\0{username}"] = password
        self._path().write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}\0{username}", None) is None:
            raise errors.PasswordDeleteError("not found")
        self._path().write_text(json.dumps(data))


class LockedKeyring(FileKeyring):
    """A keyring that refuses reads as a locked desktop keyring does."""

    def get_password(self, service: str, username: str) -> str | None:
        raise errors.KeyringLocked("the keyring is locked")


class BrokenKeyring(FileKeyring):
    """A backend that is present but cannot store (no D-Bus session, say)."""

    def set_password(self, service: str, username: str, password: str) -> None:
        raise errors.PasswordSetError("no session bus")
