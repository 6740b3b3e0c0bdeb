"""`diag NAME -p KEY=VALUE` and `fix NAME --step STEP` at the prompt, and on the wire."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolkit.errors import UsageError
from toolkit.protocol import ProtocolError, parse_request
from toolkit.session.commands import help_text, parse


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("diag disk", {"name": "disk"}),
        ("diag du -p path=/var/log", {"name": "du", "params": {"path": "/var/log"}}),
        ("diag du -ppath=/var -p n=3", {"name": "du", "params": {"path": "/var", "n": "3"}}),
        ("diag du --param path=/v", {"name": "du", "params": {"path": "/v"}}),
        ("diag x -p 'q=a b;c'", {"name": "x", "params": {"q": "a b;c"}}),  # the agent judges
        ("diag x -p k=", {"name": "x", "params": {"k": ""}}),
        ("fix f --step check", {"name": "f", "step": "check"}),
        ("fix f --step=rollback -p u=a", {"name": "f", "step": "rollback", "params": {"u": "a"}}),
        ("fix -p u=a f", {"name": "f", "params": {"u": "a"}}),
        ("fix -- -f", {"name": "-f"}),
    ],
)
def test_parameters_and_steps_parse(line: str, args: dict[str, Any]) -> None:
    command = parse(line)
    assert command is not None and command.args == args


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("diag x -p a=1 -p a=2", "-p a is given twice"),
        ("diag x -p novalue", "-p takes KEY=VALUE, not 'novalue'"),
        ("diag x -p", "-p takes KEY=VALUE"),
        ("diag x -p =v", "-p takes KEY=VALUE"),
        ("fix x --step nope", "--step takes check, apply, verify or rollback, not 'nope'"),
        ("fix x --step check --step apply", "--step is given twice"),
        ("diag x --step check", "diag has no option --step"),
        ("diag a b", "Usage: diag NAME"),
        ("fix", "Usage: fix NAME"),
        ("diag x " + " ".join(f"-p k{i}=v" for i in range(17)), "at most 16 parameters"),
    ],
)
def test_usage_errors(line: str, said: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(line)
    text = caught.value.message + (caught.value.hint or "")
    assert said in text


def test_help_names_the_options() -> None:
    assert "-p KEY=VALUE" in help_text("diag")
    assert "--step check|apply|verify|rollback" in help_text("fix")


def request(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "id": 3, **fields}).encode()


def test_the_wire_takes_step_params_and_a_declaration() -> None:
    parsed = parse_request(
        request(op="fix", name="f", step="verify", params={"u": "a"}, declaration={"k": 1})
    )
    assert parsed.args == {
        "name": "f",
        "step": "verify",
        "params": {"u": "a"},
        "declaration": {"k": 1},
    }
    assert parse_request(request(op="diag", name="d", params={})).args["params"] == {}


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"op": "diag", "name": "d", "step": "check"}, "diag takes exactly: name"),
        ({"op": "fix", "name": "f", "step": "run"}, "step must be one of"),
        ({"op": "fix", "name": "f", "step": 1}, "step must be a string"),
        ({"op": "diag", "name": "d", "params": ["a"]}, "params must be an object"),
        ({"op": "diag", "name": "d", "params": {"a": 1}}, "params must be at most 16 strings"),
        (
            {"op": "diag", "name": "d", "params": {f"k{i}": "v" for i in range(17)}},
            "at most 16",
        ),
        ({"op": "diag", "name": "d", "declaration": "x"}, "declaration must be an object"),
    ],
)
def test_the_wire_refuses_bad_procedure_fields(fields: dict[str, Any], said: str) -> None:
    with pytest.raises(ProtocolError, match=said):
        parse_request(request(**fields))
