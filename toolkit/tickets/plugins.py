"""Finding ticket backends: the ``toolkit.plugins`` entry points, their settings, their keys.

A backend is a plugin: an entry point in the ``toolkit.plugins`` group named
``tickets.NAME`` whose object is a :class:`TicketPlugin`. First-party
backends (``local`` in toolkit itself, the others in ``plugins/``) register
exactly the same way a third party's would::

    [project.entry-points."toolkit.plugins"]
    "tickets.mysystem" = "mypackage.backend:plugin"

Settings live in ``<config dir>/tickets.toml`` (one table per backend, plus
``default``); API keys and passwords live in the OS keyring only, under
service ``toolkit``, user ``tickets/NAME/URL``. ``toolkit tickets login``
writes both.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import TicketBackendError, UsageError
from toolkit.secrets import Secret
from toolkit.tickets.base import TicketBackend

GROUP = "toolkit.plugins"
PREFIX = "tickets."
DEFAULT_BACKEND = "local"
BACKEND_ENV = "TOOLKIT_TICKET_BACKEND"
KEYRING_SERVICE = "toolkit"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_OPTION = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class BackendConfig:
    """What a backend is made from: its settings and, when it needs one, its secret."""

    name: str
    url: str = ""
    user: str = ""
    options: Mapping[str, str | int | bool] = field(default_factory=dict)
    secret: Secret | None = None

    def option(self, key: str, default: str) -> str:
        return str(self.options.get(key, default))

    def limit(self, default: int | None) -> int | None:
        """``max_attachment_bytes`` from tickets.toml, else the backend's default."""
        value = self.options.get("max_attachment_bytes")
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UsageError(
                f"tickets.toml: [{self.name}] max_attachment_bytes must be a positive integer."
            )
        return value

    def need_secret(self, label: str) -> str:
        if self.secret is None:
            raise TicketBackendError(
                f"No {label} for {self.name} at {self.url} in the keyring.",
                hint=f"Store one with `toolkit tickets login {self.name} --url {self.url}`.",
            )
        return self.secret.reveal()


@dataclass(frozen=True)
class TicketPlugin:
    """What an entry point in ``toolkit.plugins`` named ``tickets.NAME`` provides."""

    name: str
    summary: str
    make: Callable[[BackendConfig], TicketBackend]
    credential: str | None = "API key"  # None: the backend needs no secret
    user_label: str | None = None  # e.g. "email" where the key goes with an account name
    options: Mapping[str, str] = field(default_factory=dict)  # tickets.toml keys -> help
    needs_url: bool = True


def _local_plugin() -> TicketPlugin:
    from toolkit.tickets.local import plugin

    return plugin


def _entry_points() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=GROUP):
        if ep.name.startswith(PREFIX):
            found.setdefault(ep.name[len(PREFIX) :], ep)
    return found


def available() -> dict[str, str]:
    """Every ticket backend installed: name -> where it comes from (``local`` always)."""
    found = {name: ep.value for name, ep in _entry_points().items()}
    found.setdefault(DEFAULT_BACKEND, "toolkit.tickets.local:plugin")
    return dict(sorted(found.items()))


def plugin(name: str) -> TicketPlugin:
    """The plugin named ``name``, loaded; UsageError naming the installed ones if none."""
    ep = _entry_points().get(name)
    if ep is None and name == DEFAULT_BACKEND:  # a source tree that was never installed
        return _local_plugin()
    if ep is None:
        raise UsageError(
            f"No ticket backend named {name!r} is installed.",
            hint="Installed: "
            + ", ".join(available())
            + ". A backend is a toolkit.plugins entry point named tickets.NAME.",
        )
    try:
        loaded: object = ep.load()
    except Exception as exc:  # a third party's import error must not look like our bug
        raise TicketBackendError(
            f"The ticket backend plugin {name!r} ({ep.value}) failed to load: {exc}."
        ) from None
    if not isinstance(loaded, TicketPlugin) or loaded.name != name:
        raise TicketBackendError(
            f"The entry point tickets.{name} ({ep.value}) is not a TicketPlugin named {name!r}."
        )
    return loaded


# -- tickets.toml ---------------------------------------------------------------------


def config_path() -> Path:
    return paths.config_dir() / "tickets.toml"


def read_config() -> dict[str, Any]:
    from toolkit.inputs import UnreadableInput, read_text

    path = config_path()
    try:
        return tomllib.loads(read_text(path, what="the ticket configuration"))
    except UnreadableInput as exc:
        if exc.missing:
            return {}
        raise
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Cannot read {path}: {exc}.") from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise UsageError(
            f"Cannot read {path}: it is nested too deep to be a configuration."
        ) from None


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'


def write_config(config: Mapping[str, Any]) -> Path:
    """Write tickets.toml (top-level keys, then one flat table per backend)."""
    lines = ["# toolkit ticket backends: see docs/tickets.md. No secrets here: they are in"]
    lines.append("# the OS keyring (`toolkit tickets login`).")
    for key, value in config.items():
        if not isinstance(value, Mapping):
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in config.items():
        if isinstance(value, Mapping):
            lines.append("")
            lines.append(f"[{key}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in value.items())
    path = config_path()
    paths.ensure_private_dir(path.parent)
    paths.atomic_write(path, ("\n".join(lines) + "\n").encode(), 0o600)
    return path


def default_backend() -> str:
    name = os.environ.get(BACKEND_ENV) or read_config().get("default") or DEFAULT_BACKEND
    return str(name)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UsageError(f"{name[:40]!r} is not a backend name (lower-case letters, digits, -).")
    return name


# -- secrets ------------------------------------------------------------------------------


def _keyring_user(name: str, url: str) -> str:
    return f"tickets/{name}/{url.rstrip('/')}"


def _keyring() -> Any:
    import keyring
    import keyring.errors
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        raise TicketBackendError(
            "No OS keyring is usable here, and toolkit keeps ticket-system keys only in one.",
            hint="Use a desktop session with a keyring (GNOME Keyring, KWallet, macOS Keychain, "
            "Windows Credential Locker), or name a keyring backend in PYTHON_KEYRING_BACKEND.",
        )
    return backend


def load_secret(name: str, url: str) -> Secret | None:
    import keyring.errors

    try:
        value = _keyring().get_password(KEYRING_SERVICE, _keyring_user(name, url))
    except TicketBackendError:
        return None
    except keyring.errors.KeyringError as exc:
        raise TicketBackendError(
            f"The OS keyring failed ({type(exc).__name__}).",
            hint="Unlock your keyring (log in to the desktop session) and try again.",
        ) from None
    return Secret(value) if value is not None else None


def store_secret(name: str, url: str, secret: Secret) -> None:
    import keyring.errors

    try:
        _keyring().set_password(KEYRING_SERVICE, _keyring_user(name, url), secret.reveal())
    except keyring.errors.KeyringError as exc:
        raise TicketBackendError(
            f"The OS keyring refused to store the key ({type(exc).__name__}).",
            hint="Unlock your keyring and try again.",
        ) from None


def backend_config(name: str) -> BackendConfig:
    """The settings of backend ``name`` from tickets.toml, with its secret from the keyring."""
    table = read_config().get(name, {})
    if not isinstance(table, Mapping):
        raise UsageError(f"tickets.toml: {name} must be a table ([{name}]).")
    url = str(table.get("url", ""))
    user = str(table.get("user", ""))
    options = {k: v for k, v in table.items() if k not in ("url", "user") and _OPTION.match(k)}
    secret = load_secret(name, url) if url else None
    return BackendConfig(name, url, user, options, secret)


def open_backend(name: str | None = None) -> TicketBackend:
    """The backend ``name`` (default: tickets.toml's ``default``, else local), ready to use."""
    chosen = check_name(name or default_backend())
    found = plugin(chosen)
    config = backend_config(chosen)
    if found.needs_url and not config.url:
        raise TicketBackendError(
            f"The {chosen} backend has no URL yet.",
            hint=f"Run `toolkit tickets login {chosen} --url URL`.",
        )
    return found.make(config)


__all__ = [
    "BACKEND_ENV",
    "DEFAULT_BACKEND",
    "GROUP",
    "BackendConfig",
    "TicketPlugin",
    "available",
    "backend_config",
    "config_path",
    "default_backend",
    "load_secret",
    "open_backend",
    "plugin",
    "read_config",
    "store_secret",
    "write_config",
]
