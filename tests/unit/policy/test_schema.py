"""The policy file: its schema, the built-in defaults, and every way a file can be wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.unit.policy.support import make_policy, within
from toolkit import paths
from toolkit.errors import ExitCode, UsageError
from toolkit.inputs import SMALL
from toolkit.policy import DEFAULT_TOML, Policy, default_path, resolve

DOCS = Path(__file__).resolve().parents[3] / "docs" / "policy.md"

ISSUE_EXAMPLE = """\
[files]
allow = ["/var/log/syslog", "/etc/os-release", "~/.local/share/*/logs/**"]
deny  = ["~/.ssh/**", "**/*.key", "**/*.pem", "/etc/shadow"]
max_bytes = 10485760
[commands]
diagnostics = [["uptime"], ["df", "-h"], ["systemctl", "status", "{unit}"]]
[placeholders]
unit = "^[A-Za-z0-9@._-]{1,128}$"
"""


def test_the_example_from_the_issue_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(ISSUE_EXAMPLE)
    policy = Policy.load(path)
    assert [p.text for p in policy.allow] == [
        "/var/log/syslog",
        "/etc/os-release",
        "~/.local/share/*/logs/**",
    ]
    assert [p.text for p in policy.deny] == ["~/.ssh/**", "**/*.key", "**/*.pem", "/etc/shadow"]
    assert policy.max_bytes == 10485760
    assert [str(t) for t in policy.commands["diagnostics"]] == [
        "uptime",
        "df -h",
        "systemctl status {unit}",
    ]
    assert policy.placeholders["unit"].pattern == "^[A-Za-z0-9@._-]{1,128}$"
    assert policy.source == str(path)
    assert policy.allow_hardlinks is False


def test_defaults() -> None:
    policy = Policy.default()
    allow = {p.text for p in policy.allow}
    deny = {p.text for p in policy.deny}
    assert {"/etc/os-release", "/var/log/syslog", "/var/log/*.log", "/proc/loadavg"} <= allow
    assert {"/proc/meminfo"} <= allow
    assert {"~/.ssh/**", "**/*.key", "**/*.pem", "**/id_*", "/etc/shadow", "/etc/gshadow"} <= deny
    assert {"~/.mozilla/**", "~/.config/google-chrome/**", "~/.config/chromium/**"} <= deny
    assert {"~/.password-store/**", "~/.gnupg/**", "~/.local/share/keyrings/**"} <= deny
    assert policy.max_bytes == 10 * 1024 * 1024
    diagnostics = {str(t) for t in policy.commands["diagnostics"]}
    assert {"uptime", "df -h", "free -m", "uname -a", "systemctl status {unit}"} <= diagnostics
    assert "journalctl -u {unit} -n {lines}" in diagnostics
    assert set(policy.placeholders) == {"unit", "lines"}
    assert policy.home == os.environ["HOME"]


def test_docs_write_out_the_defaults_exactly() -> None:
    text = DOCS.read_text()
    assert f"```toml\n{DEFAULT_TOML}```" in text


def test_a_key_set_replaces_the_default_and_a_key_left_out_keeps_it() -> None:
    policy = Policy.from_toml('[files]\nallow = ["/srv/app/*.log"]\n[placeholders]\nx = "^a$"\n')
    assert [p.text for p in policy.allow] == ["/srv/app/*.log"]
    assert policy.deny == Policy.default().deny
    assert set(policy.placeholders) == {"unit", "lines", "x"}
    assert policy.commands == Policy.default().commands
    policy = Policy.from_toml('[files]\ndeny = []\n[commands]\nfixes = [["sync"]]\n')
    assert policy.deny == ()
    assert set(policy.commands) == {"diagnostics", "fixes"}
    assert Policy.from_toml("[commands]\ndiagnostics = []\n").commands["diagnostics"] == ()


def test_other_scopes_are_kept_by_name() -> None:
    policy = make_policy(commands={"fixes": [["resolvectl", "flush-caches"]], "net-tools": []})
    assert [str(t) for t in policy.commands["fixes"]] == ["resolvectl flush-caches"]
    assert policy.commands["net-tools"] == ()
    assert policy.scopes() == ("diagnostics", "fixes", "net-tools")


def test_tilde_is_the_agent_users_home(tmp_path: Path) -> None:
    policy = Policy.from_toml('[files]\nallow = ["~/logs/**", "~"]\n', home="/home/carol")
    assert [p.text for p in policy.allow[0].parts] == ["home", "carol", "logs", "**"]
    assert [p.text for p in policy.allow[1].parts] == ["home", "carol"]
    assert Policy.default().home == str(tmp_path / "home")  # conftest's HOME


def test_policy_is_immutable() -> None:
    policy = Policy.default()
    with pytest.raises(AttributeError):
        policy.max_bytes = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.commands["shell"] = ()  # type: ignore[index]


# -- every refusal names the file and the key --------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "what"),
    [
        ("[file]\nallow = []\n", "'file'", "unknown key"),
        ("[files]\nalow = []\n", "files.alow", "unknown key"),
        ("files = 3\n", "files", "must be a table"),
        ("[files]\nallow = '/var/log/syslog'\n", "files.allow", "list of strings"),
        ("[files]\nallow = ['/a', 3]\n", "files.allow[1]", "must be a string"),
        ("[files]\ndeny = ['etc/shadow']\n", "files.deny[0]", "must start with '/', '~/' or '**/'"),
        ("[files]\ndeny = ['~root/.ssh/**']\n", "files.deny[0]", "must start with"),
        ("[files]\ndeny = ['*.key']\n", "files.deny[0]", "must start with"),
        ("[files]\nallow = ['']\n", "files.allow[0]", "must not be empty"),
        ("[files]\nallow = ['/var/log/../../etc/shadow']\n", "files.allow[0]", "'..'"),
        ("[files]\nallow = ['/var/./log']\n", "files.allow[0]", "'.'"),
        ("[files]\nallow = ['/var/log/a**']\n", "files.allow[0]", "whole path component"),
        ('[files]\nallow = ["/var/\\u0000log"]\n', "files.allow[0]", "NUL"),
        ("[files]\nmax_bytes = '10M'\n", "files.max_bytes", "must be an integer"),
        ("[files]\nmax_bytes = true\n", "files.max_bytes", "must be an integer"),
        ("[files]\nmax_bytes = 1.5\n", "files.max_bytes", "must be an integer"),
        ("[files]\nmax_bytes = 0\n", "files.max_bytes", "must be positive"),
        ("[files]\nmax_bytes = -1\n", "files.max_bytes", "must be positive"),
        ("[files]\nallow_hardlinks = 'yes'\n", "files.allow_hardlinks", "true or false"),
        ("commands = []\n", "commands", "must be a table"),
        ("[commands]\ndiagnostics = 'uptime'\n", "commands.diagnostics", "list of commands"),
        ("[commands]\ndiagnostics = ['uptime']\n", "commands.diagnostics[0]", "list of strings"),
        ("[commands]\ndiagnostics = [[]]\n", "commands.diagnostics[0]", "at least the program"),
        ("[commands]\ndiagnostics = [['df', 1]]\n", "commands.diagnostics[0][1]", "string"),
        (
            "[commands]\ndiagnostics = [['{unit}', 'status']]\n",
            "commands.diagnostics[0]",
            "program must be a literal",
        ),
        (
            "[commands]\ndiagnostics = [['systemctl', '--unit={unit}']]\n",
            "commands.diagnostics[0]",
            "whole word",
        ),
        (
            "[commands]\nfixes = [['systemctl', 'restart', '{service}']]\n",
            "commands.fixes[0]",
            "placeholder {service} is not defined",
        ),
        ('[commands]\n"bad scope" = []\n', "commands.bad scope", "scope name"),
        ("[placeholders]\nunit = '^[a-z'\n", "placeholders.unit", "invalid regular expression"),
        ("[placeholders]\nunit = 5\n", "placeholders.unit", "must be a string"),
        ("[placeholders]\n2x = 'a'\n", "placeholders.2x", "not a placeholder name"),
        ("placeholders = 'x'\n", "placeholders", "must be a table"),
    ],
)
def test_bad_policy_is_a_usage_error_naming_file_and_key(
    tmp_path: Path, text: str, key: str, what: str
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        Policy.load(path)
    message = caught.value.message
    assert message.startswith(f"{path}: "), message
    assert key in message and what in message, message
    assert caught.value.exit_code == ExitCode.USAGE
    assert "docs/policy.md" in caught.value.diagnostics()


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text("[files\n")
    with pytest.raises(UsageError, match=f"^{path}: not valid TOML"):
        Policy.load(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b"[files]\nallow = ['\xff']\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        Policy.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file") as caught:
        Policy.load(tmp_path / "nope.toml")
    assert caught.value.hint is not None and "built-in policy" in caught.value.hint


def test_from_toml_names_its_source() -> None:
    with pytest.raises(UsageError, match=r"^--policy-text: files\.max_bytes"):
        Policy.from_toml("[files]\nmax_bytes = 0\n", source="--policy-text")


def test_direct_construction_checks_placeholders_too() -> None:
    base = Policy.default()
    with pytest.raises(UsageError, match=r"commands\.diagnostics\[4\]: placeholder \{unit\}"):
        Policy(
            allow=base.allow,
            deny=base.deny,
            max_bytes=1,
            commands=base.commands,
            placeholders={},
            home=base.home,
        )


# -- where the policy comes from ---------------------------------------------------


def test_default_path_is_in_the_config_dir(tmp_path: Path) -> None:
    assert default_path() == paths.config_dir() / "agent.toml"
    assert default_path() == tmp_path / "config" / "toolkit" / "agent.toml"
    assert Policy.default_path() == default_path()


def test_resolve_without_a_file_gives_the_defaults() -> None:
    policy = resolve(None)
    assert policy.source == "built-in policy" and policy == Policy.default()


def test_resolve_reads_agent_toml_from_the_config_dir() -> None:
    default_path().parent.mkdir(parents=True)
    default_path().write_text("[files]\nmax_bytes = 1024\n")
    policy = Policy.resolve()
    assert policy.max_bytes == 1024 and policy.source == str(default_path())


def test_resolve_prefers_an_explicit_path(tmp_path: Path) -> None:
    default_path().parent.mkdir(parents=True)
    default_path().write_text("[files]\nmax_bytes = 1024\n")
    explicit = tmp_path / "mine.toml"
    explicit.write_text("[files]\nmax_bytes = 2048\n")
    assert resolve(explicit).max_bytes == 2048
    with pytest.raises(UsageError, match="no such file"):
        resolve(tmp_path / "missing.toml")  # an explicit path must exist


def test_unknown_home_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "relative/home")
    with pytest.raises(UsageError, match="home"):
        Policy.default()


def test_a_broken_agent_toml_is_an_error_not_a_silent_fallback() -> None:
    default_path().parent.mkdir(parents=True)
    default_path().symlink_to("nowhere.toml")
    with pytest.raises(UsageError, match="no such file"):
        Policy.resolve()


# -- hostile policy files: one sentence, never a hang or a bug ------------------------

DEEP = 5000
NESTED = "arrays or inline tables are nested too deeply"


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("[files]\nallow = " + "[" * DEEP + "]" * DEEP + "\n", NESTED),
        ("[files]\nallow = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n", NESTED),
        ("[files]\nmax_bytes = " + "9" * DEEP + "\n", "a number has too many digits"),
    ],
    ids=["5000-deep arrays", "5000-deep inline tables", "5000-digit integer"],
)
def test_hostile_toml_is_a_usage_error_not_a_bug(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        Policy.load(path)
    assert caught.value.message == f"{path}: not valid TOML: {what}"
    assert caught.value.exit_code == ExitCode.USAGE


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    os.mkfifo(path)
    with pytest.raises(UsageError, match="it is a FIFO"):
        within(5, lambda: Policy.load(path))


@pytest.mark.parametrize(
    ("path", "what"),
    [("/dev/zero", "it is a character device"), ("/", "it is a directory")],
)
def test_a_device_or_directory_is_refused(path: str, what: str) -> None:
    with pytest.raises(UsageError, match=what):
        within(5, lambda: Policy.load(path))


def test_a_policy_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    with open(path, "wb") as f:
        f.truncate(SMALL + 1)  # a hole: costs nothing unless someone reads it
    with pytest.raises(UsageError, match="larger than 4 MiB"):
        within(5, lambda: Policy.load(path))
