"""The catalogue of named diagnostics and fixes the agent offers."""

from __future__ import annotations

import pytest

from toolkit.errors import PolicyRefused
from toolkit.plugins.catalogue import BUILTIN, Catalogue, Kind, Procedure

D, F = Kind.DIAGNOSTIC, Kind.FIX


def test_builtin_names_by_kind() -> None:
    catalogue = Catalogue()
    assert catalogue.names(D) == ["disk", "network", "services", "system"]
    assert catalogue.names(F) == ["clear-thumbnails", "flush-dns"]
    assert all(catalogue.get(p.kind, p.name) is p for p in BUILTIN)


def test_names_are_sorted_and_kinds_kept_apart() -> None:
    catalogue = Catalogue(
        [
            Procedure("zeta", D, "z", (("true",),)),
            Procedure("alpha", D, "a", (("true",),)),
            Procedure("alpha", F, "a fix of the same name", (("true",),)),
        ]
    )
    assert catalogue.names(D) == ["alpha", "zeta"]
    assert catalogue.names(F) == ["alpha"]
    assert catalogue.get(F, "alpha").summary == "a fix of the same name"
    assert Catalogue([]).names(D) == []


def test_two_procedures_of_one_kind_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two fixes are named mark"):
        Catalogue(
            [
                Procedure("mark", F, "one", (("true",),)),
                Procedure("mark", F, "two", (("false",),)),
            ]
        )


@pytest.mark.parametrize("name", ["", "Upper", "1st", "with space", "dots.no", "a" * 65, "-x"])
def test_names_are_lower_case_with_dashes(name: str) -> None:
    with pytest.raises(ValueError, match="lower-case"):
        Procedure(name, D, "bad", (("true",),))


@pytest.mark.parametrize("commands", [(), ((),), (("true",), ())])
def test_a_procedure_runs_at_least_one_non_empty_command(
    commands: tuple[tuple[str, ...], ...],
) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        Procedure("empty", D, "nothing", commands)


def test_home_is_resolved_everywhere_and_nothing_else_is() -> None:
    procedure = Procedure(
        "clean",
        F,
        "clean up",
        (
            ("rm", "-rf", "--", "{home}/.cache/x"),
            ("cp", "{home}/a", "--target={home}/b"),
            ("echo", "{user}", "{HOME}", "$HOME", "~"),
        ),
    )
    assert procedure.resolved("/home/o'neil x") == (
        ("rm", "-rf", "--", "/home/o'neil x/.cache/x"),
        ("cp", "/home/o'neil x/a", "--target=/home/o'neil x/b"),
        ("echo", "{user}", "{HOME}", "$HOME", "~"),
    )
    # The declared commands are unchanged; describe() shows them as declared.
    assert procedure.commands[0][3] == "{home}/.cache/x"
    assert procedure.describe()["commands"] == [list(argv) for argv in procedure.commands]


@pytest.mark.parametrize(
    ("kind", "name", "shown"),
    [
        (D, "nope", "no diagnostic named nope on this machine"),
        (F, "system", "no fix named system on this machine"),  # a diagnostic, not a fix
        (D, "clear-thumbnails", "no diagnostic named clear-thumbnails"),
        (D, "Bad Name", "no diagnostic named 'Bad Name'"),
        (D, "\x1b[2J" + "x" * 200, "no diagnostic named '\\x1b[2J" + "x" * 60 + "'"),
    ],
)
def test_unknown_names_are_policy_refusals(kind: Kind, name: str, shown: str) -> None:
    with pytest.raises(PolicyRefused) as caught:
        Catalogue().get(kind, name)
    assert caught.value.message.startswith("refused: ")
    assert shown in caught.value.message
    assert "\x1b" not in caught.value.message
    assert caught.value.hint is not None and "help" in caught.value.hint


def test_describe_groups_by_scope_for_the_hello_reply() -> None:
    described = Catalogue().describe()
    assert set(described) == {"diagnostics", "fixes"}
    assert list(described["diagnostics"]) == Catalogue().names(D)
    assert described["fixes"]["flush-dns"] == {
        "kind": "fix",
        "summary": "Flush systemd-resolved's DNS cache",
        "commands": [["resolvectl", "flush-caches"]],
    }


def test_kind_scope() -> None:
    assert (D.scope, F.scope) == ("diagnostics", "fixes")
