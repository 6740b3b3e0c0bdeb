"""Mount namespaces for the allowlist's threat tests: another process's, and a private one.

Rootless containers and sandboxes bind-mount directories into a mount
namespace of their own. :func:`other_namespace` starts such a process: it
binds a denied directory onto an empty one the agent's allowlist covers, moves
its working directory there, holds descriptors on the directory and a file in
it (and, as root, maps the file), and waits. The agent's own namespace still
sees an empty directory; only ``/proc/<pid>/...`` leads into the other one.

:func:`judge_elsewhere` runs the agent's side in a subprocess: as another user
(dropping from root after the imports, so it needs no access to the checkout),
or in a private mount namespace prepared by ``setup`` commands (overlay and
procfs mounts that must be in the agent's own mount table, without touching
the machine's), and chrooted.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
READY_TIMEOUT = 20.0

#: The other process as root: Python, so that it can also map the file.
_AS_ROOT = """
import json, mmap, os, subprocess, sys
source, target, name = sys.argv[1:4]
subprocess.run(["mount", "--bind", source, target], check=True)
os.chdir(target)
dir_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
file_fd = os.open(name, os.O_RDONLY)
mapped = mmap.mmap(file_fd, 0, prot=mmap.PROT_READ)
mapping = None
with open("/proc/self/maps") as maps:
    for line in maps:
        if line.rstrip().endswith(os.path.join(target, name)):
            mapping = line.split()[0]
print(json.dumps({"dir_fd": dir_fd, "file_fd": file_fd, "mapping": mapping}), flush=True)
sys.stdin.read()
"""
#: The other process as an unprivileged user, in a user namespace of its own: sh only,
#: since the checkout's Python need not be reachable by that user.
_AS_USER = (
    'mount --bind "$1" "$2" && cd "$2" && exec 3<"$2" 4<"$2/$3" && '
    'echo \'{"dir_fd": 3, "file_fd": 4, "mapping": null}\' && exec sleep 600'
)


def _works(argv: Sequence[str]) -> bool:
    done = subprocess.run(argv, capture_output=True, check=False)
    return done.returncode == 0


@functools.cache
def namespaces_unavailable(*, user: int | None = None) -> str | None:
    """Why this machine cannot run the test, or None when it can."""
    if os.geteuid() != 0:
        return "needs root, to make mount namespaces and mounts"
    missing = [t for t in ("unshare", "mount", "setpriv") if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} (Debian package util-linux / mount)"
    if not _works(["unshare", "--mount", "--propagation", "private", "true"]):
        return "the kernel refuses a new mount namespace here (unshare --mount)"
    if user is not None and not _works(
        [*_as_user(user), "unshare", "--user", "--map-root-user", "--mount", "true"]
    ):
        return "the kernel refuses unprivileged user namespaces here"
    return None


def _as_user(user: int) -> list[str]:
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]


@dataclass(frozen=True)
class Other:
    """A process in another mount namespace, holding the bound directory."""

    pid: int
    dir_fd: int  # a descriptor it holds on the bound directory
    file_fd: int  # one on the file in it
    mapping: str | None  # the file's name in /proc/<pid>/map_files, when it is mapped


@contextmanager
def other_namespace(
    source: Path, target: Path, name: str, *, user: int | None = None
) -> Iterator[Other]:
    """A process that has ``source`` bound onto ``target`` in a mount namespace of its own.

    ``user``: run it as that user, in a user namespace of its own (as rootless
    containers do), instead of as root.
    """
    if user is None:
        argv = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            sys.executable,
            "-I",
            "-c",
            _AS_ROOT,
        ]
    else:
        argv = [*_as_user(user), "unshare", "--user", "--map-root-user", "--mount",
                "--propagation", "private", "sh", "-c", _AS_USER, "sh"]  # fmt: skip
    proc = subprocess.Popen(
        [*argv, str(source), str(target), name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # The process says when its mount is in place: wait for that line, not for a time.
        ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(f"the other namespace did not start: {err.strip()}")
        yield Other(proc.pid, **json.loads(line))
    finally:
        proc.kill()
        proc.wait()


#: The agent's side: judge each path with read, stat and list, and report as JSON.
_AGENT = """
import json, os, subprocess, sys
from toolkit.errors import PolicyRefused
from toolkit.policy import list_dir, open_for_read, stat_path
from tests.unit.policy.support import make_policy
job = json.loads(sys.argv[1])
for argv in job["setup"]:
    subprocess.run(argv, check=True, capture_output=True)
policy = make_policy(allow=job["allow"])
if job["chroot"] is not None:
    os.chroot(job["chroot"])
    os.chdir("/")
if job["uid"] is not None:
    os.setgroups([])
    os.setgid(job["uid"])
    os.setuid(job["uid"])

def read(path):
    with open_for_read(path, policy) as opened:
        return opened.read().decode(errors="replace")

def plain(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")

ops = {"read": read, "plain": plain,
       "stat": lambda p: stat_path(p, policy).kind,
       "list": lambda p: [e.name for e in list_dir(p, policy)]}
out = {}
for path in job["paths"]:
    for name, op in ops.items():
        try:
            out[f"{name} {path}"] = ["ok", op(path)]
        except PolicyRefused as exc:
            out[f"{name} {path}"] = ["refused", exc.message]
        except OSError as exc:
            out[f"{name} {path}"] = ["error", str(exc)]
print(json.dumps(out))
"""


def judge_elsewhere(
    paths: Sequence[str],
    *,
    allow: Sequence[str],
    setup: Sequence[Sequence[str]] = (),
    uid: int | None = None,
    private: bool = False,
    home: Path | None = None,
    chroot: Path | None = None,
) -> dict[str, list[object]]:
    """``read``, ``stat`` and ``list`` (and a plain ``open``, to show what is there) of each
    path, by the agent's policy functions in a subprocess: run as ``uid`` if given, in a
    private mount namespace after the ``setup`` commands if ``private``, chrooted
    into ``chroot`` if given (after the imports); ``~`` is ``home`` (else $HOME).

    Results map ``"<op> <path>"`` to ``["ok", value]``, ``["refused", message]`` or
    ``["error", text]``.
    """
    job = {
        "paths": list(paths),
        "allow": list(allow),
        "setup": [list(a) for a in setup],
        "uid": uid,
        "chroot": None if chroot is None else str(chroot),
    }
    argv = [sys.executable, "-c", _AGENT, json.dumps(job)]
    if private:
        argv = ["unshare", "--mount", "--propagation", "private", *argv]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home or os.environ["HOME"])},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[object]] = json.loads(done.stdout)
    return result
