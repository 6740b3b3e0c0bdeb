"""Pieces of `toolkit connect`'s first-use manners (issue 15), without a session."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.cli import _take_verbose
from toolkit.cli._complete import SCOPES, complete_scope
from toolkit.cli._session import error_line as _error_line
from toolkit.consent import Scope
from toolkit.consent._code import grouped_digits
from toolkit.consent.errors import CodeExpired, WrongCode
from toolkit.errors import TransportError, UsageError
from toolkit.session.results import OperationResult

KEYS = {
    "command",
    "name",
    "status",
    "exit_status",
    "error",
    "result",
    "findings",
    "stdout",
    "stdout_base64",
    "stderr",
    "stderr_base64",
    "content",
    "content_base64",
}


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("", ""),
        ("4", "4"),
        ("417", "417"),
        ("4170", "417-0"),
        ("417093552", "417-093-552"),
        ("417-093-552", "417-093-552"),
        ("417 093 552", "417-093-552"),
        ("4170935521", "4170-935-521"),  # a relay's wider first group
        ("41709355219", "41709-355-219"),
        ("417093552199999", "41709-355-219"),  # no more than a code holds
        ("41x7", "417"),
    ],
)
def test_digits_are_grouped_as_the_customer_reads_them(typed: str, shown: str) -> None:
    assert grouped_digits(typed) == shown


@pytest.mark.parametrize(
    ("argv", "loud", "rest"),
    [
        (["connect", "-v", "HOST:1"], True, ["connect", "HOST:1"]),
        (["-v", "connect"], True, ["connect"]),
        (["keys", "show", "--verbose"], True, ["keys", "show"]),
        (["connect", "HOST:1"], False, ["connect", "HOST:1"]),
        (["verify", "--", "-v"], False, ["verify", "--", "-v"]),  # after --: a file's name
        (["connect", "-vv"], False, ["connect", "-vv"]),  # not ours: typer says so
    ],
)
def test_verbose_is_taken_wherever_it_stands(argv: list[str], loud: bool, rest: list[str]) -> None:
    assert _take_verbose(argv) == (loud, rest)


def test_scope_completion_knows_every_scope() -> None:
    assert tuple(s.value for s in Scope) == SCOPES
    assert complete_scope("") == list(SCOPES)
    assert complete_scope("d") == ["diagnostics"]
    assert complete_scope("x") == []


def _json(**fields: Any) -> dict[str, Any]:
    return OperationResult(command="run x", name="run", **fields).to_json()


def test_every_result_has_the_same_keys() -> None:
    shapes = [
        _json(status="ok", result={"exit_status": 0}, stdout=b"hi\n"),
        _json(status="failed", result={"exit_status": 2}, stderr=b"\xff\xfe"),
        _json(status="refused", error="refused", message="refused: not allowed"),
    ]
    for shape in shapes:
        assert shape.keys() == KEYS
    ok, failed, refused = shapes
    assert ok["error"] is None and ok["stdout"] == "hi\n" and ok["stderr"] is None
    assert failed["error"] == {"code": "exit-status", "message": "exit status 2"}
    assert failed["stderr"] is None and failed["stderr_base64"] == "//4="
    assert refused["error"] == {"code": "refused", "message": "refused: not allowed"}
    assert refused["result"] is None and refused["exit_status"] is None


def test_error_lines_name_the_error() -> None:
    wrong = _error_line(WrongCode("wrong", tries_left=2))
    assert wrong["exit_code"] == 3 and wrong["type"] == "error"
    assert wrong["error"] == {
        "code": "wrong-code",
        "message": "wrong",
        "hint": WrongCode("x", tries_left=0).hint,
        "tries_left": 2,
    }
    assert _error_line(CodeExpired("gone"))["error"]["code"] == "expired"
    assert _error_line(TransportError("down"))["error"]["code"] == "network"
    usage = _error_line(UsageError("bad", hint="fix it"))
    assert usage["error"] == {
        "code": "usage",
        "message": "bad",
        "hint": "fix it",
        "tries_left": None,
    }
