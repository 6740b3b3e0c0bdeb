"""Pattern matching on path components: ``*``, ``?``, ``**`` and literal directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.policy import FilePattern, PatternSet
from toolkit.policy._glob import split_path
from toolkit.policy._mounts import MAX_ALIASES, Mount, Unlocatable, aliases, read_mounts

HOME = "/home/carol"


def matches(pattern: str, path: str) -> bool:
    return PatternSet([FilePattern.parse(pattern, HOME)]).matches(path)


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/etc/os-release", "/etc/os-release", True),
        ("/etc/os-release", "/etc/os-release2", False),
        ("/etc/os-release", "/etc", False),
        ("/etc/os-release", "/ETC/os-release", False),  # case matters
        ("/var/log/*.log", "/var/log/dpkg.log", True),
        ("/var/log/*.log", "/var/log/.hidden.log", True),  # unlike a shell
        ("/var/log/*.log", "/var/log/.log", True),  # * may be empty
        ("/var/log/*.log", "/var/log/apt/history.log", False),  # * stays in one component
        ("/var/log/*.log", "/var/log/dpkg.log.1", False),
        ("/var/log/?.log", "/var/log/a.log", True),
        ("/var/log/?.log", "/var/log/ab.log", False),
        ("/var/log/**", "/var/log", True),  # ** may be zero components
        ("/var/log/**", "/var/log/apt/history.log", True),
        ("/var/log/**", "/var/logs/x", False),
        ("/var/**/*.log", "/var/log.log", True),
        ("/var/**/*.log", "/var/a/b/c/d.log", True),
        ("/var/**/*.log", "/var/a/b/c/d.txt", False),
        ("**/*.key", "/server.key", True),
        ("**/*.key", "/etc/ssl/private/server.key", True),
        ("**/*.key", "/etc/ssl/private/server.key.pub", False),
        ("**/id_*", "/home/carol/.ssh/id_ed25519", True),
        ("**", "/", True),
        ("**", "/anything/at/all", True),
        ("/", "/", True),
        ("/", "/etc", False),
        ("~/.ssh/**", "/home/carol/.ssh/id_rsa", True),
        ("~/.ssh/**", "/home/carol/.ssh", True),
        ("~/.ssh/**", "/home/carol/.sshx/id_rsa", False),
        ("~/.local/share/*/logs/**", "/home/carol/.local/share/app/logs/a/b.log", True),
        ("~/.local/share/*/logs/**", "/home/carol/.local/share/a/b/logs/x", False),
        ("~/.*_history", "/home/carol/.bash_history", True),
        ("~", "/home/carol", True),
        ("/a/**/**/b", "/a/b", True),
        ("/a/**/b/**/c", "/a/x/b/y/b/z/c", True),
        ("/a/[ab]", "/a/[ab]", True),  # brackets are literal
        ("/a/[ab]", "/a/a", False),
        ("/a/b.c", "/a/bxc", False),  # dots are literal
        ("/a//b/", "/a/b", True),  # extra slashes collapse
        ("/a/*", "/a/line\nbreak", True),
    ],
)
def test_matching(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


# -- case: deny patterns ignore it, allow patterns never do ------------------------


def denies(pattern: str, path: str) -> bool:
    return PatternSet([FilePattern.parse(pattern, HOME)], ignore_case=True).matches(path)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("**/id_*", "/srv/pub/ID_RSA"),
        ("**/*.pem", "/srv/pub/backup.PEM"),
        ("**/*.key", "/srv/pub/Server.Key"),
        ("**/*.key", "/srv/pub/server.\u212aey"),  # KELVIN SIGN folds to k
        ("~/.ssh/**", "/home/carol/.SSH/id_ed25519"),  # a literal directory, too
        ("~/.ssh/**", "/HOME/Carol/.Ssh/config"),  # and the home
        ("/etc/shadow", "/ETC/SHADOW"),
        ("~/.*_history", "/home/carol/.BASH_HISTORY"),
        ("/srv/strasse/**", "/srv/STRA\u00dfE/x"),  # full case folding: \u00df is ss
        ("/srv/caf\u00e9", "/srv/CAFE\u0301"),  # canonically equivalent spellings
        ("**/id_?", "/x/id_\u00df"),  # never narrower than the exact match
        ("**/*.pem", "/srv/pub/key.p\u200dem"),  # ext4 casefolding ignored the joiner
        ("~/.ssh/**", "/home/carol/.s\u00adsh/config"),  # and a soft hyphen
        ("**/*.kdbx", "/srv/pub/vault.kdbx\ufe0f"),  # and a variation selector
    ],
)
def test_deny_patterns_match_in_any_case(pattern: str, path: str) -> None:
    assert denies(pattern, path)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("**/id_*", "/srv/pub/ID-RSA"),
        ("~/.ssh/**", "/home/carol/.sshx/config"),
        ("**/*.pem", "/srv/pub/backup.PEMX"),
    ],
)
def test_deny_patterns_ignore_case_and_nothing_else(pattern: str, path: str) -> None:
    assert not denies(pattern, path)


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("/var/log/*.log", "/var/log/X.LOG"),
        ("/var/log/*.log", "/VAR/log/x.log"),
        ("~/pub/**", "/home/carol/PUB/x"),
        ("/srv/strasse", "/srv/stra\u00dfe"),
    ],
)
def test_allow_patterns_stay_case_sensitive(pattern: str, path: str) -> None:
    assert not matches(pattern, path)


def test_home_is_literal_even_with_glob_characters() -> None:
    pattern = FilePattern.parse("~/x", "/home/we*ird?")
    assert PatternSet([pattern]).matches("/home/we*ird?/x")
    assert not PatternSet([pattern]).matches("/home/weXXird!/x")


@pytest.mark.parametrize(
    ("pattern", "directory", "expected"),
    [
        ("/var/log/*.log", "/", True),
        ("/var/log/*.log", "/var", True),
        ("/var/log/*.log", "/var/log", True),
        ("/var/log/*.log", "/var/lib", False),
        ("/var/log/*.log", "/var/log/apt", False),
        ("/var/log/**", "/var/log/apt/deep", True),
        ("~/.local/share/*/logs/**", "/home/carol/.local/share/anything", True),
        ("~/.local/share/*/logs/**", "/home/carol/.local/share/app/cache", False),
        ("**/*.log", "/any/where", True),
        ("/etc/os-release", "/etc/os-release", False),  # nothing below a file pattern's end
    ],
)
def test_leads_to(pattern: str, directory: str, expected: bool) -> None:
    assert PatternSet([FilePattern.parse(pattern, HOME)]).leads_to(directory) is expected


def test_empty_pattern_set_matches_nothing() -> None:
    empty = PatternSet([])
    assert not empty and not empty.matches("/") and not empty.leads_to("/")


def test_symlinked_literal_directories_are_resolved_when_matching(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "real" / "dir").mkdir(parents=True)
    (root / "link").symlink_to(root / "real")
    pattern = FilePattern.parse(f"{root}/link/dir/*.txt", HOME)
    assert PatternSet([pattern]).matches(f"{root}/real/dir/a.txt")
    assert PatternSet([pattern]).matches(f"{root}/link/dir/a.txt")  # as written, too


def test_the_last_component_is_not_resolved(tmp_path: Path) -> None:
    # allowing a name that is a symlink does not allow its target
    root = tmp_path.resolve()
    (root / "target.txt").write_text("x")
    (root / "name.txt").symlink_to("target.txt")
    pattern = FilePattern.parse(f"{root}/name.txt", HOME)
    assert not PatternSet([pattern]).matches(f"{root}/target.txt")


def test_resolution_happens_at_match_time_not_load_time(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    pattern = FilePattern.parse(f"{root}/later/**", HOME)
    (root / "elsewhere").mkdir()
    (root / "later").symlink_to(root / "elsewhere")  # made after the policy was loaded
    assert PatternSet([pattern]).matches(f"{root}/elsewhere/secret")


def test_split_path() -> None:
    assert split_path("/") == ()
    assert split_path("/a/b") == ("a", "b")


# -- bind mount aliases ------------------------------------------------------------

MOUNTS = (
    Mount("8:1", "/", "/"),
    Mount("8:2", "/", "/home"),
    Mount("8:2", "/carol/.ssh", "/var/log/app"),  # mount --bind /home/carol/.ssh /var/log/app
    Mount("8:1", "/etc/shadow", "/srv/shadow-copy"),  # a bound file
    Mount("0:5", "/", "/proc"),
)


def test_aliases_through_a_bind_mount() -> None:
    assert aliases("/var/log/app/id_rsa", MOUNTS) == ("/home/carol/.ssh/id_rsa",)
    assert aliases("/var/log/app", MOUNTS) == ("/home/carol/.ssh",)
    assert aliases("/srv/shadow-copy", MOUNTS) == ("/etc/shadow",)


def test_ordinary_paths_have_no_aliases() -> None:
    assert aliases("/home/carol/notes.txt", MOUNTS) == ()
    assert aliases("/etc/hosts", MOUNTS) == ()
    assert aliases("/proc/loadavg", MOUNTS) == ()
    assert aliases("/x", ()) == ()


def test_the_whole_file_system_bound_elsewhere() -> None:
    mounts = (Mount("8:1", "/", "/"), Mount("8:1", "/", "/mnt/rootfs"))
    assert aliases("/mnt/rootfs/etc/shadow", mounts) == ("/etc/shadow",)
    assert aliases("/etc/shadow", mounts) == ("/mnt/rootfs/etc/shadow",)


def test_mountinfo_is_parsed_with_escapes(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_bytes(
        b"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        b"23 22 8:1 /with\\040space /mnt/a\\011tab rw shared:1 - ext4 /dev/sda1 rw\n"
    )
    assert read_mounts(str(info)) == (
        Mount("8:1", "/", "/", 22, "ext4", ("rw",)),
        Mount("8:1", "/with space", "/mnt/a\ttab", 23, "ext4", ("rw",)),
    )
    assert read_mounts(str(tmp_path / "missing")) == ()
    assert read_mounts()  # this system's table parses


# -- overlays ----------------------------------------------------------------------


def test_overlay_layers_are_read_from_mountinfo(tmp_path: Path) -> None:
    # as the kernel shows them: overlayfs's own backslash escapes, then mountinfo's octal ones
    info = tmp_path / "mountinfo"
    info.write_bytes(
        b"47 27 0:40 / /srv/ov rw - overlay overlay "
        b"ro,lowerdir=/tmp/a\\134\\054b\\134:c\\040d:/e::/data,upperdir=/u,workdir=/w\n"
    )
    (mount,) = read_mounts(str(info))
    assert mount.fstype == "overlay" and mount.id == 47
    assert mount.layers() == ("/tmp/a,b:c d", "/e", "/data", "/u")  # not the workdir


OVERLAY = (
    Mount("8:1", "/", "/", 1),
    Mount("8:2", "/", "/home", 2),
    Mount("0:40", "/", "/srv/ov", 3, "overlay", ("lowerdir=/home/carol/.ssh:/empty",)),
    Mount("0:40", "/sub", "/srv/ov-sub", 4, "overlay", ("lowerdir=/home/carol/.ssh:/empty",)),
)


def test_aliases_through_an_overlays_layers() -> None:
    assert set(aliases("/srv/ov/config", OVERLAY)) == {
        "/home/carol/.ssh/config",
        "/empty/config",
    }
    assert "/home/carol/.ssh/sub/x" in aliases("/srv/ov-sub/x", OVERLAY)
    assert "/srv/ov/sub/x" in aliases("/srv/ov-sub/x", OVERLAY)  # the same overlay, elsewhere


def test_aliases_are_followed_from_one_mount_to_the_next() -> None:
    # the overlay's layer is itself a bind mount of ~/.ssh
    mounts = (
        Mount("8:1", "/", "/", 1),
        Mount("8:1", "/home/carol/.ssh", "/mnt/keys", 2),
        Mount("0:40", "/", "/srv/ov", 3, "overlay", ("lowerdir=/mnt/keys:/empty",)),
    )
    assert "/home/carol/.ssh/config" in aliases("/srv/ov/config", mounts)


def test_the_mount_a_descriptor_lies_on_decides_over_the_deepest_mount_point() -> None:
    # a mount over /srv/ov made after the file was opened: the file is still the overlay's
    mounts = (*OVERLAY, Mount("8:1", "/tmp", "/srv/ov", 9))
    assert "/home/carol/.ssh/config" not in aliases("/srv/ov/config", mounts)
    assert "/home/carol/.ssh/config" in aliases("/srv/ov/config", mounts, 3)


def test_an_overlay_with_a_relative_layer_cannot_be_located() -> None:
    mounts = (
        Mount("8:1", "/", "/", 1),
        Mount("0:40", "/", "/srv/ov", 3, "overlay", ("lowerdir=.ssh:e",)),
    )
    with pytest.raises(Unlocatable):
        aliases("/srv/ov/config", mounts)
    assert aliases("/etc/hosts", mounts) == ()  # other mounts are unaffected


def test_too_many_names_cannot_be_located() -> None:
    mounts = tuple(Mount("8:1", "/", f"/m{i}", i) for i in range(MAX_ALIASES + 2))
    with pytest.raises(Unlocatable):
        aliases("/m0/x", mounts)
