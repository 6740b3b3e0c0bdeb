"""A relay's host key against the user's known_hosts: known, unknown, or changed.

What ssh does before it logs in, without logging in: the key the server
offers (ssh-keyscan's way: the key exchange alone, no authentication, so a
relay's log shows no failed login) is looked up among the keys known_hosts
lists for that host and port. An unknown key may be added on the user's
explicit yes (:func:`add_known_host`, creating ~/.ssh 0700 and the file 0600
as ssh does); a changed or revoked one never is.

No terminal here: the CLI asks (toolkit.cli._relay), this module decides.
"""

from __future__ import annotations

import enum
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from toolkit.identity.keys import fingerprint

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: A known_hosts file larger than this is not read whole (ssh reads any size; we stop here).
MAX_KNOWN_HOSTS = 16 << 20


class HostKeyStatus(enum.Enum):
    KNOWN = "known"  # listed for this host: go on
    UNKNOWN = "unknown"  # nothing listed for this host: ask (on a terminal), else stop
    CHANGED = "changed"  # other keys listed for this host: always refused
    REVOKED = "revoked"  # marked @revoked: always refused


@dataclass(frozen=True)
class HostKeyCheck:
    """What the host offered, and what known_hosts says of it."""

    status: HostKeyStatus
    key: asyncssh.SSHKey
    #: How known_hosts names the host: ``host`` on port 22, else ``[host]:port``.
    pattern: str
    #: The file a "yes" adds the key to: the first UserKnownHostsFile, or ~/.ssh/known_hosts.
    file: Path
    #: Fingerprints of the keys known_hosts lists for this host (for a changed key).
    listed: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.public_data)

    @property
    def kind(self) -> str:
        """The key type as ssh names it in its question: ED25519, ECDSA, RSA."""
        algorithm = self.key.get_algorithm()
        for prefix, name in (("ssh-ed25519", "ED25519"), ("ecdsa", "ECDSA"), ("ssh-rsa", "RSA")):
            if algorithm.startswith(prefix):
                return name
        return algorithm.upper()

    @property
    def line(self) -> str:
        """The known_hosts line that trusts this key for this host."""
        public = self.key.export_public_key("openssh").decode("ascii").split()
        return f"{self.pattern} {public[0]} {public[1]}"

    def add_command(self) -> str:
        """A shell command that adds :attr:`line`, working where the file's directory is missing."""
        shown = _home_relative(self.file)
        parent = _home_relative(self.file.parent)
        return (
            f"mkdir -p -m 700 {parent} && echo {shlex.quote(self.line)} >> {shown}"
            if parent
            else f"echo {shlex.quote(self.line)} >> {shown}"
        )


def _home_relative(path: Path) -> str:
    """``path`` for a shell command: ``~/...`` under $HOME (so that it expands), else quoted."""
    home = Path.home()
    try:
        rest = path.relative_to(home)
    except ValueError:
        return shlex.quote(str(path))
    if str(rest) == ".":
        return ""
    return "~/" + "/".join(shlex.quote(part) for part in rest.parts)


def known_hosts_files(configured: object) -> list[Path]:
    """The known_hosts files ~/.ssh/config names (UserKnownHostsFile), else the default one."""
    files: list[Path] = []
    if isinstance(configured, str):
        files = [Path(configured).expanduser()]
    elif isinstance(configured, list | tuple):
        files = [Path(str(f)).expanduser() for f in configured if isinstance(f, str | Path)]
    return files or [Path(DEFAULT_KNOWN_HOSTS).expanduser()]


def host_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _listed(files: list[Path]) -> bytes:
    data = b""
    for path in files:
        try:
            with path.open("rb") as f:
                data += f.read(MAX_KNOWN_HOSTS) + b"\n"
        except OSError:
            continue  # missing or unreadable: lists nothing, as for ssh
    return data


def lookup(
    files: list[Path], host: str, port: int
) -> tuple[list[asyncssh.SSHKey], bool, list[asyncssh.SSHKey]]:
    """(trusted keys, whether a CA is trusted, revoked keys) for ``host`` and ``port``."""
    data = _listed(files)
    if not data.strip():
        return [], False, []
    try:
        trusted, cas, revoked, *_ = asyncssh.match_known_hosts(
            data, host, "", port if port != 22 else None
        )
    except (ValueError, asyncssh.KeyImportError) as exc:
        # Not "nothing listed": a changed key would then look merely unknown.
        raise UnreadableKnownHosts(files, str(exc)) from None
    return list(trusted), bool(cas), list(revoked)


class UnreadableKnownHosts(Exception):
    """known_hosts holds a line that cannot be read: nothing can be said of any key."""

    def __init__(self, files: list[Path], reason: str) -> None:
        super().__init__(reason)
        self.files = files
        self.reason = reason


def classify(offered: asyncssh.SSHKey, files: list[Path], host: str, port: int) -> HostKeyCheck:
    """Whether ``offered`` is the key known_hosts lists for ``host``:``port``."""
    trusted, ca, revoked = lookup(files, host, port)
    blob = offered.public_data
    listed = tuple(fingerprint(k.public_data) for k in trusted)
    if any(k.public_data == blob for k in revoked):
        status = HostKeyStatus.REVOKED
    elif any(k.public_data == blob for k in trusted) or ca:
        status = HostKeyStatus.KNOWN  # a host CA: the connection itself checks the certificate
    elif trusted:
        status = HostKeyStatus.CHANGED
    else:
        status = HostKeyStatus.UNKNOWN
    return HostKeyCheck(status, offered, host_pattern(host, port), files[0], listed)


def preferred_algorithms(files: list[Path], host: str, port: int) -> list[str]:
    """Host key algorithms to ask for: those of the keys listed, so that a host with several
    keys offers the one known_hosts has (as ssh and asyncssh do), or none for the defaults."""
    trusted, ca, _ = lookup(files, host, port)
    if ca:
        return []
    algorithms: list[str] = []
    for key in trusted:
        for alg in key.sig_algorithms:
            name = alg.decode("ascii")
            if name not in algorithms:
                algorithms.append(name)
    return algorithms


def add_known_host(check: HostKeyCheck) -> None:
    """Append ``check``'s line to its file: ~/.ssh made 0700 and the file 0600 if missing."""
    path = check.file
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as f:
        if f.tell() > 0 and not _ends_with_newline(path):
            f.write("\n")
        f.write(check.line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


__all__ = [
    "HostKeyCheck",
    "HostKeyStatus",
    "UnreadableKnownHosts",
    "add_known_host",
    "classify",
    "host_pattern",
    "known_hosts_files",
    "preferred_algorithms",
]
