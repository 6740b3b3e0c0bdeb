"""Helpers the diagnostics and fixes share: sizes, outputs, common parameters.

Everything here runs on the technician's side, on the output the agent sent
back. Text in a :class:`Finding` or a :class:`Decision` comes from the
customer's machine; the renderer makes it printable, as with any peer text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from toolkit.plugins import Parameter, ParameterType, StepOutput

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGTPE]?)(?:i?B)?", re.IGNORECASE)
_UNITS = "KMGTPE"

#: A systemd unit name, never a glob (journalctl -u and systemctl take globs).
UNIT_NAME = r"[A-Za-z0-9][A-Za-z0-9:_.@-]{0,250}"
#: restart-unit restarts services only: name.service or template@instance.service.
SERVICE = UNIT_NAME + r"\.service"
#: A size as journalctl --vacuum-size and cmp --ignore-initial read it: K, M, G are 1024-based.
SIZE = r"[1-9][0-9]{0,5}[KMG]"
#: An absolute path of plain names: no empty part ('//' is not normalised away), no glob.
PATH = r"/|(/[A-Za-z0-9._@+-]+)+"
#: A host name, or an IPv4 or IPv6 address; never an option, never a path.
HOST = r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}"


def size_parameter(description: str, default: str | None = None) -> Parameter:
    return Parameter("size", pattern=SIZE, description=description, default=default)


def lines_parameter(description: str, default: str, maximum: int) -> Parameter:
    return Parameter(
        "lines",
        pattern=r"[0-9]{1,6}",
        type=ParameterType.INTEGER,
        description=description,
        default=default,
        minimum=1,
        maximum=maximum,
    )


def parse_size(text: str) -> int:
    """Bytes of a size as journalctl, df -h and this plugin's parameters write it (1024-based).

    ``200M``, ``1.2G``, ``0B``, ``512.0K``, ``12345``: ValueError for anything else.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text[:40]!r}")
    number, unit = match.groups()
    power = _UNITS.index(unit.upper()) + 1 if unit else 0
    return int(float(number) * 1024**power)


def human(size: int) -> str:
    """``size`` bytes for people: 1.5 GiB, 200 MiB, 12 B."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def output(outputs: Sequence[StepOutput], index: int) -> StepOutput | None:
    """The output of command ``index``, if it ran (a fix's step stops at its first failure)."""
    return outputs[index] if index < len(outputs) else None


def ran(out: StepOutput | None) -> bool:
    """Whether the command ran and exited 0."""
    return out is not None and out.exit_status == 0


def failure(out: StepOutput | None) -> str:
    """One line on why a command did not succeed: its first line of stderr, or its status."""
    if out is None:
        return "it did not run"
    said = out.stderr.decode("utf-8", "replace").strip().splitlines()
    first = said[0][:160] if said else ""
    return f"{out.argv[0]} exited {out.exit_status}" + (f": {first}" if first else "")


def key_values(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (systemctl show, timedatectl show, os-release) as a dict."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip().strip('"')
    return values


__all__ = [
    "HOST",
    "PATH",
    "SERVICE",
    "SIZE",
    "UNIT_NAME",
    "failure",
    "human",
    "key_values",
    "lines_parameter",
    "output",
    "parse_size",
    "ran",
    "size_parameter",
]
