"""A small file tree for policy tests: an allowed directory next to a denied one.

Policies here match real paths, so everything is built under ``tmp_path``
resolved (``/tmp`` may itself be a symlink on some systems).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from toolkit.policy import Policy

ALLOWED_CONTENT = b"allowed content\n"
SECRET_CONTENT = b"SECRET-KEY-MATERIAL\n"

T = TypeVar("T")


def toml_policy(
    *,
    allow: list[str] | None = None,
    deny: list[str] | None = None,
    max_bytes: int | None = None,
    allow_hardlinks: bool | None = None,
    commands: dict[str, list[list[str]]] | None = None,
    placeholders: dict[str, str] | None = None,
) -> str:
    """A policy file's text; JSON strings and arrays are valid TOML values."""
    lines = ["[files]"]
    for key, value in [
        ("allow", allow),
        ("deny", deny),
        ("max_bytes", max_bytes),
        ("allow_hardlinks", allow_hardlinks),
    ]:
        if value is not None:
            lines.append(f"{key} = {json.dumps(value)}")
    if commands is not None:
        lines.append("[commands]")
        lines += [f"{scope} = {json.dumps(t)}" for scope, t in commands.items()]
    if placeholders is not None:
        lines.append("[placeholders]")
        lines += [f"{name} = {json.dumps(p)}" for name, p in placeholders.items()]
    return "\n".join(lines) + "\n"


def make_policy(*, home: str | None = None, **keys: Any) -> Policy:
    return Policy.from_toml(toml_policy(**keys), source="test-policy.toml", home=home)


@dataclass
class World:
    root: Path
    allowed: Path  # allow <allowed>/**
    secret: Path  # deny <secret>/**
    ok: Path  # allowed/ok.txt
    key: Path  # secret/key.txt
    policy: Policy

    def with_policy(self, **keys: Any) -> Policy:
        base: dict[str, Any] = {
            "allow": [f"{self.allowed}/**"],
            "deny": [f"{self.secret}/**"],
        }
        return make_policy(**{**base, **keys})


def build_world(tmp_path: Path) -> World:
    root = tmp_path.resolve() / "world"
    allowed = root / "allowed"
    secret = root / "secret"
    allowed.mkdir(parents=True)
    secret.mkdir()
    ok = allowed / "ok.txt"
    ok.write_bytes(ALLOWED_CONTENT)
    key = secret / "key.txt"
    key.write_bytes(SECRET_CONTENT)
    policy = make_policy(allow=[f"{allowed}/**"], deny=[f"{secret}/**"])
    return World(root, allowed, secret, ok, key, policy)


def within(seconds: float, call: Callable[[], T]) -> T:
    """Run ``call`` in a thread; fail if it has not returned after ``seconds`` (a hang)."""
    import threading

    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AssertionError(f"still running after {seconds} s: it hangs")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
