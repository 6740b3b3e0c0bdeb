"""A throwaway OpenSSH sshd on loopback, run as the current user, for comparisons.

Its own host key, one client key, a config file that allows nothing but
public-key logins from that key; everything lives in a scratch directory.
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
def local_sshd(workdir: Path, extra_config: Sequence[str] = ()) -> Iterator[Sshd]:
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
    port = free_port()
    config = workdir / "sshd_config"
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
                *extra_config,
                "",
            ]
        )
    )
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
        yield Sshd(port, workdir / "client_key")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


__all__ = ["Sshd", "available", "local_sshd"]
