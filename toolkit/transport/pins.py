"""Agents' host keys, pinned: what ssh's known_hosts does for servers, for toolkit agents.

A service agent (toolkit serve) keeps one host key for good, so a technician can
pin it: the inventory's ``host_key`` for a fleet's host, or the known agents
file (``<config dir>/known_agents``) for any agent, one line each::

    # NAME_OR_HOSTPORT FINGERPRINT
    web-01 SHA256:2Bq1...
    10.0.0.5:7022 SHA256:2Bq1...

The check is the ``host_key_check`` the consent step calls with the host key
the agent offered, before a grant is shown to it: a key listed for that name
goes on; a key other than the one listed is always refused (a changed key may
be someone else's agent); a key never seen is asked about when a person can be
asked (:data:`Ask`, from the CLI: yes saves it), and refused otherwise.
No terminal here: this module decides, the CLI asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from toolkit import paths
from toolkit.errors import HostKeyRefused, UsageError
from toolkit.identity.keys import fingerprint
from toolkit.inputs import UnreadableInput, read_text
from toolkit.text import printable

FILE_NAME = "known_agents"
MAX_FILE = 4 << 20
_LABEL = re.compile(
    r"[A-Za-z0-9._-]{1,64}|[A-Za-z0-9._-]{1,253}:[0-9]{1,5}|\[[0-9A-Fa-f:.]{2,45}\]:[0-9]{1,5}"
)
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")

#: Asks a person whether to trust ``fingerprint`` for ``label``: True saves it.
Ask = Callable[[str, str], bool]


def default_path() -> Path:
    return paths.config_dir() / FILE_NAME


def label_of(host: str, port: int) -> str:
    """How the file names an agent at an address: ``host:port`` (``[v6]:port``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KnownAgents:
    """The known agents file, read once; :meth:`check` and :meth:`checker` decide."""

    def __init__(self, path: Path | None = None, *, ask: Ask | None = None) -> None:
        self.path = path or default_path()
        self._ask = ask
        self._pins: dict[str, set[str]] = {}
        try:
            text = read_text(self.path, what="the known agents file", limit=MAX_FILE)
        except UnreadableInput as exc:
            if exc.missing:
                return  # nothing pinned yet
            raise
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            if (
                len(words) != 2
                or not _LABEL.fullmatch(words[0])
                or not _FINGERPRINT.fullmatch(words[1])
            ):
                raise UsageError(
                    f"{printable(str(self.path), 200)}, line {number}: not "
                    "`NAME_OR_HOST:PORT SHA256:FINGERPRINT`.",
                    hint="Fix or remove that line.",
                )
            self._pins.setdefault(words[0], set()).add(words[1])

    def lookup(self, label: str) -> frozenset[str]:
        """The fingerprints pinned for ``label`` (none: unknown)."""
        return frozenset(self._pins.get(label, ()))

    def check(self, host_label: str, blob: bytes) -> None:
        """The host key ``blob`` offered by the agent known as ``host_label``: pinned, or
        asked about and saved; HostKeyRefused otherwise."""
        self._decide([host_label], blob, None)

    def checker(
        self, name: str, address: tuple[str, int] | None, pinned: str | None
    ) -> Callable[[bytes], None]:
        """The host_key_check for an inventory host: its ``host_key`` when the inventory
        pins one (the file is not asked then), else the file's line for its name or its
        address."""
        labels = [name] + ([label_of(*address)] if address is not None else [])

        def check(blob: bytes) -> None:
            self._decide(labels, blob, pinned)

        return check

    def _decide(self, labels: list[str], blob: bytes, pinned: str | None) -> None:
        offered = fingerprint(blob)
        label = labels[0]
        if pinned is not None:
            known: frozenset[str] = frozenset({pinned})
            where = "the inventory"
        else:
            where = printable(str(self.path), 200)
            known = frozenset()
            for label in labels:
                known = self.lookup(label)
                if known:
                    break
            else:
                label = labels[0]
        shown = printable(label, 80)
        if offered in known:
            return
        if known:
            raise HostKeyRefused(
                f"The agent {shown} offered the host key {offered}, but {where} pins "
                f"{', '.join(sorted(known))} for it: refused, as a changed key may be another "
                "machine's agent.",
                hint="If the agent's key was really replaced, check the new fingerprint with "
                f"its owner (toolkit serve --show-host-key), then update {where}.",
            )
        if self._ask is None or not self._ask(label, offered):
            raise HostKeyRefused(
                f"The agent {shown} offered the host key {offered}, which is not pinned, and "
                "nobody confirmed it.",
                hint=f"Check it with the agent's owner (toolkit serve --show-host-key), then add "
                f"`{shown} {offered}` to {printable(str(self.path), 200)} or host_key to the "
                "inventory.",
            )
        self.add(label, offered)

    def add(self, label: str, fp: str) -> None:
        """Pin ``fp`` for ``label`` in the file (written atomically, 0600 in a 0700 dir)."""
        if not _LABEL.fullmatch(label) or not _FINGERPRINT.fullmatch(fp):
            raise UsageError(f"Cannot pin {printable(label, 80)!r}: not a name or HOST:PORT.")
        try:
            old = self.path.read_bytes() if self.path.is_file() else b""
            if old and not old.endswith(b"\n"):
                old += b"\n"
            paths.ensure_private_dir(self.path.parent)
            paths.atomic_write(self.path, old + f"{label} {fp}\n".encode())
        except OSError as exc:
            raise UsageError(
                f"Cannot save the host key in {printable(str(self.path), 200)}: "
                f"{(exc.strerror or str(exc)).lower()}."
            ) from None
        self._pins.setdefault(label, set()).add(fp)


__all__ = ["FILE_NAME", "Ask", "HostKeyRefused", "KnownAgents", "default_path", "label_of"]
