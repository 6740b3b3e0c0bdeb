"""The fleet's inventory: a TOML file of hosts, and ``--limit`` patterns over it.

docs/fleet.md describes the file::

    [defaults]                       # optional
    relay = "relay.example:2222"     # hosts without an address meet here
    ticket = "OPS-7"                 # or a template: "OPS-{host}"
    params = { unit = "nginx" }

    [hosts.web-01]
    address = "10.0.0.5:7022"        # or: relay = "...", name = "web-01" (its name at the relay)
    host_key = "SHA256:..."          # the agent's host key, pinned
    groups = ["web", "eu"]
    params = { unit = "nginx" }

Parsing is strict: an unknown key, a value of the wrong type or form, a name
that is not ``[A-Za-z0-9._-]``, is refused with the host and the key named.
The file is read through toolkit.inputs (a regular file, at most 4 MiB).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit.errors import UsageError
from toolkit.inputs import SMALL, read_text
from toolkit.text import printable

#: Names of hosts and groups (and relay names): what a file name and a grant's host line take.
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: A SHA-256 key fingerprint as ssh-keygen -l prints it.
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
_HOSTNAME = re.compile(r"[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")
_PARAM = re.compile(r"[a-z][a-z0-9_]{0,63}")
#: More hosts than any fleet this tool is meant for; past it, a file is a mistake.
MAX_HOSTS = 100_000
MAX_GROUPS = 64
MAX_VALUE = 4096
_HINT = "See docs/fleet.md for the inventory's format."

_TOP = {"defaults", "hosts"}
_DEFAULTS = {"relay", "ticket", "params", "grant"}
_HOST = {"address", "relay", "name", "host_key", "groups", "params", "ticket", "grant"}


@dataclass(frozen=True)
class Host:
    """One host of the inventory, with the defaults applied."""

    name: str
    #: HOST and PORT when the agent listens there (toolkit serve --listen).
    address: tuple[str, int] | None = None
    relay: str | None = None  # [USER@]HOST[:PORT] of the relay it is registered at
    relay_name: str | None = None  # its name there (toolkit serve --name)
    host_key: str | None = None  # "SHA256:..." pinned for it
    groups: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    ticket: str | None = None  # its ticket, "{host}" filled in (unchecked: the CLI checks)
    #: The grant its session presents (relative paths are the inventory's); None: --grant's.
    grant: Path | None = None

    @property
    def where(self) -> str:
        """Where the host is, as a person reads it."""
        if self.address is not None:
            host, port = self.address
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"{self.relay_name} at the relay {self.relay}"


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[Host, ...]

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(g for h in self.hosts for g in h.groups)

    def find(self, name: str) -> Host | None:
        for host in self.hosts:
            if host.name == name:
                return host
        return None


def load(path: Path) -> Inventory:
    """The inventory at ``path``, checked; UsageError naming the host and key otherwise."""
    text = read_text(path, what="the inventory", limit=SMALL)
    return parse(text, path)


def parse(text: str, path: Path) -> Inventory:
    source = printable(str(path), 200)
    data = _toml(text, source)
    _only(data, _TOP, source)
    defaults = _table(data.get("defaults", {}), f"{source}: [defaults]")
    _only(defaults, _DEFAULTS, f"{source}: [defaults]")
    hosts = _table(data.get("hosts", {}), f"{source}: [hosts]")
    if not hosts:
        raise UsageError(f"{source} lists no hosts.", hint=_HINT)
    if len(hosts) > MAX_HOSTS:
        raise UsageError(f"{source} lists more than {MAX_HOSTS} hosts.")
    where = f"{source}: [defaults]"
    default_relay = _relay(defaults.get("relay"), f"{where} relay")
    default_ticket = _string(defaults.get("ticket"), f"{where} ticket")
    default_params = _params(defaults.get("params", {}), f"{where} params")
    default_grant = _grant(defaults.get("grant"), path, f"{where} grant")
    built = tuple(
        _host(name, value, source, default_relay, default_ticket, default_params)
        for name, value in hosts.items()
    )
    built = tuple(
        replace(
            h,
            grant=_grant(hosts[h.name].get("grant"), path, f"{source}: [hosts.{h.name}] grant")
            or default_grant,
        )
        for h in built
    )
    names = {h.name for h in built}
    for host in built:
        for group in host.groups:
            if group in names:
                raise UsageError(
                    f"{source}: [hosts.{host.name}] groups: the group {group!r} has the name "
                    "of a host, so --limit could not tell them apart."
                )
    return Inventory(path, built)


def _host(
    name: str,
    value: object,
    source: str,
    default_relay: str | None,
    default_ticket: str | None,
    default_params: Mapping[str, str],
) -> Host:
    if not NAME.fullmatch(name):
        raise UsageError(
            f"{source}: the host name {printable(name, 80)!r} is not 1-64 letters, digits, "
            "'.', '_' or '-'.",
            hint=_HINT,
        )
    where = f"{source}: [hosts.{name}]"
    table = _table(value, where)
    _only(table, _HOST, where)
    address = table.get("address")
    relay = _relay(table.get("relay"), f"{where} relay")
    relay_name = table.get("name")
    if address is not None:
        if relay is not None or relay_name is not None:
            raise UsageError(f"{where}: give an address, or a relay and a name, not both.")
        parsed: tuple[str, int] | None = _address(address, f"{where} address")
        relay_name = None
    else:
        parsed = None
        relay = relay or default_relay
        if relay is None:
            raise UsageError(
                f"{where}: no address, and no relay (here or in [defaults]) to reach it by name.",
                hint=_HINT,
            )
        relay_name = _name(relay_name if relay_name is not None else name, f"{where} name")
    host_key = table.get("host_key")
    if host_key is not None and (
        not isinstance(host_key, str) or not FINGERPRINT.fullmatch(host_key)
    ):
        raise UsageError(
            f"{where} host_key: {printable(host_key, 80)!r} is not a SHA256:... fingerprint.",
            hint="toolkit serve --show-host-key prints the agent's; so does ssh-keygen -l.",
        )
    groups = table.get("groups", [])
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS:
        raise UsageError(f"{where} groups: give a list of at most {MAX_GROUPS} group names.")
    checked = tuple(dict.fromkeys(_name(g, f"{where} groups") for g in groups))
    params = {**default_params, **_params(table.get("params", {}), f"{where} params")}
    ticket = _string(table.get("ticket"), f"{where} ticket") or default_ticket
    return Host(
        name=name,
        address=parsed,
        relay=relay if parsed is None else None,
        relay_name=relay_name,
        host_key=host_key,
        groups=checked,
        params=params,
        ticket=ticket.replace("{host}", name) if ticket is not None else None,
    )


def _grant(value: object, inventory: Path, where: str) -> Path | None:
    """A grant file's path, relative to the inventory's directory unless absolute."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 4096:
        raise UsageError(f"{where}: give the path of a grant file.", hint=_HINT)
    return inventory.parent / value


def _toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        why = printable(exc, 200)
    except RecursionError:
        why = "arrays or inline tables are nested too deeply"
    except ValueError:
        why = "a number has too many digits"
    raise UsageError(f"{source} is not valid TOML: {why}", hint=_HINT)


def _only(table: Mapping[str, object], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise UsageError(
                f"{where}: unknown key {printable(key, 80)!r} "
                f"(known: {', '.join(sorted(allowed))}).",
                hint=_HINT,
            )


def _table(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a table.", hint=_HINT)
    return value


def _string(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_VALUE:
        raise UsageError(f"{where} must be a non-empty string.", hint=_HINT)
    if not value.isprintable():
        raise UsageError(f"{where} holds control or invisible characters: {printable(value, 80)}")
    return value


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise UsageError(
            f"{where}: {printable(value, 80)!r} is not 1-64 letters, digits, '.', '_' or '-'."
        )
    return value


def _relay(value: object, where: str) -> str | None:
    text = _string(value, where)
    if text is None:
        return None
    from toolkit.transport.relay import RelayAddress

    try:
        return str(RelayAddress.parse(text))
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}", hint=exc.hint) from None


def _address(value: object, where: str) -> tuple[str, int]:
    text = _string(value, where) or ""
    host, colon, port = text.rpartition(":")
    if (
        not colon
        or not _HOSTNAME.fullmatch(host)
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise UsageError(
            f"{where}: {printable(text, 80)!r} is not HOST:PORT (an IPv6 address in brackets).",
            hint='For example: address = "10.0.0.5:7022"',
        )
    return host.strip("[]"), int(port)


def _params(value: object, where: str) -> dict[str, str]:
    table = _table(value, where)
    params = {}
    for key, item in table.items():
        if not _PARAM.fullmatch(key):
            raise UsageError(f"{where}: {printable(key, 80)!r} is not a parameter name.")
        if not isinstance(item, str):
            raise UsageError(f'{where}.{key} must be a string (quote numbers: "80").')
        if len(item) > MAX_VALUE:
            raise UsageError(f"{where}.{key} is longer than {MAX_VALUE} characters.")
        params[key] = item
    return params


# -- --limit -----------------------------------------------------------------------------

#: What a retry file (``--limit @FILE``) may weigh: one name per line.
MAX_RETRY = 8 << 20


def select(inventory: Inventory, limit: str | None) -> list[Host]:
    """The hosts ``limit`` picks, in the inventory's order (every host without one).

    As Ansible's ``--limit``: patterns separated by ``,`` or ``:``, each a host
    name, a group, a glob over both (``web-*``), ``all``, or ``@FILE`` (a retry
    file: one host name per line). ``&PATTERN`` keeps only hosts it matches too,
    ``!PATTERN`` takes them out; plain patterns are a union. A pattern that
    matches nothing is refused (a typo after ``!`` would otherwise run on the
    very host it meant to spare), and so is a selection of no hosts at all.
    """
    if limit is None:
        return list(inventory.hosts)
    union: set[str] = set()
    narrow: list[set[str]] = []
    drop: set[str] = set()
    plain = False
    for word in _words(limit):
        kind, pattern = (word[0], word[1:]) if word[0] in "!&" else ("", word)
        if not pattern:
            raise UsageError(f"--limit {printable(limit, 200)!r}: {word!r} names nothing.")
        matched = _match(inventory, pattern)
        if kind == "!":
            drop |= matched
        elif kind == "&":
            narrow.append(matched)
        else:
            union |= matched
            plain = True
    if not plain:  # only & and !: they narrow all hosts, as Ansible's "all:!x"
        union = {h.name for h in inventory.hosts}
    for kept in narrow:
        union &= kept
    union -= drop
    chosen = [h for h in inventory.hosts if h.name in union]
    if not chosen:
        raise UsageError(f"--limit {printable(limit, 200)!r} leaves no host to run on.")
    return chosen


def _words(limit: str) -> list[str]:
    words: list[str] = []
    for part in limit.split(","):
        part = part.strip()
        # A retry file's path may hold a colon: "@" takes the rest of its comma part.
        if part.startswith(("@", "!@", "&@")):
            words.append(part)
        else:
            words += [w.strip() for w in part.split(":")]
    if not words or any(not w for w in words):
        raise UsageError(
            f"--limit {printable(limit, 200)!r} has an empty pattern.",
            hint="Patterns are host names, groups or globs, separated by ',' or ':'.",
        )
    return words


def _match(inventory: Inventory, pattern: str) -> set[str]:
    if pattern.startswith("@"):
        return _retry_file(inventory, Path(pattern[1:]))
    if pattern in ("all", "*"):
        return {h.name for h in inventory.hosts}
    if any(c in pattern for c in "*?["):
        matched = {
            h.name
            for h in inventory.hosts
            if fnmatch.fnmatchcase(h.name, pattern)
            or any(fnmatch.fnmatchcase(g, pattern) for g in h.groups)
        }
    else:
        matched = {h.name for h in inventory.hosts if h.name == pattern or pattern in h.groups}
    if not matched:
        raise UsageError(
            f"--limit: {printable(pattern, 80)!r} matches no host or group of "
            f"{printable(str(inventory.path), 200)}."
        )
    return matched


def read_retry(path: Path) -> list[str]:
    """The host names of a retry file: one a line; blank lines and ``#`` comments skipped."""
    text = read_text(path, what="the retry file", limit=MAX_RETRY)
    names = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not NAME.fullmatch(line):
            raise UsageError(
                f"{printable(str(path), 200)}, line {number}: {printable(line, 80)!r} is not "
                "a host name."
            )
        names.append(line)
    return names


def _retry_file(inventory: Inventory, path: Path) -> set[str]:
    names = read_retry(path)
    known = {h.name for h in inventory.hosts}
    for name in names:
        if name not in known:
            raise UsageError(
                f"{printable(str(path), 200)} names {name!r}, which "
                f"{printable(str(inventory.path), 200)} does not list.",
                hint="Was the retry file written for another inventory?",
            )
    if not names:
        raise UsageError(f"{printable(str(path), 200)} names no host.")
    return set(names)


__all__ = ["FINGERPRINT", "NAME", "Host", "Inventory", "load", "parse", "read_retry", "select"]
