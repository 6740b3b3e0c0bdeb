"""File rules one at a time, and how they compose."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from toolkit.errors import PolicyRefused
from toolkit.policy import (
    UNAVAILABLE,
    AllOf,
    Allowlisted,
    AnyOf,
    Candidate,
    Directory,
    FilePattern,
    LeadsToAllowlisted,
    NoAliasNames,
    NotDenied,
    NotRemoved,
    OwnMount,
    RegularFile,
    SingleLink,
    SizeWithin,
    UnsafeAllowAll,
)
from toolkit.policy._mounts import Mount


def fake_stat(mode: int = stat.S_IFREG | 0o644, nlink: int = 1, size: int = 10) -> os.stat_result:
    return os.stat_result((mode, 1, 1, nlink, 0, 0, size, 0, 0, 0))


def candidate(path: str = "/var/log/syslog", **kw: int) -> Candidate:
    return Candidate(path, fake_stat(**kw))


def patterns(*texts: str) -> list[FilePattern]:
    return [FilePattern.parse(t, "/home/carol") for t in texts]


class Passes:
    def __init__(self) -> None:
        self.calls = 0

    def check(self, candidate: Candidate) -> None:
        self.calls += 1


class Refuses:
    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.calls = 0

    def check(self, candidate: Candidate) -> None:
        self.calls += 1
        raise PolicyRefused(self.reason)


def test_empty_allof_refuses() -> None:
    with pytest.raises(PolicyRefused, match="empty AllOf"):
        AllOf([]).check(candidate())


def test_allof_raises_the_first_refusal_and_stops() -> None:
    first, second, after = Refuses("first"), Refuses("second"), Passes()
    with pytest.raises(PolicyRefused, match=r"^first$"):
        AllOf([Passes(), first, second, after]).check(candidate())
    assert (first.calls, second.calls, after.calls) == (1, 0, 0)
    AllOf([Passes(), Passes()]).check(candidate())


def test_anyof_passes_on_any_and_refuses_with_the_first_reason() -> None:
    AnyOf([Refuses("a"), Passes()]).check(candidate())
    with pytest.raises(PolicyRefused, match=r"^a$"):
        AnyOf([Refuses("a"), Refuses("b")]).check(candidate())
    with pytest.raises(PolicyRefused, match="empty AnyOf"):
        AnyOf([]).check(candidate())


def test_unsafe_allow_all_warns_every_time(caplog: pytest.LogCaptureFixture) -> None:
    rule = UnsafeAllowAll()
    with caplog.at_level(logging.WARNING, logger="toolkit.policy.rules"):
        rule.check(candidate())
        rule.check(candidate())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("UnsafeAllowAll" in r.getMessage() for r in warnings)


def test_not_denied() -> None:
    rule = NotDenied(patterns("~/.ssh/**", "**/*.key"))
    rule.check(candidate("/var/log/syslog"))
    for path in ["/home/carol/.ssh/config", "/srv/tls/server.key"]:
        with pytest.raises(PolicyRefused) as caught:
            rule.check(candidate(path))
        assert caught.value.message == UNAVAILABLE
    NotDenied([]).check(candidate("/anything"))


def test_not_denied_ignores_case_and_allowlisted_does_not() -> None:
    for path in ["/srv/pub/ID_RSA", "/srv/pub/backup.PEM", "/home/carol/.SSH/config"]:
        with pytest.raises(PolicyRefused, match="not available"):
            NotDenied(patterns("**/id_*", "**/*.pem", "~/.ssh/**")).check(candidate(path))
    with pytest.raises(PolicyRefused, match="not available"):
        Allowlisted(patterns("/srv/pub/*.txt")).check(candidate("/srv/pub/NOTES.TXT"))


def test_not_denied_under_another_name_through_a_bind_mount() -> None:
    mounts = [Mount("8:1", "/", "/"), Mount("8:1", "/home/carol/.ssh", "/var/log/app")]
    NotDenied(patterns("~/.ssh/**")).check(candidate("/var/log/app/id_rsa"))  # no mount table
    with pytest.raises(PolicyRefused, match="not available"):
        NotDenied(patterns("~/.ssh/**"), mounts).check(candidate("/var/log/app/id_rsa"))


def test_not_denied_refuses_what_it_cannot_locate() -> None:
    mounts = [Mount("8:1", "/", "/", 1), Mount("0:9", "/", "/srv", 2, "overlay", ("lowerdir=x:y",))]
    with pytest.raises(PolicyRefused, match="not available"):
        NotDenied(patterns("~/.ssh/**"), mounts).check(candidate("/srv/config"))


def test_own_mount() -> None:
    rule = OwnMount([Mount("8:1", "/", "/", 21), Mount("0:5", "/", "/proc", 22)], root=21)
    rule.check(Candidate("/etc/hosts", fake_stat(), 21))
    rule.check(Candidate("/etc/hosts", fake_stat()))  # an entry known by name: its directory's
    with pytest.raises(PolicyRefused) as caught:
        rule.check(Candidate("/etc/hosts", fake_stat(), 66))  # another namespace's mount
    assert caught.value.message == UNAVAILABLE
    with pytest.raises(PolicyRefused):
        OwnMount([], root=21).check(Candidate("/proc/x", fake_stat(), 22))  # no table: only /
    # a chrooted agent's table leaves out the mount holding its root
    OwnMount([Mount("0:5", "/", "/proc", 22)], root=21).check(Candidate("/x", fake_stat(), 21))


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("backup.pem", False),
        ("notes.txt", False),
        ("backup.pem.", True),  # vfat and exfat ignore trailing dots: backup.pem
        ("backup.pem ", True),  # and trailing spaces
        ("VAULT~1.KDB", True),  # vfat's 8.3 short name of vault.kdbx
        ("dir~2/file", True),  # in any component
    ],
)
def test_no_alias_names_on_dos_named_file_systems(name: str, refused: bool) -> None:
    mounts = [Mount("8:1", "/", "/", 21, "ext4"), Mount("8:17", "/", "/media/usb", 23, "vfat")]
    rule = NoAliasNames(mounts)
    stick = Candidate(f"/media/usb/{name}", fake_stat(), 23)
    if refused:
        with pytest.raises(PolicyRefused):
            rule.check(stick)
    else:
        rule.check(stick)
    rule.check(Candidate(f"/srv/{name}", fake_stat(), 21))  # ext4 has no such aliases
    rule.check(Candidate(f"/media/usb/{name}", fake_stat(), None))  # a listed entry's own name


def test_allowlisted_and_an_empty_allowlist() -> None:
    Allowlisted(patterns("/var/log/*")).check(candidate("/var/log/syslog"))
    with pytest.raises(PolicyRefused, match="not available"):
        Allowlisted(patterns("/var/log/*")).check(candidate("/etc/passwd"))
    with pytest.raises(PolicyRefused, match="not available"):
        Allowlisted([]).check(candidate("/var/log/syslog"))


def test_leads_to_allowlisted_only_for_directories() -> None:
    rule = LeadsToAllowlisted(patterns("/var/log/*.log"))
    rule.check(candidate("/var", mode=stat.S_IFDIR | 0o755))
    with pytest.raises(PolicyRefused):
        rule.check(candidate("/var"))  # a regular file named like a directory
    with pytest.raises(PolicyRefused):
        rule.check(candidate("/etc", mode=stat.S_IFDIR | 0o755))


def test_not_removed() -> None:
    NotRemoved().check(candidate())
    with pytest.raises(PolicyRefused, match="not available"):
        NotRemoved().check(candidate(nlink=0))
    with pytest.raises(PolicyRefused, match="not available"):
        NotRemoved().check(candidate("anon_inode:[eventfd]"))


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        (stat.S_IFDIR, "directory"),
        (stat.S_IFIFO, "fifo"),
        (stat.S_IFSOCK, "socket"),
        (stat.S_IFCHR, "character device"),
        (stat.S_IFBLK, "block device"),
        (stat.S_IFLNK, "symlink"),
    ],
)
def test_regular_file_names_what_it_got(mode: int, kind: str) -> None:
    with pytest.raises(PolicyRefused, match=f"it is a {kind}"):
        RegularFile().check(candidate(mode=mode))


def test_directory() -> None:
    Directory().check(candidate(mode=stat.S_IFDIR))
    with pytest.raises(PolicyRefused, match=r"not a directory \(it is a file\)"):
        Directory().check(candidate())


def test_single_link() -> None:
    SingleLink().check(candidate(nlink=1))
    SingleLink().check(candidate(mode=stat.S_IFDIR, nlink=5))  # directories always have several
    with pytest.raises(PolicyRefused, match="2 hard links") as caught:
        SingleLink().check(candidate(nlink=2))
    assert "allow_hardlinks" in (caught.value.hint or "")


def test_size_within() -> None:
    SizeWithin(10).check(candidate(size=10))
    with pytest.raises(PolicyRefused) as caught:
        SizeWithin(10).check(candidate(size=11))
    assert caught.value.message == "the file is 11 bytes, over the agent's cap of 10 bytes " + (
        "([files] max_bytes)"
    )


def test_rules_work_on_a_real_descriptor(tmp_path: Path) -> None:
    path = tmp_path.resolve() / "a.log"
    path.write_text("x")
    fd = os.open(path, os.O_PATH)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        AllOf([Allowlisted(patterns(f"{tmp_path.resolve()}/*.log")), RegularFile()]).check(
            Candidate(real, os.fstat(fd))
        )
    finally:
        os.close(fd)
