"""Reading, listing and examining allowed files (the attacks are in tests/threats)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.unit.policy.support import (
    ALLOWED_CONTENT,
    SECRET_CONTENT,
    World,
    build_world,
    make_policy,
)
from toolkit.errors import PolicyRefused
from toolkit.policy import Policy, list_dir, open_for_read, stat_path


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_open_for_read_gives_descriptor_real_path_size_and_stat(world: World) -> None:
    opened = open_for_read(str(world.ok), world.policy)
    try:
        assert opened.real_path == str(world.ok)
        assert opened.size == len(ALLOWED_CONTENT) == opened.stat.st_size
        assert stat.S_ISREG(opened.stat.st_mode)
        assert opened.stat.st_ino == world.ok.stat().st_ino
        assert os.read(opened.fd, 100) == ALLOWED_CONTENT  # the descriptor is the file
        assert opened.read() == ALLOWED_CONTENT  # read() starts from the beginning
        assert b"".join(opened.chunks(3)) == ALLOWED_CONTENT
        flags = os.get_inheritable(opened.fd)
        assert flags is False  # O_CLOEXEC
    finally:
        opened.close()
    assert opened.closed and not fd_is_open(opened.fd)
    opened.close()  # twice is harmless


def test_with_block_closes_the_descriptor(world: World) -> None:
    with open_for_read(str(world.ok), world.policy) as opened:
        fd = opened.fd
        assert fd_is_open(fd)
    assert not fd_is_open(fd)


def test_no_descriptor_leaks_on_refusal(world: World) -> None:
    (world.allowed / "link").symlink_to(world.key)
    os.mkfifo(world.allowed / "pipe")
    before = set(os.listdir("/proc/self/fd"))
    (world.allowed / "loop").symlink_to("loop")
    for path in [
        world.key,
        world.allowed / "link",
        world.allowed / "pipe",
        world.allowed,
        world.allowed / "loop",
        f"{world.ok}/",
        f"/proc/1/root{world.ok}",  # another process's link
    ]:
        with pytest.raises(PolicyRefused):
            open_for_read(str(path), world.policy)
    with pytest.raises(PolicyRefused):
        list_dir(str(world.ok), world.policy)
    assert set(os.listdir("/proc/self/fd")) <= before


def test_bytes_paths_are_accepted(world: World) -> None:
    with open_for_read(os.fsencode(world.ok), world.policy) as opened:
        assert opened.read() == ALLOWED_CONTENT


def test_dotdot_that_stays_inside_is_judged_on_where_it_lands(world: World) -> None:
    with open_for_read(f"{world.allowed}/../allowed/./ok.txt", world.policy) as opened:
        assert opened.real_path == str(world.ok)


def test_paths_are_walked_as_the_kernel_walks_them(world: World) -> None:
    # a file with a trailing "/" or "/." is not a directory; ".." after a symlinked
    # directory is taken from where the link leads; "//" is one "/"
    for path in [f"{world.ok}/", f"{world.ok}/.", f"{world.ok}/.."]:
        with pytest.raises(PolicyRefused, match="not available"):
            open_for_read(path, world.policy)
    (world.root / "deep").mkdir()
    (world.root / "deep" / "inner").mkdir()
    (world.allowed / "to-inner").symlink_to(world.root / "deep" / "inner")
    (world.root / "deep" / "ok.txt").write_bytes(ALLOWED_CONTENT)
    policy = world.with_policy(allow=[f"{world.root}/deep/*"])
    with open_for_read(f"{world.allowed}//to-inner/../ok.txt", policy) as opened:
        assert opened.real_path == str(world.root / "deep" / "ok.txt")
    (world.allowed / "to-dir").symlink_to(f"{world.root}/deep/")  # a target with a slash
    assert stat_path(f"{world.allowed}/to-dir/", policy).path == str(world.root / "deep")


def test_symlink_to_an_allowed_file_is_followed_and_reports_the_target(world: World) -> None:
    (world.root / "outside-link").symlink_to(world.ok)
    (world.allowed / "chain1").symlink_to("chain2")
    (world.allowed / "chain2").symlink_to("ok.txt")
    for path in [world.root / "outside-link", world.allowed / "chain1"]:
        with open_for_read(str(path), world.policy) as opened:
            assert opened.real_path == str(world.ok) and opened.read() == ALLOWED_CONTENT


def test_a_name_allowed_exactly_does_not_allow_its_symlink_target(world: World) -> None:
    (world.root / "name.txt").symlink_to(world.root / "target.txt")
    (world.root / "target.txt").write_bytes(ALLOWED_CONTENT)
    policy = make_policy(allow=[f"{world.root}/name.txt"], deny=[])
    with pytest.raises(PolicyRefused, match="not available"):
        open_for_read(str(world.root / "name.txt"), policy)


def test_tilde_paths_use_the_agent_users_home(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"]).resolve()
    (home / "logs").mkdir()
    (home / "logs" / "app.log").write_bytes(ALLOWED_CONTENT)
    policy = make_policy(allow=["~/logs/*.log"])
    with open_for_read("~/logs/app.log", policy) as opened:
        assert opened.real_path == str(home / "logs" / "app.log")
    assert [e.name for e in list_dir("~/logs", policy)] == ["app.log"]
    assert [e.name for e in list_dir("~", policy)] == ["logs"]


def test_hard_links_are_allowed_when_the_policy_says_so(world: World) -> None:
    # documented consequence: the real path is then all that is judged
    os.link(world.key, world.allowed / "linked.txt")
    policy = world.with_policy(allow_hardlinks=True)
    with open_for_read(str(world.allowed / "linked.txt"), policy) as opened:
        assert opened.read() == SECRET_CONTENT
    assert "linked.txt" in [e.name for e in list_dir(str(world.allowed), policy)]


def test_size_cap_is_inclusive(world: World) -> None:
    policy = world.with_policy(max_bytes=len(ALLOWED_CONTENT))
    with open_for_read(str(world.ok), policy) as opened:
        assert opened.read() == ALLOWED_CONTENT
    policy = world.with_policy(max_bytes=len(ALLOWED_CONTENT) - 1)
    with pytest.raises(PolicyRefused, match=f"cap of {len(ALLOWED_CONTENT) - 1} bytes"):
        open_for_read(str(world.ok), policy)


def test_a_file_that_grows_past_the_cap_stops_at_the_cap(world: World) -> None:
    policy = world.with_policy(max_bytes=100)
    growing = world.allowed / "growing.log"
    growing.write_bytes(b"a" * 50)
    with open_for_read(str(growing), policy) as opened:
        growing.write_bytes(b"a" * 500)  # same inode, now over the cap
        got = b""
        with pytest.raises(PolicyRefused, match=r"over the agent's cap of 100 bytes") as caught:
            for chunk in opened.chunks(30):
                got += chunk
        assert len(got) <= 100
        assert "max_bytes" in (caught.value.hint or "") + caught.value.message


def test_proc_files_read_although_their_size_is_zero() -> None:
    policy = make_policy(allow=["/proc/loadavg", "/proc/cpuinfo"])
    with open_for_read("/proc/loadavg", policy) as opened:
        assert opened.size == 0
        assert len(opened.read().split()) == 5
    small = make_policy(allow=["/proc/cpuinfo"], max_bytes=16)
    with open_for_read("/proc/cpuinfo", small) as opened, pytest.raises(PolicyRefused, match="16"):
        opened.read()


def test_the_default_policy_reads_os_release_through_its_symlink() -> None:
    if not os.path.exists("/etc/os-release"):
        pytest.skip("no /etc/os-release here")
    with open_for_read("/etc/os-release", Policy.default()) as opened:
        assert b"ID=" in opened.read()
    with pytest.raises(PolicyRefused, match="not available"):
        open_for_read("/etc/shadow", Policy.default())


def test_empty_allowlist_allows_nothing(world: World) -> None:
    policy = make_policy(allow=[], deny=[])
    for call in (open_for_read, stat_path, list_dir):
        with pytest.raises(PolicyRefused, match="not available"):
            call(str(world.ok), policy)
    with pytest.raises(PolicyRefused, match="not available"):
        list_dir("/", policy)


# -- stat ---------------------------------------------------------------------------


def test_stat_an_allowed_file(world: World) -> None:
    info = stat_path(str(world.ok), world.policy)
    assert (info.name, info.path, info.kind) == ("ok.txt", str(world.ok), "file")
    assert info.size == len(ALLOWED_CONTENT) and info.stat.st_ino == world.ok.stat().st_ino
    assert info.mtime == world.ok.stat().st_mtime


def test_stat_follows_a_symlink_and_judges_the_target(world: World) -> None:
    (world.allowed / "link").symlink_to("ok.txt")
    info = stat_path(str(world.allowed / "link"), world.policy)
    assert (info.name, info.path, info.kind) == ("link", str(world.ok), "file")


def test_stat_directories_on_the_way_to_allowed_files(world: World) -> None:
    assert stat_path(str(world.root), world.policy).kind == "directory"
    assert stat_path("/", world.policy).path == "/"
    with pytest.raises(PolicyRefused, match="not available"):
        stat_path(str(world.secret), world.policy)
    with pytest.raises(PolicyRefused, match="not available"):
        stat_path("/etc", world.policy)


def test_stat_of_a_device_is_allowed_if_listed(world: World) -> None:
    policy = world.with_policy(allow=["/dev/null"])
    assert stat_path("/dev/null", policy).kind == "character device"


# -- list --------------------------------------------------------------------------


def test_list_an_allowed_directory(world: World) -> None:
    (world.allowed / "sub").mkdir()
    (world.allowed / "b.log").write_bytes(b"bb")
    entries = list_dir(str(world.allowed), world.policy)
    assert [(e.name, e.kind) for e in entries] == [
        ("b.log", "file"),
        ("ok.txt", "file"),
        ("sub", "directory"),
    ]
    assert entries[0].size == 2 and entries[0].mtime > 0
    assert entries.path == os.path.realpath(world.allowed)  # what was opened, judged once


def test_list_shows_only_what_leads_to_allowed_files(world: World) -> None:
    (world.root / "other").mkdir()
    (world.root / "other" / "x.log").write_bytes(b"x")
    (world.root / "stray.txt").write_bytes(b"x")
    (world.root / "logs").mkdir()
    (world.root / "logs" / "a.log").write_bytes(b"a")
    (world.root / "logs" / "a.txt").write_bytes(b"a")
    policy = make_policy(allow=[f"{world.root}/logs/*.log"], deny=[])
    assert [e.name for e in list_dir(str(world.root), policy)] == ["logs"]
    assert [e.name for e in list_dir(str(world.root / "logs"), policy)] == ["a.log"]
    assert [e.name for e in list_dir(str(world.root.parent), policy)] == ["world"]
    with pytest.raises(PolicyRefused, match="not available"):
        list_dir(str(world.root / "other"), policy)


def test_list_shows_symlinks_as_symlinks_only_when_their_target_is_allowed(world: World) -> None:
    (world.allowed / "good").symlink_to("ok.txt")
    (world.allowed / "bad").symlink_to(world.key)
    (world.allowed / "dangling").symlink_to("nothing-here")
    entries = {e.name: e.kind for e in list_dir(str(world.allowed), world.policy)}
    assert entries == {"good": "symlink", "ok.txt": "file"}


def test_list_of_a_symlinked_directory_judges_the_real_directory(world: World) -> None:
    (world.root / "to-allowed").symlink_to("allowed")
    (world.root / "to-secret").symlink_to("secret")
    assert [e.name for e in list_dir(str(world.root / "to-allowed"), world.policy)] == ["ok.txt"]
    with pytest.raises(PolicyRefused, match="not available"):
        list_dir(str(world.root / "to-secret"), world.policy)


def test_list_of_a_file_is_refused(world: World) -> None:
    with pytest.raises(PolicyRefused, match="not a directory"):
        list_dir(str(world.ok), world.policy)


def test_list_shows_a_fifo_without_opening_it(world: World) -> None:
    os.mkfifo(world.allowed / "pipe")
    kinds = {e.name: e.kind for e in list_dir(str(world.allowed), world.policy)}
    assert kinds["pipe"] == "fifo"  # listing does not open it
