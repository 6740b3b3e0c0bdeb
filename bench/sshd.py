"""A throwaway OpenSSH sshd on loopback, run as the current user, for comparisons.

Its own host key, one client key, a config file that allows nothing but
public-key logins from that key; everything lives in a scratch directory.

A fair baseline: a command run through ``ssh`` runs in the user's shell, and
bash reads ``~/.bashrc`` when sshd starts it (root's here runs pyenv's set-up,
about 0.2 s per command). So the sessions of this sshd get an empty directory
as ``HOME`` (``SetEnv``, OpenSSH 8.7 and later) and no ``~/.ssh/rc``: no shell
start-up file of the user's runs, as for a user who has none, while the
session keeps the user's own rights (the files a benchmark reads). If that
cannot be had, :attr:`Sshd.note` says so and the benchmarks print it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True)
class Sshd:
    port: int
    client_key: Path
    #: The empty HOME its sessions get, or None when they run the user's start-up files.
    home: Path | None = None
    #: Why the baseline is not fair (start-up files run), for a NOTE; None when it is.
    note: str | None = None

    def ssh_argv(self, *command: str, options: Sequence[str] = ()) -> list[str]:
        """``ssh`` to this sshd running ``command``, ignoring every user config file."""
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key),
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            *options,
            "127.0.0.1",
            *command,
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> str | None:
    """None when sshd and ssh can run here, else why not."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} is missing (Debian package openssh-server)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "ssh or ssh-keygen is missing (Debian package openssh-client)"
    return None


@contextmanager
def local_sshd(
    workdir: Path, extra_config: Sequence[str] = (), *, empty_home: bool = True
) -> Iterator[Sshd]:
    """An sshd on 127.0.0.1 for the current user; its sessions get an empty HOME.

    ``extra_config`` lines go after the main ones (a ``Match`` block may come
    last). With ``empty_home=False`` the sessions run the user's start-up files.
    """
    why = available()
    if why is not None:
        raise RuntimeError(why)
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)],
            check=True,
        )
    (workdir / "authorized_keys").write_bytes((workdir / "client_key.pub").read_bytes())
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
    home = workdir / "home" if empty_home else None
    if home is not None:
        home.mkdir(mode=0o700, exist_ok=True)
    try:
        with _sshd(workdir, extra_config, home) as sshd:
            yield sshd
    except _NoSetEnv:  # an sshd before OpenSSH 8.7: the user's own start-up files run
        note = _unfair(f"{SSHD} does not take SetEnv (OpenSSH 8.7 or later does)")
        with _sshd(workdir, extra_config, None, note) as sshd:
            yield sshd


class _NoSetEnv(RuntimeError):
    pass


def _unfair(why: str) -> str | None:
    """The NOTE for a baseline whose sessions run the user's start-up files, if there are any."""
    found = [f for f in _START_UP if (Path.home() / f).exists()]
    if not found:
        return None  # nothing to run: fair anyway
    return (
        f"the OpenSSH baseline runs {', '.join('~/' + f for f in found)} at every ssh "
        f"command ({why}), so toolkit's ratios against it are flattering"
    )


#: Files a shell started by sshd may read from HOME (bash, sh, zsh).
_START_UP = (".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshenv", ".ssh/rc")


@contextmanager
def _sshd(
    workdir: Path, extra_config: Sequence[str], home: Path | None, note: str | None = None
) -> Iterator[Sshd]:
    port = free_port()
    config = workdir / "sshd_config"
    fair = [f"SetEnv HOME={home}", "PermitUserRC no"] if home is not None else []
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {workdir / 'host_key'}",
                f"PidFile {workdir / 'sshd.pid'}",
                f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "LogLevel ERROR",
                *fair,
                *extra_config,
                "",
            ]
        )
    )
    if home is not None:
        test = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        if test.returncode != 0 and "SetEnv" in test.stderr:
            raise _NoSetEnv(test.stderr.strip())
    with open(workdir / "sshd.log", "wb") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = (workdir / "sshd.log").read_text(errors="replace")
                    raise RuntimeError(f"sshd did not start: {why}") from None
                time.sleep(0.05)
        sshd = Sshd(port, workdir / "client_key", home, note)
        if home is not None:
            seen = subprocess.run(
                sshd.ssh_argv('printf %s "$HOME"'), capture_output=True, text=True
            )
            if seen.stdout != str(home):  # a shell that sets HOME itself, say
                sshd = Sshd(port, workdir / "client_key", None, _unfair("HOME was not replaced"))
        yield sshd
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Bastion:
    """An sshd set up as a toolkit relay (docs/relay.md): who logs in, where names live."""

    sshd: Sshd
    user: str
    socket_dir: Path
    host_key_line: str  # "ssh-ed25519 AAAA...", for known_hosts

    @property
    def port(self) -> int:
        return self.sshd.port

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key_line}\n"

    def ssh_config(self, alias: str, identity: Path | None = None) -> str:
        lines = [f"Host {alias}", "    HostName 127.0.0.1", f"    Port {self.port}"]
        lines.append(f"    User {self.user}")
        if identity is not None:
            lines.append(f"    IdentityFile {identity}")
        return "\n".join(lines) + "\n"


def bastion_user() -> str:
    """Who logs in to the bastion: OpenSSH forwards no sockets for root, so not root."""
    import getpass

    return "nobody" if os.geteuid() == 0 else getpass.getuser()


@contextmanager
def bastion_sshd(public_keys: Sequence[str], user: str | None = None) -> Iterator[Bastion]:
    """A loopback sshd with docs/relay.md's relay block for ``user``, and these keys.

    Its files live in a fresh directory under /tmp that ``user`` can read (sshd
    reads authorized_keys as that user); the rendezvous directory is theirs.
    """
    import pwd
    import tempfile

    from toolkit.relay.openssh import bastion_config

    user = user or bastion_user()
    base = Path(tempfile.mkdtemp(prefix="toolkit-bastion-"))
    try:
        base.chmod(0o755)
        socket_dir = base / "rendezvous"
        socket_dir.mkdir(mode=0o700)
        account = pwd.getpwnam(user)
        os.chown(socket_dir, account.pw_uid, account.pw_gid)
        keys = base / "authorized_keys"
        keys.write_text("".join(f"restrict,port-forwarding {k.strip()}\n" for k in public_keys))
        keys.chmod(0o644)
        block = bastion_config(user, str(socket_dir)).splitlines()
        with local_sshd(base / "sshd", [*block, f"    AuthorizedKeysFile {keys}"]) as sshd:
            line = " ".join((base / "sshd" / "host_key.pub").read_text().split()[:2])
            yield Bastion(sshd, user, socket_dir, line)
    finally:
        shutil.rmtree(base, ignore_errors=True)


__all__ = ["Bastion", "Sshd", "available", "bastion_sshd", "bastion_user", "local_sshd"]
