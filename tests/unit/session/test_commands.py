"""The technician's session command lines: what each parses to, and every way one is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.errors import UsageError
from toolkit.session.commands import COMMANDS, MAX_LINE, Command, help_text, parse


def parsed(line: str) -> Command:
    command = parse(line)
    assert command is not None
    return command


@pytest.mark.parametrize(
    ("line", "name", "op", "args"),
    [
        ("run uptime", "run", "run", {"argv": ["uptime"]}),
        ("run df -h", "run", "run", {"argv": ["df", "-h"]}),
        ("read /var/log/syslog", "read", "read", {"path": "/var/log/syslog"}),
        ("ls /var/log", "ls", "list", {"path": "/var/log"}),
        ("stat ~/.bashrc", "stat", "stat", {"path": "~/.bashrc"}),
        ("diag system", "diag", "diag", {"name": "system"}),
        ("fix flush-dns", "fix", "fix", {"name": "flush-dns"}),
        ("shell", "shell", "shell", {}),
        ("help", "help", None, {}),
        ("help run", "help", None, {}),
        ("exit", "exit", None, {}),
    ],
)
def test_each_command(line: str, name: str, op: str | None, args: dict[str, Any]) -> None:
    command = parsed(line)
    assert (command.name, command.op, command.args) == (name, op, args)
    assert command.text == line
    assert command.words == tuple(line.split()[1:])


def test_every_command_is_covered_and_has_help() -> None:
    assert set(COMMANDS) == {"run", "read", "ls", "stat", "diag", "fix", "shell", "help", "exit"}
    for name, spec in COMMANDS.items():
        assert spec.usage.split()[0] == name and spec.summary.endswith(".")


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("run echo 'two words'", ["echo", "two words"]),
        ('run echo "double quoted"', ["echo", "double quoted"]),
        ("run echo a\\ b", ["echo", "a b"]),
        ("run echo ''", ["echo", ""]),
        ("run echo '#not a comment'", ["echo", "#not a comment"]),
        ("run echo a # b", ["echo", "a", "#", "b"]),  # only a whole line is a comment
        ("run echo *", ["echo", "*"]),  # no globbing
        ("run echo $HOME", ["echo", "$HOME"]),  # no variables
        ("run echo `id`", ["echo", "`id`"]),  # no command substitution
        ("run   echo\tx  ", ["echo", "x"]),
    ],
)
def test_words_split_like_a_shell_but_nothing_expands(line: str, args: list[str]) -> None:
    assert parsed(line).args == {"argv": args}


def test_a_quoted_path_keeps_its_spaces() -> None:
    assert parsed("read '/var/log/my app.log'").args == {"path": "/var/log/my app.log"}


@pytest.mark.parametrize("line", ["", "   ", "\t", "\n", "# a comment", "   # indented", "#"])
def test_blank_and_comment_lines_are_skipped(line: str) -> None:
    assert parse(line) is None


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("run", "run CMD [ARGS...]"),
        ("read", "read PATH [--head N | --tail N]"),
        ("read /a /b", "read PATH [--head N | --tail N]"),
        ("ls", "ls PATH"),
        ("stat a b", "stat PATH"),
        ("diag", "diag NAME [-p KEY=VALUE]..."),
        ("fix a b", "fix NAME [--step check|apply|verify|rollback] [-p KEY=VALUE]..."),
        ("help run read", "help [COMMAND]"),
        ("exit now", "exit"),
        ("shell bash", "shell"),
    ],
)
def test_wrong_arity_shows_the_usage(line: str, usage: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(line)
    assert caught.value.message == f"Usage: {usage}"


@pytest.mark.parametrize("line", ["bash", "rm -rf /", "RUN uptime", "''", "cat /etc/passwd"])
def test_an_unknown_command_is_a_usage_error_that_lists_the_commands(line: str) -> None:
    with pytest.raises(UsageError, match="Unknown command") as caught:
        parse(line)
    assert caught.value.hint is not None and "run, read, ls" in caught.value.hint


@pytest.mark.parametrize("name", ["x" * 500, "\x1b[31mred", "\u202eevil"])
def test_an_unknown_command_is_quoted_escaped_and_cut_short(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(name + " arg")
    assert len(caught.value.message) < 80
    assert "\x1b" not in caught.value.message and "\u202e" not in caught.value.message


@pytest.mark.parametrize("line", ["run echo 'open", 'read "/tmp/x', "run echo \\"])
def test_unbalanced_quotes_are_a_usage_error(line: str) -> None:
    with pytest.raises(UsageError, match="Cannot split"):
        parse(line)


def test_a_line_at_the_limit_parses_and_one_over_it_is_refused() -> None:
    at_limit = "run echo " + "x" * (MAX_LINE - len("run echo "))
    assert parsed(at_limit).args["argv"][1] == "x" * (MAX_LINE - 9)
    with pytest.raises(UsageError, match=str(MAX_LINE)):
        parse(at_limit + "x")


def test_surrounding_whitespace_does_not_count_towards_the_limit() -> None:
    assert parsed("  exit  " + " " * MAX_LINE) is not None


def test_help_text_for_one_command() -> None:
    assert help_text("read") == f"read PATH [--head N | --tail N]\n  {COMMANDS['read'].summary}"
    with pytest.raises(UsageError, match="not a command"):
        help_text("bash")


def test_help_text_lists_every_command_and_what_the_agent_offers() -> None:
    plain = help_text()
    assert all(spec.usage in plain for spec in COMMANDS.values())
    info = {
        "procedures": {
            "diagnostics": {"system": {"summary": "Kernel and uptime"}},
            "fixes": {"flush-dns": {"summary": "Flush the DNS cache"}},
        },
        "commands": {"diagnostics": ["uptime", "df -h"], "fixes": []},
    }
    text = help_text(info=info)
    assert text.startswith(plain)
    assert "diagnostics on this machine:" in text and "Kernel and uptime" in text
    assert "fixes on this machine:" in text and "flush-dns" in text
    assert "commands `run` allows (diagnostics):\n  uptime\n  df -h" in text
    assert "(fixes)" not in text  # a scope without templates is not listed


def test_help_text_survives_an_agent_that_sends_odd_info() -> None:
    # The hello reply comes from the agent: missing or empty parts are skipped.
    odd: list[Any] = [
        {},
        [1, 2],
        "hello",
        {"procedures": None, "commands": None},
        {"procedures": {"fixes": {}}},
        {"procedures": [1], "commands": [1]},
        {"procedures": {"diagnostics": [1], "fixes": "x"}},
        {"commands": {"diagnostics": 5, "fixes": {"a": 1}}},
    ]
    for info in odd:
        assert help_text(info=info) == help_text()


def test_help_text_takes_what_has_the_right_shape_and_skips_the_rest() -> None:
    info = {"procedures": {"diagnostics": {"disk": 5, "net": {"summary": 7}}}}
    text = help_text(info=info)
    assert "  disk" in text and "  net                  7" in text


def test_help_text_never_puts_a_control_sequence_on_the_terminal() -> None:
    # Names, summaries and templates come from the agent, which the technician does
    # not control: escapes, bidi overrides and odd spaces are shown escaped.
    evil = "\x1b]0;pwned\x07\x1b[2J\u202e\u200b\u2028\xa0"
    info = {
        "procedures": {"diagnostics": {"disk" + evil: {"summary": "Disk" + evil}}},
        "commands": {"diagnostics" + evil: ["uptime" + evil]},
    }
    text = help_text(info=info)
    assert all(c == "\n" or c.isprintable() for c in text)
    assert "\\x1b]0;pwned\\x07" in text and "\\u202e" in text
