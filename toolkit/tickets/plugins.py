"""Finding ticket backends: the ``toolkit.plugins`` entry points, their settings, their keys.

A backend is a :class:`TicketPlugin` in the ``ticket_backends`` of a
:class:`toolkit.plugins.Plugin`, found by :mod:`toolkit.plugins.loader` like
every plugin. First-party backends (``local`` in toolkit's own ``builtin``
plugin, the others in ``plugins/tickets``) register exactly the way a third
party's would::

    [project.entry-points."toolkit.plugins"]
    mysystem = "mypackage.backend:plugin"   # a Plugin(name="mysystem", ...)

The old form, an entry point ``tickets.NAME`` of a bare TicketPlugin, still
loads until toolkit 0.3, with a deprecation line (docs/plugins.md).

Settings live in ``<config dir>/tickets.toml`` (one table per backend, plus
``default``); API keys and passwords never do: they come from
``TOOLKIT_TICKETS_<NAME>_TOKEN``, the OS keyring, or where there is no
keyring an encrypted file (see :mod:`toolkit.tickets.credentials`).
``toolkit tickets login`` checks them with one read-only call, then writes
both.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import paths
from toolkit.errors import TicketBackendError, UsageError
from toolkit.plugins.plugin import GROUP
from toolkit.secrets import Secret
from toolkit.tickets import credentials
from toolkit.tickets.base import BackendConfig, TicketBackend, TicketPlugin
from toolkit.tickets.credentials import Passphrases

if TYPE_CHECKING:
    from toolkit.plugins.loader import Broken

DEFAULT_BACKEND = "local"
BACKEND_ENV = "TOOLKIT_TICKET_BACKEND"
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_OPTION = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _backends() -> tuple[dict[str, tuple[TicketPlugin, str]], dict[str, Broken]]:
    """Backend name -> (plugin, where from), and the broken backends' names -> why."""
    from toolkit.plugins.loader import installed

    found = installed()
    loaded = {name: (b, where.origin) for name, (b, where) in found.ticket_backends().items()}
    broken = {b.ticket_backend: b for b in found.broken if b.ticket_backend}
    if DEFAULT_BACKEND not in loaded and DEFAULT_BACKEND not in broken:
        # A source tree that was never installed has no entry points at all.
        from toolkit.tickets.local import plugin as local

        loaded[DEFAULT_BACKEND] = (local, "toolkit.tickets.local:bundle")
    return loaded, broken


def available() -> dict[str, str]:
    """Every ticket backend installed, broken ones too: name -> where it comes from."""
    loaded, broken = _backends()
    found = {name: where for name, (_, where) in loaded.items()}
    found.update({name: b.origin for name, b in broken.items()})
    return dict(sorted(found.items()))


def plugin(name: str) -> TicketPlugin:
    """The backend named ``name``; UsageError naming the installed ones if none."""
    loaded, broken = _backends()
    if name in loaded:
        return loaded[name][0]
    if name in broken:
        b = broken[name]
        raise TicketBackendError(
            f"The ticket backend {name!r} ({b.origin}) cannot be used: {b.reason}",
            hint="`toolkit plugins list` shows every plugin and what is wrong with it.",
        )
    raise UsageError(
        f"No ticket backend named {name!r} is installed.",
        hint="Installed: "
        + ", ".join(available())
        + ". A backend comes with a plugin (docs/plugins.md); `toolkit plugins list` shows them.",
    )


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


def backend_config(
    name: str, passphrase: Passphrases | None = None, *, secret: bool = True
) -> BackendConfig:
    """The settings of backend ``name`` from tickets.toml, with its secret (unless not ``secret``).

    ``passphrase`` opens the encrypted credentials file where the secret is
    kept there (default: TOOLKIT_KEY_PASSPHRASE only).
    """
    table = read_config().get(name, {})
    if not isinstance(table, Mapping):
        raise UsageError(f"tickets.toml: {name} must be a table ([{name}]).")
    config = config_from(name, table)
    if not secret:
        return config
    return replace(config, secret=credentials.load(name, config.url, passphrase))


def config_from(name: str, table: Mapping[str, Any], secret: Secret | None = None) -> BackendConfig:
    """A backend's config from its tickets.toml table (and a secret, when given)."""
    url = str(table.get("url", ""))
    user = str(table.get("user", ""))
    options = {k: v for k, v in table.items() if k not in ("url", "user") and _OPTION.match(k)}
    return BackendConfig(name, url, user, options, secret)


def open_backend(name: str | None = None, passphrase: Passphrases | None = None) -> TicketBackend:
    """The backend ``name`` (default: tickets.toml's ``default``, else local), ready to use."""
    chosen = check_name(name or default_backend())
    found = plugin(chosen)
    config = backend_config(chosen, passphrase, secret=found.credential is not None)
    if found.needs_url and not config.url:
        raise TicketBackendError(
            f"The {chosen} backend has no URL yet.",
            hint=f"Run `toolkit tickets login {chosen} --url URL`.",
        )
    return found.make(config)


def check_access(backend: TicketBackend, found: TicketPlugin, url: str) -> str | None:
    """Who ``backend`` is logged in as, by its one read-only call; None if it has no check.

    A wrong URL or secret is one TicketBackendError sentence saying nothing was saved.
    """
    from toolkit.tickets.http import BackendRefused, BackendUnreachable

    whoami = getattr(backend, "whoami", None)
    if not callable(whoami):
        return None
    name, what = found.name, found.credential or "credentials"
    try:
        return str(whoami())
    except BackendRefused as exc:
        if exc.status in (401, 403):
            also = f" and --user ({found.user_label})" if found.user_label else ""
            raise TicketBackendError(
                f"{name} at {url} refused the {what} (HTTP {exc.status}); nothing was saved.",
                hint=f"Check the {what}{also}: copy it again from {name}, or make a new one.",
            ) from None
        if exc.status >= 500:
            raise TicketBackendError(
                f"{name} at {url} failed (HTTP {exc.status}); nothing was saved.",
                hint="Try again later.",
            ) from None
        raise _not_the_system(name, url, f"HTTP {exc.status}") from None
    except BackendUnreachable as exc:
        raise TicketBackendError(
            exc.message.rstrip(".") + "; nothing was saved.",
            hint="Check --url, and that this machine can reach it.",
        ) from None
    except TicketBackendError:  # an answer that is not the system's API (an HTML page...)
        raise _not_the_system(name, url, "its answer is not the API's") from None
    except (KeyError, TypeError, AttributeError, ValueError):
        raise _not_the_system(name, url, "its answer is not the API's") from None


def _not_the_system(name: str, url: str, why: str) -> TicketBackendError:
    return TicketBackendError(
        f"{url} does not answer as {name} does ({why}); nothing was saved.",
        hint=f"Check --url: the address you open {name} at in a browser, without a page's path.",
    )


__all__ = [
    "BACKEND_ENV",
    "DEFAULT_BACKEND",
    "GROUP",
    "BackendConfig",
    "TicketPlugin",
    "available",
    "backend_config",
    "check_access",
    "config_from",
    "config_path",
    "default_backend",
    "open_backend",
    "plugin",
    "read_config",
    "write_config",
]
