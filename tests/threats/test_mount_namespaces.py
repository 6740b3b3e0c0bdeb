"""Threat: files of another mount namespace, and of overlays, under an allowed name.

A rootless container or a sandbox binds ~/.ssh onto ~/pub/nsbind inside a
mount namespace of its own. In the agent's namespace ~/pub/nsbind is empty,
but ``/proc/<pid>/root/<home>/pub/nsbind/config`` is ~/.ssh/config, and the
agent used to judge that path as if it were its own. An overlay mounted over
an allowed directory with ~/.ssh as a layer served the keys the same way.
Every test first shows the file is really there (a plain ``open``), then that
``read``, ``stat`` and ``list`` refuse it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.threats.namespace_support import (
    NOBODY,
    Other,
    judge_elsewhere,
    namespaces_unavailable,
    other_namespace,
)
from tests.unit.policy.support import ALLOWED_CONTENT, SECRET_CONTENT, make_policy
from toolkit.errors import PolicyRefused
from toolkit.policy import UNAVAILABLE, Policy, file_rule, list_dir, open_for_read, stat_path
from toolkit.policy._mounts import read_mounts
from toolkit.policy.files import _candidate

SECRET = SECRET_CONTENT.decode()
needs_namespaces = pytest.mark.skipif(
    namespaces_unavailable() is not None, reason=namespaces_unavailable() or ""
)
pytestmark = needs_namespaces


@dataclass(frozen=True)
class Home:
    """~/.ssh/config (denied by the built-in list), ~/pub/ok.txt, empty ~/pub/nsbind."""

    home: Path
    ssh: Path
    pub: Path
    nsbind: Path
    policy: Policy


def _make_home(home: Path) -> Home:
    ssh, pub = home / ".ssh", home / "pub"
    ssh.mkdir(parents=True)
    (ssh / "config").write_bytes(SECRET_CONTENT)
    (pub / "nsbind").mkdir(parents=True)
    (pub / "ok.txt").write_bytes(ALLOWED_CONTENT)
    policy = make_policy(home=str(home), allow=["~/pub/**"])
    return Home(home, ssh, pub, pub / "nsbind", policy)


@pytest.fixture
def tree() -> Home:
    return _make_home(Path(os.environ["HOME"]).resolve())  # conftest's HOME, for ~


@pytest.fixture
def other(tree: Home) -> Iterator[Other]:
    with other_namespace(tree.ssh, tree.nsbind, "config") as process:
        yield process


def _there(path: str) -> None:
    """The attack is real: a plain open of the path gives the denied file."""
    with open(path, "rb") as f:
        assert f.read() == SECRET_CONTENT


def _refused_everywhere(path: str, policy: Policy) -> None:
    for op in (open_for_read, stat_path, list_dir):
        with pytest.raises(PolicyRefused) as caught:
            op(path, policy)
        assert caught.value.message == f"refused: {path!r}: {UNAVAILABLE}", op


# -- another process's namespace, through /proc/<pid>/... ------------------------------


def test_proc_pid_root_of_another_mount_namespace(tree: Home, other: Other) -> None:
    path = f"/proc/{other.pid}/root{tree.nsbind}/config"
    _there(path)
    _refused_everywhere(path, tree.policy)
    _refused_everywhere(f"/proc/{other.pid}/root{tree.nsbind}", tree.policy)
    _refused_everywhere(f"/proc/{other.pid}/root{tree.pub}", tree.policy)
    assert list_dir(str(tree.nsbind), tree.policy) == []  # the agent's own view: empty


def test_proc_pid_cwd_of_another_mount_namespace(tree: Home, other: Other) -> None:
    _there(f"/proc/{other.pid}/cwd/config")
    _refused_everywhere(f"/proc/{other.pid}/cwd/config", tree.policy)
    _refused_everywhere(f"/proc/{other.pid}/cwd", tree.policy)


def test_proc_pid_fd_of_another_mount_namespace(tree: Home, other: Other) -> None:
    _there(f"/proc/{other.pid}/fd/{other.dir_fd}/config")
    _refused_everywhere(f"/proc/{other.pid}/fd/{other.dir_fd}/config", tree.policy)
    _there(f"/proc/{other.pid}/fd/{other.file_fd}")
    _refused_everywhere(f"/proc/{other.pid}/fd/{other.file_fd}", tree.policy)


def test_proc_pid_map_files_of_another_mount_namespace(tree: Home, other: Other) -> None:
    assert other.mapping is not None
    path = f"/proc/{other.pid}/map_files/{other.mapping}"
    _there(path)
    _refused_everywhere(path, tree.policy)


def test_proc_pid_task_root_and_cwd_of_another_mount_namespace(tree: Home, other: Other) -> None:
    task = f"/proc/{other.pid}/task/{other.pid}"
    for path in (f"{task}/root{tree.nsbind}/config", f"{task}/cwd/config"):
        _there(path)
        _refused_everywhere(path, tree.policy)


def test_a_descriptor_on_a_mount_the_agent_does_not_see(tree: Home, other: Other) -> None:
    # Whatever way a descriptor was had, the mount it lies on decides.
    fd = os.open(f"/proc/{other.pid}/root{tree.nsbind}/config", os.O_PATH)
    try:
        candidate = _candidate(fd)
        assert candidate.path == f"{tree.nsbind}/config"  # looks like an allowed path
        with pytest.raises(PolicyRefused, match="not available"):
            file_rule(tree.policy, "read", read_mounts()).check(candidate)
    finally:
        os.close(fd)


def test_proc_pid_root_of_another_process_in_the_agents_own_namespace(tree: Home) -> None:
    # The same files as the agent's own, but through another process: refused all the same.
    sleeper = subprocess.Popen(["sleep", "600"], cwd=tree.pub)
    try:
        for path in (
            f"/proc/{sleeper.pid}/root{tree.pub}/ok.txt",
            f"/proc/{sleeper.pid}/cwd/ok.txt",
        ):
            with open(path, "rb") as f:
                assert f.read() == ALLOWED_CONTENT
            _refused_everywhere(path, tree.policy)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_agents_own_proc_links_still_lead_to_allowed_files(
    tree: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree.pub)
    tid = threading.get_native_id()
    for path in (
        f"/proc/self/root{tree.pub}/ok.txt",
        f"/proc/thread-self/root{tree.pub}/ok.txt",
        f"/proc/{os.getpid()}/task/{tid}/cwd/ok.txt",
        "/proc/self/cwd/ok.txt",
    ):
        with open_for_read(path, tree.policy) as opened:
            assert opened.read() == ALLOWED_CONTENT, path


@pytest.mark.skipif(
    namespaces_unavailable(user=NOBODY) is not None,
    reason=namespaces_unavailable(user=NOBODY) or "",
)
def test_proc_pid_root_of_another_mount_namespace_as_unprivileged_users() -> None:
    # A rootless container of an ordinary user, and the agent run by that user.
    base = Path(tempfile.mkdtemp(prefix="toolkit-ns-"))
    try:
        base.chmod(0o755)
        tree = _make_home(base / "home")
        for item in [base / "home", *(base / "home").rglob("*")]:
            os.chown(item, NOBODY, NOBODY)
        with other_namespace(tree.ssh, tree.nsbind, "config", user=NOBODY) as other:
            paths = [
                f"/proc/{other.pid}/root{tree.nsbind}/config",
                f"/proc/{other.pid}/cwd/config",
                f"/proc/{other.pid}/fd/{other.dir_fd}/config",
                f"/proc/{other.pid}/fd/{other.file_fd}",
            ]
            results = judge_elsewhere(paths, allow=["~/pub/**"], uid=NOBODY, home=tree.home)
        for path in paths:
            assert results[f"plain {path}"] == ["ok", SECRET], path
            for op in ("read", "stat", "list"):
                assert results[f"{op} {path}"] == ["refused", f"refused: {path!r}: {UNAVAILABLE}"]
    finally:
        shutil.rmtree(base)


# -- overlays and a second procfs in the agent's own namespace ------------------------


def _overlay(target: Path, *options: str) -> list[str]:
    return ["mount", "-t", "overlay", "overlay", "-o", ",".join(options), str(target)]


def _judge_overlay(tree: Home, *options: str, cwd: Path | None = None) -> dict[str, list[object]]:
    ov = tree.pub / "ov"
    ov.mkdir()
    (tree.home / "empty").mkdir(exist_ok=True)
    mount = _overlay(ov, *options)
    if cwd is not None:  # a relative layer: mount from that directory
        mount = ["sh", "-c", f'cd "{cwd}" && exec "$@"', "sh", *mount]
    return judge_elsewhere(
        [f"{ov}/config", str(ov)], allow=["~/pub/**"], setup=[mount], private=True
    )


def _all_refused(results: dict[str, list[object]], path: str) -> None:
    assert results[f"plain {path}"] == ["ok", SECRET]
    for op in ("read", "stat"):
        assert results[f"{op} {path}"] == ["refused", f"refused: {path!r}: {UNAVAILABLE}"], op


def test_overlay_whose_lower_directory_is_denied(tree: Home) -> None:
    results = _judge_overlay(tree, f"lowerdir={tree.ssh}:{tree.home / 'empty'}")
    _all_refused(results, f"{tree.pub}/ov/config")
    assert results[f"list {tree.pub}/ov"][0] == "refused"


def test_overlay_whose_upper_directory_is_denied(tree: Home) -> None:
    work = tree.home / "work"
    work.mkdir()
    results = _judge_overlay(
        tree, f"lowerdir={tree.home / 'empty'}", f"upperdir={tree.ssh}", f"workdir={work}"
    )
    _all_refused(results, f"{tree.pub}/ov/config")


def test_overlay_whose_layers_cannot_be_located(tree: Home) -> None:
    # mountinfo shows a relative layer as it was given: the agent cannot tell where it
    # is, so it refuses the overlay's files rather than guess.
    results = _judge_overlay(tree, "lowerdir=.ssh:empty", cwd=tree.home)
    _all_refused(results, f"{tree.pub}/ov/config")


def test_overlay_of_harmless_directories_still_reads(tree: Home) -> None:
    data = tree.home / "data"
    data.mkdir()
    (data / "config").write_bytes(SECRET_CONTENT)  # the same content, from an allowed layer
    results = _judge_overlay(tree, f"lowerdir={data}:{tree.home / 'empty'}")
    assert results[f"read {tree.pub}/ov/config"] == ["ok", SECRET]
    assert results[f"list {tree.pub}/ov"] == ["ok", ["config"]]


def test_a_second_procfs_under_an_allowed_directory(tree: Home) -> None:
    proc2 = tree.pub / "proc2"
    proc2.mkdir()
    # this test's process is another process to the agent's, in another mount namespace
    paths = [f"{proc2}/{os.getpid()}/root{tree.pub}/ok.txt", f"{proc2}/self/root{tree.pub}/ok.txt"]
    results = judge_elsewhere(
        paths, allow=["~/pub/**"], setup=[["mount", "-t", "proc", "proc", str(proc2)]], private=True
    )
    assert results[f"plain {paths[0]}"] == ["ok", ALLOWED_CONTENT.decode()]
    assert results[f"read {paths[0]}"][0] == "refused"
    assert results[f"read {paths[1]}"] == ["ok", ALLOWED_CONTENT.decode()]  # the agent itself


def test_a_chrooted_agent_stays_in_its_root(tree: Home, tmp_path: Path) -> None:
    # mountinfo leaves out the mount that holds a chrooted process's root: the jail's own
    # files must still read, and nothing outside it may, though everything is allowed
    jail = tmp_path / "jail"
    _make_home(jail / "home")
    (jail / "home" / "pub" / "link.txt").symlink_to("ok.txt")
    (jail / "proc").mkdir()
    outside = f"{tree.pub}/ok.txt"  # exists outside the jail, not inside it
    paths = [
        "/home/pub/ok.txt",
        "/home/pub/link.txt",
        "/proc/self/root/home/pub/ok.txt",  # the agent's own root is the jail
        "/../../../../../../.." + outside,
        f"/proc/{os.getpid()}/root{outside}",  # another process's root: the real one
    ]
    results = judge_elsewhere(
        paths,
        allow=["/**"],
        setup=[["mount", "-t", "proc", "proc", str(jail / "proc")]],
        private=True,
        chroot=jail,
        home=Path("/home"),
    )
    for path in paths[:3]:
        assert results[f"read {path}"] == ["ok", ALLOWED_CONTENT.decode()], path
    assert results[f"plain {paths[4]}"] == ["ok", ALLOWED_CONTENT.decode()]  # it is there
    for path in paths[3:]:
        assert results[f"read {path}"] == ["refused", f"refused: {path!r}: {UNAVAILABLE}"]
