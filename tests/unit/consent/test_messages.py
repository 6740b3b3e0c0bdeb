"""The consent messages: exact formats and a strict parser."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.consent.fakes import new_signer
from toolkit.consent import MAX_MESSAGE_BYTES, Scope
from toolkit.consent._messages import (
    Confirm,
    MessageError,
    Notice,
    PakeChallenge,
    Response,
    check_label,
    decode_challenge,
    decode_confirm,
    decode_response,
)

PAKE = b"A" + bytes(range(32))
MAC = bytes(range(32, 64))
KEY = new_signer().public_blob


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def response_fields(**changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "v": 1,
        "type": "response",
        "pake": b64(PAKE),
        "key": b64(KEY),
        "name": "Alice Tech",
        "email": "alice@example.com",
        "ticket": "T-1",
        "scopes": ["diagnostics"],
        "code_mac": b64(MAC),
        "mac": b64(MAC),
        "sig": b64(b"sshsig blob"),
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not _DROP}


_DROP = object()


def _noncanonical(raw: bytes) -> str:
    """Same bytes, but with the unused low bits of the last base64 digit set."""
    text = b64(raw)
    assert text.endswith("=") and not text.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(text[-2]) | 0b11
    odd = text[:-2] + alphabet[last] + "="
    assert base64.b64decode(odd) == raw and odd != text
    return odd


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def test_exact_formats() -> None:
    assert PakeChallenge(PAKE).encode() == dumps({"v": 1, "type": "pake", "pake": b64(PAKE)})
    assert Notice("wrong-code", 2).encode() == (
        '{"v":1,"type":"refused","reason":"wrong-code","tries_left":2}'
    )
    both = frozenset({Scope.SHELL, Scope.DIAGNOSTICS})
    assert Confirm(both, MAC).encode() == dumps(
        {"v": 1, "type": "confirm", "granted": ["diagnostics", "shell"], "mac": b64(MAC)}
    )
    resp = Response(PAKE, KEY, "Zoë", "z@example.com", "T-1", both, MAC, MAC, b"sig")
    text = resp.encode()
    assert text.isascii() and " " not in text.replace("Zo", "")  # compact, ASCII
    assert list(json.loads(text)) == [
        "v", "type", "pake", "key", "name", "email", "ticket", "scopes", "code_mac", "mac", "sig",
    ]  # fmt: skip
    assert decode_response(text) == resp
    # With the answer to a previous-code PAKE message, both of its fields come last.
    old = Response(PAKE, KEY, "Zoë", "z@example.com", "T-1", both, MAC, MAC, b"sig", (PAKE, MAC))
    assert list(json.loads(old.encode()))[-2:] == ["previous_pake", "previous_mac"]
    assert decode_response(old.encode()) == old
    assert PakeChallenge(PAKE, PAKE).encode() == dumps(
        {"v": 1, "type": "pake", "pake": b64(PAKE), "previous": b64(PAKE)}
    )


def test_round_trips() -> None:
    assert decode_challenge(PakeChallenge(PAKE).encode()) == PakeChallenge(PAKE)
    assert decode_challenge(PakeChallenge(PAKE, PAKE).encode()) == PakeChallenge(PAKE, PAKE)
    assert decode_challenge(Notice("burned", 0).encode()) == Notice("burned", 0)
    confirm = Confirm(frozenset({Scope.FIXES}), MAC)
    assert decode_confirm(confirm.encode()) == confirm
    assert decode_confirm(Notice("declined", 0).encode()) == Notice("declined", 0)


BAD_RESPONSES: dict[str, str] = {
    "empty": "",
    "not json": "hello",
    "truncated": dumps(response_fields())[:-1],
    "array": "[1,2]",
    "string": '"x"',
    "null": "null",
    "trailing data": dumps(response_fields()) + "{}",
    "oversized": dumps(response_fields(name="A" * 20)) + " " * MAX_MESSAGE_BYTES,
    "deep nesting": "[" * 5000 + "]" * 5000,
    "deep objects": '{"a":' * 3000 + "1" + "}" * 3000,
    "huge number": dumps(response_fields()).replace('"v":1', '"v":' + "9" * 5000),
    "float version": dumps(response_fields(v=1.0)),
    "exponent": dumps(response_fields()).replace('"v":1', '"v":1e0'),
    "NaN": dumps(response_fields()).replace('"v":1', '"v":NaN'),
    "Infinity": dumps(response_fields()).replace('"v":1', '"v":Infinity'),
    "true as version": dumps(response_fields(v=True)),
    "version 2": dumps(response_fields(v=2)),
    "no version": dumps(response_fields(v=_DROP)),
    "wrong type": dumps(response_fields(type="confirm")),
    "duplicate key": dumps(response_fields())[:-1] + ',"name":"Mallory"}',
    "unknown field": dumps(response_fields(extra=1)),
    "missing mac": dumps(response_fields(mac=_DROP)),
    "missing sig": dumps(response_fields(sig=_DROP)),
    "missing code_mac": dumps(response_fields(code_mac=_DROP)),
    "code_mac short": dumps(response_fields(code_mac=b64(MAC[:31]))),
    "previous_pake alone": dumps(response_fields(previous_pake=b64(PAKE))),
    "previous_mac alone": dumps(response_fields(previous_mac=b64(MAC))),
    "previous_pake short": dumps(
        response_fields(previous_pake=b64(PAKE[:-1]), previous_mac=b64(MAC))
    ),
    "previous_mac long": dumps(
        response_fields(previous_pake=b64(PAKE), previous_mac=b64(MAC + b"\x00"))
    ),
    "previous duplicated": dumps(response_fields(previous_pake=b64(PAKE), previous_mac=b64(MAC)))[
        :-1
    ]
    + f',"previous_mac":"{b64(MAC)}"}}',
    "name is a number": dumps(response_fields(name=5)),
    "name is a list": dumps(response_fields(name=["Alice"])),
    "scopes is a string": dumps(response_fields(scopes="diagnostics")),
    "scopes empty": dumps(response_fields(scopes=[])),
    "scope unknown": dumps(response_fields(scopes=["root"])),
    "scope twice": dumps(response_fields(scopes=["diagnostics", "diagnostics"])),
    "scope not a string": dumps(response_fields(scopes=[1])),
    "too many scopes": dumps(response_fields(scopes=["diagnostics"] * 4)),
    "pake not base64": dumps(response_fields(pake="!!!")),
    "pake base64 with spaces": dumps(response_fields(pake=b64(PAKE)[:4] + " " + b64(PAKE)[4:])),
    "mac non-canonical": dumps(response_fields(mac=_noncanonical(MAC))),
    "pake short": dumps(response_fields(pake=b64(PAKE[:-1]))),
    "pake long": dumps(response_fields(pake=b64(PAKE + b"\x00"))),
    "pake a number": dumps(response_fields(pake=7)),
    "mac short": dumps(response_fields(mac=b64(MAC[:31]))),
    "mac long": dumps(response_fields(mac=b64(MAC + b"\x00"))),
    "mac empty": dumps(response_fields(mac="")),
    "sig empty": dumps(response_fields(sig="")),
    "sig too large": dumps(response_fields(sig=b64(b"x" * 9000))),
    "key not a key": dumps(response_fields(key=b64(b"\x00\x00\x00\x07ssh-foo"))),
    "key garbage": dumps(response_fields(key=b64(b"garbage"))),
    "name empty": dumps(response_fields(name="")),
    "name too long": dumps(response_fields(name="A" * 129)),
    "name leading space": dumps(response_fields(name=" Alice")),
    "name with escape": dumps(response_fields(name="Alice\x1b[2J")),
    "name with newline": dumps(response_fields(name="Alice\nApproved: yes")),
    "name with bidi override": dumps(response_fields(name="Alice\u202etxt.exe")),
    "name with zero width": dumps(response_fields(name="Al\u200bice")),
    "name with lone surrogate": '{"v":1,"type":"response","name":"\\ud800"}',
    "name with nbsp": dumps(response_fields(name="Alice\u00a0Tech")),
    "email without at": dumps(response_fields(email="alice")),
    "email with space": dumps(response_fields(email="alice @example.com")),
    "ticket with tab": dumps(response_fields(ticket="T\t1")),
    "ticket with DEL": dumps(response_fields(ticket="T-1\x7f")),
}


@pytest.mark.parametrize("name", sorted(BAD_RESPONSES))
def test_malformed_responses_are_refused(name: str) -> None:
    with pytest.raises(MessageError) as info:
        decode_response(BAD_RESPONSES[name])
    assert "Alice" not in str(info.value)  # says what is wrong, never what it held


def test_good_response_parses() -> None:
    resp = decode_response(dumps(response_fields(name="Zoë O'Brien-Łukasz 山田")))
    assert resp.name == "Zoë O'Brien-Łukasz 山田"
    assert resp.scopes == frozenset({Scope.DIAGNOSTICS})


def test_not_text_is_refused() -> None:
    with pytest.raises(MessageError):
        decode_response(b"{}")


BAD_AGENT_MESSAGES: dict[str, str] = {
    "empty": "",
    "response as challenge": dumps(response_fields()),
    "confirm as challenge": Confirm(frozenset({Scope.FIXES}), MAC).encode(),
    "pake short": dumps({"v": 1, "type": "pake", "pake": b64(PAKE[:-1])}),
    "pake extra field": dumps({"v": 1, "type": "pake", "pake": b64(PAKE), "mac": b64(MAC)}),
    "previous short": dumps({"v": 1, "type": "pake", "pake": b64(PAKE), "previous": "QQ=="}),
    "pake twice": f'{{"v":1,"type":"pake","pake":"{b64(PAKE)}","pake":"{b64(PAKE)}"}}',
    "previous twice": dumps({"v": 1, "type": "pake", "pake": b64(PAKE), "previous": b64(PAKE)})[:-1]
    + f',"previous":"{b64(PAKE)}"}}',
    "notice reason twice": '{"v":1,"type":"refused","reason":"burned","reason":"used",'
    '"tries_left":0}',
    "type twice": f'{{"v":1,"type":"refused","type":"pake","pake":"{b64(PAKE)}"}}',
    "notice unknown reason": dumps(
        {"v": 1, "type": "refused", "reason": "rm -rf", "tries_left": 1}
    ),
    "notice negative tries": dumps(
        {"v": 1, "type": "refused", "reason": "wrong-code", "tries_left": -1}
    ),
    "notice bool tries": dumps(
        {"v": 1, "type": "refused", "reason": "wrong-code", "tries_left": True}
    ),
    "notice missing tries": dumps({"v": 1, "type": "refused", "reason": "burned"}),
}


@pytest.mark.parametrize("name", sorted(BAD_AGENT_MESSAGES))
def test_malformed_challenges_are_refused(name: str) -> None:
    with pytest.raises(MessageError):
        decode_challenge(BAD_AGENT_MESSAGES[name])


@pytest.mark.parametrize(
    "text",
    [
        PakeChallenge(PAKE).encode(),
        dumps({"v": 1, "type": "confirm", "granted": [], "mac": b64(MAC)}),
        dumps({"v": 1, "type": "confirm", "granted": ["root"], "mac": b64(MAC)}),
        dumps({"v": 1, "type": "confirm", "granted": ["fixes"], "mac": b64(MAC[:16])}),
        dumps({"v": 1, "type": "confirm", "granted": ["fixes"]}),
        # A granted list given twice would let a relay append the one it wants read.
        f'{{"v":1,"type":"confirm","granted":["fixes"],"granted":["shell"],"mac":"{b64(MAC)}"}}',
        f'{{"v":1,"type":"confirm","granted":["fixes"],"mac":"{b64(MAC)}","mac":"{b64(MAC)}"}}',
    ],
)
def test_malformed_confirmations_are_refused(text: str) -> None:
    with pytest.raises(MessageError):
        decode_confirm(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_message_error(text: str) -> None:
    for decode in (decode_response, decode_challenge, decode_confirm):
        with contextlib.suppress(MessageError):
            decode(text)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=20,
    )
)
def test_any_json_value_parses_or_raises_message_error(value: object) -> None:
    text = json.dumps(value)
    for decode in (decode_response, decode_challenge, decode_confirm):
        with contextlib.suppress(MessageError):
            decode(text)


def test_labels() -> None:
    assert check_label("Alice Tech", "name", 10) == "Alice Tech"
    with pytest.raises(MessageError):
        check_label("Alice Tech", "name", 5)
    with pytest.raises(MessageError):
        check_label("a\u2028b", "name", 10)
    assert check_label("a.b+c@x.example", "email", 50, email=True)
