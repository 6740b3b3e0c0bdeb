"""[procedures] allow/deny and [commands] search_path in the agent's policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.errors import PolicyRefused, UsageError
from toolkit.policy import Policy, ProcedureRules, run_environment


def test_the_defaults_allow_every_name_and_search_nothing_more() -> None:
    rules = Policy.default(home="/home/c")
    assert rules.procedures == ProcedureRules(allow=("*",), deny=())
    assert rules.search_path == ()
    assert "search_path" not in rules.commands  # not a scope


def test_deny_beats_allow_and_an_empty_allow_allows_nothing() -> None:
    rules = ProcedureRules(allow=("flush-*", "disk"), deny=("flush-cups",))
    assert rules.allows("flush-dns") and rules.allows("disk")
    assert not rules.allows("flush-cups") and not rules.allows("network")
    assert not ProcedureRules(allow=()).allows("disk")
    with pytest.raises(PolicyRefused, match="does not allow the fix flush-cups"):
        rules.check("fix", "flush-cups")


def test_the_policy_file_sets_them(tmp_path: Path) -> None:
    text = (
        f"[commands]\nsearch_path = [{json.dumps(str(tmp_path))}]\n"
        '[procedures]\nallow = ["d*", "net?ork"]\ndeny = ["[x-z]*"]\n'
    )
    rules = Policy.from_toml(text, home="/home/c")
    assert rules.search_path == (str(tmp_path),)
    assert rules.procedures.allows("disk") and rules.procedures.allows("network")
    assert run_environment(rules.search_path)["PATH"] == f"{tmp_path}:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('[commands]\nsearch_path = ["bin"]', "commands.search_path[0]: 'bin' is not an absolute"),
        ('[commands]\nsearch_path = ["/no/such/dir"]', "'/no/such/dir' is not a directory"),
        ('[commands]\nsearch_path = ["/usr/bin:/tmp"]', "is not an absolute directory"),
        ('[commands]\nsearch_path = "/usr/bin"', "commands.search_path: must be a list"),
        ('[procedures]\nallow = ["Disk Tool"]', "procedures.allow[0]: 'Disk Tool' is not"),
        ('[procedures]\ndeny = [1]', "procedures.deny[0]: must be a string"),
        ('[procedures]\nonly = ["x"]', "procedures.only: unknown key"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_naming_the_key(text: str, said: str) -> None:
    with pytest.raises(UsageError) as caught:
        Policy.from_toml(text, source="agent.toml", home="/home/c")
    assert caught.value.message.startswith("agent.toml: ") and said in caught.value.message
