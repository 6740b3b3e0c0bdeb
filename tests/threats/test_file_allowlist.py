"""Path tricks against the agent's file allowlist: one test per attack.

The attacker is the technician, who chooses the path string. Every trick has
to end at the real file and be judged there: the denied file's content never
comes back, and a refusal never says whether the denied file exists.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.policy.support import (
    ALLOWED_CONTENT,
    SECRET_CONTENT,
    World,
    build_world,
    make_policy,
    within,
)
from toolkit.errors import ExitCode, PolicyRefused
from toolkit.policy import UNAVAILABLE, list_dir, open_for_read, stat_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def refused(path: str | bytes, world: World) -> PolicyRefused:
    with pytest.raises(PolicyRefused) as caught, open_for_read(path, world.policy) as opened:
        assert SECRET_CONTENT not in opened.read()
    assert caught.value.exit_code == ExitCode.REFUSED
    assert SECRET_CONTENT.decode().strip() not in caught.value.diagnostics()
    return caught.value


def refused_as_unavailable(path: str, world: World) -> None:
    message = refused(path, world).message
    assert message.startswith("refused: '") and message.endswith(f"': {UNAVAILABLE}")
    if len(path) < 150:
        assert message == f"refused: {path!r}: {UNAVAILABLE}"


def read(path: str, world: World) -> bytes:
    with open_for_read(path, world.policy) as opened:
        return opened.read()


# -- traversal and symlinks -------------------------------------------------


def test_dotdot_traversal_out_of_allowed_dir(world: World) -> None:
    refused_as_unavailable(f"{world.allowed}/../secret/key.txt", world)
    refused_as_unavailable(f"{world.allowed}/../../../../../../../../etc/shadow", world)


def test_absolute_symlink_out(world: World) -> None:
    (world.allowed / "abs").symlink_to(world.key)
    refused_as_unavailable(f"{world.allowed}/abs", world)


def test_relative_symlink_out(world: World) -> None:
    (world.allowed / "rel").symlink_to("../secret/key.txt")
    refused_as_unavailable(f"{world.allowed}/rel", world)


def test_chain_of_symlinks_out(world: World) -> None:
    (world.allowed / "c1").symlink_to("c2")
    (world.allowed / "c2").symlink_to(world.root / "c3")
    (world.root / "c3").symlink_to("secret/key.txt")
    refused_as_unavailable(f"{world.allowed}/c1", world)


def test_symlink_loop_does_not_hang(world: World) -> None:
    (world.allowed / "loop1").symlink_to("loop2")
    (world.allowed / "loop2").symlink_to("loop1")
    within(5, lambda: refused_as_unavailable(f"{world.allowed}/loop1", world))


def test_symlinked_parent_directory(world: World) -> None:
    (world.allowed / "sub").symlink_to(world.secret)
    refused_as_unavailable(f"{world.allowed}/sub/key.txt", world)


def test_symlinked_parent_directory_to_etc(world: World) -> None:
    (world.allowed / "etc").symlink_to("/etc")
    refused_as_unavailable(f"{world.allowed}/etc/shadow", world)
    refused_as_unavailable(f"{world.allowed}/etc/passwd", world)  # not allowlisted either


def test_symlink_to_system_secret(world: World) -> None:
    (world.allowed / "shadow").symlink_to("/etc/shadow")
    refused_as_unavailable(f"{world.allowed}/shadow", world)


def test_denied_pattern_still_holds_when_home_is_a_symlink(tmp_path: Path) -> None:
    real_home = tmp_path.resolve() / "real-home"
    (real_home / ".ssh").mkdir(parents=True)
    (real_home / ".ssh" / "id_ed25519").write_bytes(SECRET_CONTENT)
    link_home = tmp_path.resolve() / "home-link"
    link_home.symlink_to(real_home)
    policy = make_policy(
        home=str(link_home), allow=[f"{tmp_path.resolve()}/**"], deny=["~/.ssh/**"]
    )
    for path in ["~/.ssh/id_ed25519", f"{real_home}/.ssh/id_ed25519"]:
        with pytest.raises(PolicyRefused, match="not available"):
            open_for_read(path, policy)


def test_denied_pattern_still_holds_when_the_denied_directory_is_a_symlink(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "id_ed25519").write_bytes(SECRET_CONTENT)
    (root / "home" / ".ssh").symlink_to(root / "elsewhere")  # conftest made ~ = tmp_path/home
    policy = make_policy(allow=[f"{root}/**"], deny=["~/.ssh/**"])
    with pytest.raises(PolicyRefused, match="not available"):
        open_for_read(f"{root}/elsewhere/id_ed25519", policy)


# -- names in another case ----------------------------------------------------------

UPPER_CASE_SECRETS = ["ID_RSA", "Id_Ed25519", "backup.PEM", "Server.Key", "vault.KDBX", "cert.P12"]


def test_key_names_in_upper_case_in_an_allowed_directory(world: World) -> None:
    policy = world.with_policy(deny=None)  # None: the built-in deny list
    for name in UPPER_CASE_SECRETS:
        (world.allowed / name).write_bytes(SECRET_CONTENT)
        with pytest.raises(PolicyRefused) as caught:
            open_for_read(f"{world.allowed}/{name}", policy)
        assert caught.value.message.endswith(UNAVAILABLE)
        with pytest.raises(PolicyRefused, match="not available"):
            stat_path(f"{world.allowed}/{name}", policy)
    assert [e.name for e in list_dir(str(world.allowed), policy)] == ["ok.txt"]


def test_denied_directory_named_in_another_case(world: World) -> None:
    # On a case-insensitive file system ~/.SSH is ~/.ssh; here it is another
    # directory, and refusing it too is the safe side.
    home = Path(os.environ["HOME"])
    (home / ".SSH").mkdir()
    (home / ".SSH" / "config").write_bytes(SECRET_CONTENT)
    policy = make_policy(allow=["~/**"])
    with pytest.raises(PolicyRefused, match="not available"):
        open_for_read("~/.SSH/config", policy)
    assert ".SSH" not in [e.name for e in list_dir("~", policy)]


def _casefold_directory(root: Path) -> tuple[Path | None, str]:
    """A directory whose names the kernel compares case-insensitively, if it can make one:
    tmpfs or ext4 with ``casefold`` and ``chattr +F``. Returns it and its mount point."""
    if os.geteuid() != 0 or shutil.which("mount") is None or shutil.which("chattr") is None:
        return None, "needs root, mount(8) and chattr(1)"
    mnt = root / "cf"
    mnt.mkdir()
    image = root / "cf.img"
    attempts = [["mount", "-t", "tmpfs", "-o", "casefold", "tmpfs", str(mnt)]]
    if shutil.which("mkfs.ext4"):
        with open(image, "wb") as f:
            f.truncate(16 << 20)
        made = subprocess.run(
            ["mkfs.ext4", "-q", "-O", "casefold", str(image)], capture_output=True, check=False
        )
        if made.returncode == 0:
            attempts.append(["mount", "-o", "loop", str(image), str(mnt)])
    for attempt in attempts:
        if subprocess.run(attempt, capture_output=True, check=False).returncode != 0:
            continue
        (mnt / "home").mkdir()
        flag = subprocess.run(["chattr", "+F", str(mnt / "home")], capture_output=True)
        if flag.returncode == 0:
            return mnt, ""
        subprocess.run(["umount", str(mnt)], check=True)
    return None, (
        "the kernel offers no case-insensitive file system here (tmpfs and ext4 casefold "
        "need CONFIG_UNICODE; vfat, exfat and ntfs3 are not built in)"
    )


def test_denied_directory_through_a_case_insensitive_file_system(tmp_path: Path) -> None:
    mnt, why = _casefold_directory(tmp_path.resolve())
    if mnt is None:
        pytest.skip(why)
    try:
        home = mnt / "home"
        (home / ".ssh").mkdir()
        (home / ".ssh" / "id_ed25519").write_bytes(SECRET_CONTENT)
        assert (home / ".SSH" / "ID_ED25519").read_bytes() == SECRET_CONTENT  # one file
        policy = make_policy(home=str(home), allow=["~/**"])
        for path in ["~/.SSH/ID_ED25519", "~/.Ssh/id_ed25519", "~/.ssh/id_ed25519"]:
            with pytest.raises(PolicyRefused, match="not available"):
                open_for_read(path, policy)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# -- /proc ------------------------------------------------------------------


def test_proc_self_root_path(world: World) -> None:
    refused_as_unavailable(f"/proc/self/root{world.key}", world)
    assert read(f"/proc/self/root{world.ok}", world) == ALLOWED_CONTENT  # judged on the real path


def test_proc_pid_cwd_path(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world.secret)
    refused_as_unavailable(f"/proc/{os.getpid()}/cwd/key.txt", world)
    refused_as_unavailable("/proc/self/cwd/key.txt", world)
    monkeypatch.chdir(world.allowed)
    assert read(f"/proc/{os.getpid()}/cwd/ok.txt", world) == ALLOWED_CONTENT


def test_proc_self_fd_magic_link_to_denied_file(world: World) -> None:
    fd = os.open(world.key, os.O_RDONLY)
    try:
        refused_as_unavailable(f"/proc/self/fd/{fd}", world)
        refused_as_unavailable(f"/proc/{os.getpid()}/fd/{fd}", world)
    finally:
        os.close(fd)


def test_proc_fd_of_a_deleted_file(world: World) -> None:
    gone = world.allowed / "gone.txt"
    gone.write_bytes(SECRET_CONTENT)
    fd = os.open(gone, os.O_RDONLY)
    try:
        gone.unlink()  # no name left: nothing to judge it by
        refused_as_unavailable(f"/proc/self/fd/{fd}", world)
    finally:
        os.close(fd)


def test_proc_self_environ_and_mem_denied_by_default() -> None:
    policy = make_policy(allow=["/proc/**"])  # deny keeps the built-in list
    for path in ["/proc/self/environ", "/proc/self/mem", "/proc/thread-self/environ"]:
        with pytest.raises(PolicyRefused, match="not available"):
            open_for_read(path, policy)


# -- hard links and bind mounts -----------------------------------------------


def test_hard_link_to_denied_file(world: World) -> None:
    os.link(world.key, world.allowed / "innocent.txt")
    error = refused(f"{world.allowed}/innocent.txt", world)
    assert "hard link" in error.message
    with pytest.raises(PolicyRefused, match="hard link"):
        stat_path(f"{world.allowed}/innocent.txt", world.policy)
    assert "innocent.txt" not in [e.name for e in list_dir(str(world.allowed), world.policy)]


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    done = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare(1) for a bind mount")
def test_bind_mount_of_denied_directory_into_allowed_one(world: World) -> None:
    (world.allowed / "mnt").mkdir()
    script = f"""
import subprocess
from toolkit.errors import PolicyRefused
from toolkit.policy import open_for_read
from tests.unit.policy.support import make_policy
mount = ["mount", "--bind", {str(world.secret)!r}, {str(world.allowed / "mnt")!r}]
subprocess.run(mount, check=True)
policy = make_policy(allow=[{f"{world.allowed}/**"!r}], deny=[{f"{world.secret}/**"!r}])
try:
    data = open_for_read({str(world.allowed / "mnt" / "key.txt")!r}, policy).read()
    print("READ", data)
except PolicyRefused as exc:
    print("REFUSED", exc.message)
"""
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert done.stdout.startswith("REFUSED") and UNAVAILABLE in done.stdout, done.stdout


# -- check-then-open races ------------------------------------------------------


def _write_file(path: str) -> None:
    with open(path, "wb") as f:
        f.write(ALLOWED_CONTENT)


def _race(world: World, flip: str, make: list[Callable[[str], None]], read_path: str) -> None:
    """Replace ``flip`` atomically, by turns with each of ``make``, while reading
    ``read_path`` thousands of times; the denied content must never come back."""
    stop = threading.Event()

    def flipper() -> None:
        tmp = f"{flip}.tmp"
        while not stop.is_set():
            for step in make:
                step(tmp)
                os.replace(tmp, flip)

    seen = {"read": 0, "refused": 0}
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    try:
        for _ in range(3000):
            try:
                with open_for_read(read_path, world.policy) as opened:
                    data = opened.read()
            except PolicyRefused as exc:
                assert exc.message == f"refused: {read_path!r}: {UNAVAILABLE}"
                seen["refused"] += 1
                continue
            assert data == ALLOWED_CONTENT  # never the denied file's content
            seen["read"] += 1
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old)
    assert seen["read"] and seen["refused"], seen  # both sides of the race were hit


def _symlink_to(target: Path) -> Callable[[str], None]:
    return lambda tmp: os.symlink(target, tmp)


def test_last_component_swapped_to_symlink_between_check_and_open(world: World) -> None:
    # the path flips between an allowed regular file and a symlink to the denied file
    flip = f"{world.allowed}/flip"
    _race(world, flip, [_write_file, _symlink_to(world.key)], flip)


def test_parent_directory_swapped_to_symlink_between_check_and_open(world: World) -> None:
    decoy = world.allowed / "decoy"
    decoy.mkdir()
    (decoy / "key.txt").write_bytes(ALLOWED_CONTENT)
    flip = f"{world.allowed}/dir"
    _race(world, flip, [_symlink_to(decoy), _symlink_to(world.secret)], f"{flip}/key.txt")


def test_symlink_target_swapped_between_allowed_and_denied(world: World) -> None:
    flip = f"{world.allowed}/link"
    _race(world, flip, [_symlink_to(world.ok), _symlink_to(world.key)], flip)


# -- the request itself -----------------------------------------------------------


def test_nul_byte_in_path(world: World) -> None:
    assert "NUL" in refused(f"{world.ok}\0/../../secret/key.txt", world).message
    assert "NUL" in refused(f"{world.ok}\0".encode(), world).message


def test_overlong_path(world: World) -> None:
    long_path = str(world.allowed) + "/x" * 2100
    assert "longer than 4095 bytes" in refused(long_path, world).message
    # within the limit, but through enough ".." to reach the denied file: still judged
    refused_as_unavailable(str(world.allowed) + "/." * 1000 + "/../secret/key.txt", world)


def test_overlong_component(world: World) -> None:
    refused_as_unavailable(f"{world.allowed}/{'a' * 300}", world)


def test_non_utf8_name(world: World) -> None:
    raw = os.fsencode(world.allowed) + b"/\xff.txt"
    with open(raw, "wb") as f:
        f.write(ALLOWED_CONTENT)
    assert "not valid UTF-8" in refused(raw, world).message
    assert "not valid UTF-8" in refused(os.fsdecode(raw), world).message  # surrogate escapes
    assert [e.name for e in list_dir(str(world.allowed), world.policy)] == ["ok.txt"]


def test_relative_path_and_tilde_user(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world.allowed)
    assert "must be absolute" in refused("ok.txt", world).message
    assert "must be absolute" in refused("~root/.ssh/id_rsa", world).message


# -- special files ------------------------------------------------------------


def test_dev_zero_even_when_allowlisted(world: World) -> None:
    policy = world.with_policy(allow=["/dev/zero", "/dev/urandom"])
    for device in ["/dev/zero", "/dev/urandom"]:
        with pytest.raises(PolicyRefused, match=r"not a regular file \(it is a character device\)"):
            within(5, lambda device=device: open_for_read(device, policy))  # type: ignore[misc]


def test_fifo_does_not_hang(world: World) -> None:
    os.mkfifo(world.allowed / "pipe")
    (world.allowed / "to-pipe").symlink_to("pipe")
    for path in ["pipe", "to-pipe"]:
        error = within(5, lambda path=path: refused(f"{world.allowed}/{path}", world))  # type: ignore[misc]
        assert "it is a fifo" in error.message
    assert within(5, lambda: stat_path(f"{world.allowed}/pipe", world.policy)).kind == "fifo"


def test_unix_socket(world: World) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(world.allowed / "sock"))
        assert "it is a socket" in refused(f"{world.allowed}/sock", world).message


def test_huge_sparse_file_is_capped_without_reading(world: World) -> None:
    huge = world.allowed / "huge.img"
    with open(huge, "wb") as f:
        f.truncate(1 << 40)  # 1 TiB of holes
    error = within(5, lambda: refused(str(huge), world))
    assert f"the file is {1 << 40} bytes" in error.message
    assert "cap of 10485760 bytes ([files] max_bytes)" in error.message


def test_directory_is_not_read(world: World) -> None:
    assert "it is a directory" in refused(str(world.allowed), world).message


# -- what a refusal tells --------------------------------------------------------


def test_refusal_does_not_reveal_whether_a_denied_file_exists(world: World) -> None:
    present = refused(str(world.key), world)
    missing = refused(f"{world.secret}/no-such-file", world)
    outside = refused(f"{world.root}/not-listed", world)
    absent_dir = refused(f"{world.secret}/no-dir/key.txt", world)
    texts = {
        e.message.replace(str(p), "PATH") + (e.hint or "")
        for e, p in [
            (present, world.key),
            (missing, f"{world.secret}/no-such-file"),
            (outside, f"{world.root}/not-listed"),
            (absent_dir, f"{world.secret}/no-dir/key.txt"),
        ]
    }
    assert len(texts) == 1
    for op in (stat_path, list_dir):
        with pytest.raises(PolicyRefused) as a:
            op(str(world.key), world.policy)
        with pytest.raises(PolicyRefused) as b:
            op(f"{world.secret}/nothing", world.policy)
        assert a.value.message.replace("key.txt", "X") == b.value.message.replace("nothing", "X")


def test_deny_beats_allow(world: World) -> None:
    policy = world.with_policy(allow=[f"{world.root}/**"])
    with pytest.raises(PolicyRefused, match="not available"):
        open_for_read(str(world.key), policy)


def test_listing_hides_denied_names(world: World) -> None:
    policy = world.with_policy(allow=[f"{world.root}/**"], deny=["**/*.key", f"{world.secret}/**"])
    (world.allowed / "server.key").write_bytes(SECRET_CONTENT)
    (world.allowed / "to-secret").symlink_to(world.key)
    (world.allowed / "to-ok").symlink_to("ok.txt")
    assert [e.name for e in list_dir(str(world.allowed), policy)] == ["ok.txt", "to-ok"]
    assert [e.name for e in list_dir(str(world.root), policy)] == ["allowed"]
    with pytest.raises(PolicyRefused, match="not available"):
        list_dir(str(world.secret), policy)
    with pytest.raises(PolicyRefused, match="not available"):
        list_dir(f"{world.allowed}/../secret", policy)
