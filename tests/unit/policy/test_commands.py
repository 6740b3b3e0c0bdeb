"""Command templates: matching, placeholders and the fixed environment."""

from __future__ import annotations

import pytest

from tests.unit.policy.support import make_policy
from toolkit.errors import PolicyRefused
from toolkit.policy import Placeholder, Policy, Template, match_command, run_environment


@pytest.fixture
def policy() -> Policy:
    return make_policy(
        commands={
            "diagnostics": [["uptime"], ["systemctl", "status", "{unit}"], ["df", "-h"]],
            "fixes": [["systemctl", "restart", "{unit}"], ["ip", "link", "set", "{dev}", "up"]],
        },
        placeholders={"dev": "^(eth|wlan|en)[a-z0-9]{1,12}$"},
    )


def test_literal_template_matches(policy: Policy) -> None:
    template = match_command(["uptime"], policy, "diagnostics")
    assert template == Template(("uptime",)) and str(template) == "uptime"


def test_placeholder_template_matches_and_returns_the_template(policy: Policy) -> None:
    template = match_command(["systemctl", "status", "nginx.service"], policy, "diagnostics")
    assert template.argv == ("systemctl", "status", "{unit}")
    assert template.placeholders == ("unit",)
    assert match_command(["systemctl", "status", "getty@tty1"], policy, "diagnostics") == template


def test_a_custom_scope_with_its_own_placeholder(policy: Policy) -> None:
    template = match_command(["ip", "link", "set", "eth0", "up"], policy, "fixes")
    assert str(template) == "ip link set {dev} up"
    with pytest.raises(PolicyRefused, match=r"\{dev\} must match"):
        match_command(["ip", "link", "set", "lo", "up"], policy, "fixes")


def test_default_templates() -> None:
    policy = Policy.default()
    for argv in (
        ["uptime"],
        ["df", "-h"],
        ["free", "-m"],
        ["uname", "-a"],
        ["systemctl", "status", "ssh.service"],
        ["journalctl", "-u", "ssh.service", "-n", "200"],
    ):
        assert match_command(argv, policy, "diagnostics")


def test_refusal_names_the_command_and_the_scope(policy: Policy) -> None:
    with pytest.raises(PolicyRefused) as caught:
        match_command(["rm", "-rf", "/"], policy, "diagnostics")
    assert caught.value.message == (
        "refused: 'rm -rf /' matches no command the agent allows in the 'diagnostics' scope"
    )
    assert "help" in (caught.value.hint or "")


def test_the_nearest_template_explains_a_bad_value(policy: Policy) -> None:
    with pytest.raises(PolicyRefused) as caught:
        match_command(["systemctl", "status", "a b"], policy, "diagnostics")
    assert caught.value.message == (
        "refused: \"systemctl status 'a b'\": {unit} must match ^[A-Za-z0-9@._-]{1,128}$"
    )


def test_template_parse_rules() -> None:
    assert Template.parse(["find", "/var/log", "-name", "{}"]).placeholders == ()  # {} is literal
    for words, what in [
        ([], "at least the program"),
        (["{x}"], "program must be a literal"),
        (["a", "--x={x}"], "whole word"),
        (["a", "b\0"], "NUL"),
    ]:
        with pytest.raises(ValueError, match=what):
            Template.parse(words)


def test_template_check_refuses_an_undefined_placeholder() -> None:
    with pytest.raises(PolicyRefused, match="no pattern"):
        Template(("a", "{x}")).check(["a", "b"], {})


def test_placeholder_parse() -> None:
    assert Placeholder.parse("unit", "^a$").regex.fullmatch("a")
    with pytest.raises(ValueError, match="invalid regular expression"):
        Placeholder.parse("unit", "(")
    with pytest.raises(ValueError, match="not a placeholder name"):
        Placeholder.parse("my-unit", "a")


def test_run_environment() -> None:
    assert run_environment() == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
