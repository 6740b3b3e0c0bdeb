"""The agent's catalogue: installed procedures that run here, chosen by kind and name."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.errors import PolicyRefused
from toolkit.plugins import DeclarationError, Diagnostic, Fix, Kind
from toolkit.plugins.catalogue import Catalogue
from toolkit.policy import ProcedureRules

D, F = Kind.DIAGNOSTIC, Kind.FIX
ALL = ProcedureRules()
DISK = Diagnostic("disk", "Disk space", run=[["df", "-h"]])
FLUSH = Fix("flush-dns", "Flush the DNS cache", apply=[["resolvectl", "flush-caches"]])
ELSEWHERE = Diagnostic("mac-disk", "Disk space on a Mac", platforms=("macos",), run=[["df"]])


def catalogue() -> Catalogue:
    return Catalogue([DISK, FLUSH, ELSEWHERE], platform="linux")


def test_names_by_kind_only_of_what_runs_here_and_is_allowed() -> None:
    assert catalogue().names(D) == ["disk"]  # mac-disk is for macos
    assert catalogue().names(F) == ["flush-dns"]
    assert catalogue().names(F, ProcedureRules(deny=("flush-*",))) == []
    assert Catalogue([]).names(D) == []


def test_two_procedures_of_one_kind_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two fixes are named flush-dns"):
        Catalogue([FLUSH, Fix("flush-dns", "other", apply=[["true"]])])
    # A diagnostic and a fix may share a name.
    assert Catalogue([DISK, Fix("disk", "a fix", apply=[["true"]])]).names(F) == ["disk"]


def test_the_installed_one_is_chosen_and_named_by_its_digest() -> None:
    chosen = catalogue().choose(D, "disk", ALL)
    assert chosen.procedure is DISK and chosen.source == "installed"
    assert chosen.about() == {
        "name": "disk",
        "version": "1",
        "source": "installed",
        "sha256": DISK.sha256,
    }


@pytest.mark.parametrize(
    ("kind", "name", "shown"),
    [
        (D, "nope", "no diagnostic named nope on this machine"),
        (F, "disk", "no fix named disk on this machine"),  # a diagnostic, not a fix
        (D, "Bad Name", "no diagnostic named 'Bad Name'"),
        (D, "\x1b[2J" + "x" * 200, "no diagnostic named '\\x1b[2J" + "x" * 60 + "'"),
    ],
)
def test_unknown_names_are_policy_refusals(kind: Kind, name: str, shown: str) -> None:
    with pytest.raises(PolicyRefused) as caught:
        catalogue().choose(kind, name, ALL)
    assert caught.value.message.startswith("refused: ") and shown in caught.value.message
    assert "\x1b" not in caught.value.message
    assert caught.value.hint is not None and "help" in caught.value.hint


def test_policy_and_platform_refuse_by_name() -> None:
    with pytest.raises(PolicyRefused, match="does not allow the fix flush-dns"):
        catalogue().choose(F, "flush-dns", ProcedureRules(allow=("*",), deny=("flush-*",)))
    with pytest.raises(PolicyRefused, match="does not allow the diagnostic disk"):
        catalogue().choose(D, "disk", ProcedureRules(allow=("net*",)))
    with pytest.raises(PolicyRefused, match="mac-disk is for macos, not linux"):
        catalogue().choose(D, "mac-disk", ALL)


def test_a_brought_one_is_parsed_and_compared_with_the_installed_one() -> None:
    mine = Diagnostic("uptime", "How long it has run", run=[["uptime"]])
    chosen = catalogue().choose(D, "uptime", ALL, mine.to_dict())
    assert chosen.source == "brought" and chosen.procedure.sha256 == mine.sha256
    # The same declaration as the one installed runs as installed.
    same = catalogue().choose(D, "disk", ALL, DISK.to_dict())
    assert same.source == "installed" and same.procedure is DISK
    other = Diagnostic("disk", "Disk space, my way", run=[["du", "-sh", "/"]])
    with pytest.raises(PolicyRefused, match=r"has its own disk \(version 1\)"):
        catalogue().choose(D, "disk", ALL, other.to_dict())
    with pytest.raises(PolicyRefused, match="does not allow"):
        catalogue().choose(D, "uptime", ProcedureRules(deny=("up*",)), mine.to_dict())
    with pytest.raises(PolicyRefused, match="is the diagnostic uptime, not the fix uptime"):
        catalogue().choose(F, "uptime", ALL, mine.to_dict())


@pytest.mark.parametrize(
    ("declaration", "field"),
    [
        ("not an object", "JSON object"),
        ({**FLUSH.to_dict(), "shell": "rm -rf /"}, "no field 'shell'"),
        ({**FLUSH.to_dict(), "apply": [["{x}"]]}, r"apply: \{x\} is not a parameter"),
        ({**FLUSH.to_dict(), "summary": ""}, "summary"),
    ],
)
def test_a_malformed_declaration_names_what_is_wrong(declaration: Any, field: str) -> None:
    with pytest.raises(DeclarationError, match=field):
        Catalogue([]).choose(F, "flush-dns", ALL, declaration)


def test_describe_is_each_declaration_with_its_digest_for_the_hello_reply() -> None:
    described = catalogue().describe(ALL)
    assert set(described) == {"diagnostics", "fixes"}
    assert list(described["diagnostics"]) == ["disk"]
    assert described["fixes"]["flush-dns"] == {
        **FLUSH.to_dict(),
        "sha256": FLUSH.sha256,
        "source": "installed",
    }
    assert catalogue().describe(ProcedureRules(deny=("disk",)))["diagnostics"] == {}
