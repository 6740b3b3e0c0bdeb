"""The four consent messages, as compact JSON, parsed strictly.

Every message is one JSON object of at most 16 KiB with a version ``"v": 1``
and a ``"type"``. Parsing refuses, with a :class:`MessageError`, anything
that is not exactly right: oversized text, invalid JSON, duplicate keys,
floats, NaN, deep nesting, unknown or missing fields, wrong types (``true``
is not a number here), non-canonical base64, a wrong length for a PAKE
message or a MAC, an unknown scope, and names, emails or tickets with
control or invisible characters (they are shown to the customer, so no
terminal escapes, bidi overrides or zero-width tricks).

Formats (docs/consent.md has the full exchange; fields in [] are optional)::

    agent, round 1:   {"v":1,"type":"pake","pake":B64[,"previous":B64][,"nonce":B64]}
    technician:       {"v":1,"type":"response","pake":B64,"key":B64,"name":S,"email":S,
                       "ticket":S,"scopes":[S...],"code_mac":B64,"mac":B64,"sig":B64
                       [,"previous_pake":B64,"previous_mac":B64]}
    agent, round 2:   {"v":1,"type":"confirm","granted":[S...],"mac":B64}
    agent, instead:   {"v":1,"type":"refused","reason":S,"tries_left":N[,"detail":S]}

``nonce`` is there when the agent accepts grants (toolkit.consent._grant has
the grant's own messages); ``detail`` says why a grant was refused.

``previous`` is the agent's SPAKE2 message keyed with the code the current
one replaced; the technician answers it (``previous_*``) exactly when it is
there, so that an old code is recognised as old instead of costing the new
one a try.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, NoReturn

from toolkit.consent._approval import Scope, scope_names
from toolkit.consent._confirm import MAC_LENGTH
from toolkit.consent._pake import MESSAGE_LENGTH
from toolkit.consent.errors import NOTICE_ERRORS
from toolkit.errors import SignatureError
from toolkit.identity.keys import load_public
from toolkit.unique_json import DuplicateName, unique_names

VERSION = 1
#: The notice's reason for a refused grant; its detail says which refusal.
GRANT_REFUSED = "grant-refused"
MAX_MESSAGE_BYTES = 16 * 1024
MAX_KEY_BYTES = 8 * 1024
MAX_SIG_BYTES = 8 * 1024
MAX_NAME = 128
MAX_EMAIL = 254
MAX_TICKET = 128
MAX_TRIES = 1000
#: The agent's nonce for a grant's proof (toolkit.consent._grant).
NONCE_LENGTH = 32
#: A notice's detail: why a grant was refused, printable.
MAX_DETAIL = 512

_FORBIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+")


class MessageError(ValueError):
    """A consent message is malformed; the text says how (never what it held)."""


def _bad(text: str) -> NoReturn:
    raise MessageError(text)


def check_label(value: object, what: str, max_len: int, *, email: bool = False) -> str:
    """A name, email or ticket that is safe to show: printable, trimmed, not too long."""
    if not isinstance(value, str):
        _bad(f"the {what} is not a string")
    if not value or len(value) > max_len:
        _bad(f"the {what} is empty or longer than {max_len} characters")
    if value != value.strip():
        _bad(f"the {what} has leading or trailing spaces")
    for ch in value:
        category = unicodedata.category(ch)
        if category in _FORBIDDEN or (category == "Zs" and ch != " "):
            _bad(f"the {what} holds a control or invisible character")
    if email and not _EMAIL.fullmatch(value):
        _bad(f"the {what} is not an email address")
    return value


# --- decoding -------------------------------------------------------------


def _no_float(_: str) -> NoReturn:
    _bad("numbers here are integers")


def _small_int(text: str) -> int:
    if len(text.lstrip("-")) > 6:
        _bad("a number is too large")
    return int(text)


def _load(
    text: object, kinds: tuple[str, ...], limit: int = MAX_MESSAGE_BYTES
) -> tuple[str, dict[str, object]]:
    if not isinstance(text, str):
        _bad("the message is not text")
    if len(text) > limit or len(text.encode("utf-8", "replace")) > limit:
        _bad(f"the message is larger than {limit} bytes")
    try:
        obj = json.loads(
            text,
            object_pairs_hook=unique_names,
            parse_float=_no_float,
            parse_int=_small_int,
            parse_constant=_no_float,
        )
    except RecursionError:
        _bad("the message is nested too deeply")
    except MessageError:
        raise
    except DuplicateName:
        _bad("a field appears twice")
    except ValueError:
        _bad("the message is not valid JSON")
    if not isinstance(obj, dict):
        _bad("the message is not a JSON object")
    version = obj.get("v")
    if type(version) is not int or version != VERSION:
        _bad("the message has an unsupported version")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in kinds:
        _bad("the message is not of an expected type")
    return kind, obj


def _fields(obj: dict[str, object], *names: str, optional: tuple[str, ...] = ()) -> None:
    expected = {"v", "type", *names}
    if set(obj) - expected - set(optional):
        _bad("the message has an unknown field")
    if expected - set(obj):
        _bad("the message lacks a field")


def _int(obj: dict[str, object], name: str, low: int, high: int) -> int:
    value = obj[name]
    if type(value) is not int or not low <= value <= high:
        _bad(f"the field {name} is not a number from {low} to {high}")
    return value


def _b64(
    obj: dict[str, object], name: str, *, exact: int | None = None, limit: int | None = None
) -> bytes:
    value = obj[name]
    if not isinstance(value, str):
        _bad(f"the field {name} is not a string")
    if limit is not None and len(value) > (limit + 2) // 3 * 4:
        _bad(f"the field {name} is too long")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        _bad(f"the field {name} is not base64")
    if base64.b64encode(raw).decode("ascii") != value:
        _bad(f"the field {name} is not canonical base64")
    if exact is not None and len(raw) != exact:
        _bad(f"the field {name} does not have {exact} bytes")
    if not raw:
        _bad(f"the field {name} is empty")
    return raw


def _scopes(obj: dict[str, object], name: str) -> frozenset[Scope]:
    value = obj[name]
    if not isinstance(value, list) or not 1 <= len(value) <= len(Scope):
        _bad(f"the field {name} is not a list of 1 to {len(Scope)} scopes")
    out: set[Scope] = set()
    for item in value:
        if not isinstance(item, str) or item not in {s.value for s in Scope}:
            _bad(f"the field {name} names an unknown scope")
        out.add(Scope(item))
    if len(out) != len(value):
        _bad(f"the field {name} names a scope twice")
    return frozenset(out)


# --- the messages ---------------------------------------------------------


@dataclass(frozen=True)
class PakeChallenge:
    """Agent, round 1: its SPAKE2 message, and one keyed with the replaced code if any."""

    pake: bytes
    previous: bytes | None = None
    #: The agent's nonce for a grant's proof, when it accepts grants.
    nonce: bytes | None = None

    def encode(self) -> str:
        fields: dict[str, object] = {"type": "pake", "pake": _enc(self.pake)}
        if self.previous is not None:
            fields["previous"] = _enc(self.previous)
        if self.nonce is not None:
            fields["nonce"] = _enc(self.nonce)
        return _dump(fields)


@dataclass(frozen=True)
class Notice:
    """Agent, instead of a challenge: why the handshake was refused."""

    reason: str
    tries_left: int
    #: Why a grant was refused: "<REFUSAL>: <sentence>", printable (grant-refused only).
    detail: str | None = None

    def encode(self) -> str:
        fields: dict[str, object] = {
            "type": "refused",
            "reason": self.reason,
            "tries_left": self.tries_left,
        }
        if self.detail is not None:
            fields["detail"] = self.detail
        return _dump(fields)


@dataclass(frozen=True)
class Confirm:
    """Agent, round 2: the scopes granted and the agent's confirmation MAC."""

    granted: frozenset[Scope]
    mac: bytes

    def encode(self) -> str:
        return _dump(
            {"type": "confirm", "granted": scope_names(self.granted), "mac": _enc(self.mac)}
        )


@dataclass(frozen=True)
class Response:
    """Technician, round 1: everything the agent checks and the customer is shown."""

    pake: bytes
    key: bytes
    name: str
    email: str
    ticket: str
    scopes: frozenset[Scope]
    code_mac: bytes
    mac: bytes
    sig: bytes
    #: The answer to the challenge's ``previous`` PAKE message: (pake, mac), or None.
    previous: tuple[bytes, bytes] | None = None

    def encode(self) -> str:
        fields: dict[str, object] = {
            "type": "response",
            "pake": _enc(self.pake),
            "key": _enc(self.key),
            "name": self.name,
            "email": self.email,
            "ticket": self.ticket,
            "scopes": scope_names(self.scopes),
            "code_mac": _enc(self.code_mac),
            "mac": _enc(self.mac),
            "sig": _enc(self.sig),
        }
        if self.previous is not None:
            fields["previous_pake"] = _enc(self.previous[0])
            fields["previous_mac"] = _enc(self.previous[1])
        return _dump(fields)


def _enc(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _dump(fields: dict[str, object]) -> str:
    return json.dumps({"v": VERSION, **fields}, separators=(",", ":"), ensure_ascii=True)


def _notice(obj: dict[str, object]) -> Notice:
    _fields(obj, "reason", "tries_left", optional=("detail",))
    reason = obj["reason"]
    if not isinstance(reason, str) or (reason not in NOTICE_ERRORS and reason != GRANT_REFUSED):
        _bad("the notice gives an unknown reason")
    detail = None
    if "detail" in obj:
        detail = check_label(obj["detail"], "detail", MAX_DETAIL)
    return Notice(reason, _int(obj, "tries_left", 0, MAX_TRIES), detail)


@dataclass(frozen=True)
class GrantsChallenge:
    """Agent, round 1, when it takes grants and no code: the nonce a grant's proof covers."""

    nonce: bytes

    def encode(self) -> str:
        return _dump({"type": "grants", "nonce": _enc(self.nonce)})


def decode_challenge(text: object) -> PakeChallenge | GrantsChallenge | Notice:
    """The agent's round-1 instruction."""
    kind, obj = _load(text, ("pake", "grants", "refused"))
    if kind == "refused":
        return _notice(obj)
    if kind == "grants":
        _fields(obj, "nonce")
        return GrantsChallenge(_b64(obj, "nonce", exact=NONCE_LENGTH))
    _fields(obj, "pake", optional=("previous", "nonce"))
    previous = _b64(obj, "previous", exact=MESSAGE_LENGTH) if "previous" in obj else None
    nonce = _b64(obj, "nonce", exact=NONCE_LENGTH) if "nonce" in obj else None
    return PakeChallenge(_b64(obj, "pake", exact=MESSAGE_LENGTH), previous, nonce)


def decode_confirm(text: object) -> Confirm | Notice:
    """The agent's round-2 instruction."""
    kind, obj = _load(text, ("confirm", "refused"))
    if kind == "refused":
        return _notice(obj)
    _fields(obj, "granted", "mac")
    return Confirm(_scopes(obj, "granted"), _b64(obj, "mac", exact=MAC_LENGTH))


def technician_claims(obj: dict[str, object]) -> dict[str, Any]:
    """The fields every round-1 answer carries, code's or grant's, checked alike: the
    technician's key, name, email and ticket, and the scopes asked for."""
    key = _b64(obj, "key", limit=MAX_KEY_BYTES)
    try:
        load_public(key)
    except SignatureError:
        _bad("the field key is not an SSH public key toolkit can use")
    return {
        "key": key,
        "name": check_label(obj["name"], "name", MAX_NAME),
        "email": check_label(obj["email"], "email", MAX_EMAIL, email=True),
        "ticket": check_label(obj["ticket"], "ticket", MAX_TICKET),
        "scopes": _scopes(obj, "scopes"),
    }


def decode_response(text: object) -> Response:
    """The technician's round-1 answer."""
    _, obj = _load(text, ("response",))
    _fields(
        obj,
        *("pake", "key", "name", "email", "ticket", "scopes", "code_mac", "mac", "sig"),
        optional=("previous_pake", "previous_mac"),
    )
    previous = None
    if "previous_pake" in obj or "previous_mac" in obj:
        if not ("previous_pake" in obj and "previous_mac" in obj):
            _bad("the message has previous_pake or previous_mac without the other")
        previous = (
            _b64(obj, "previous_pake", exact=MESSAGE_LENGTH),
            _b64(obj, "previous_mac", exact=MAC_LENGTH),
        )
    return Response(
        pake=_b64(obj, "pake", exact=MESSAGE_LENGTH),
        **technician_claims(obj),
        code_mac=_b64(obj, "code_mac", exact=MAC_LENGTH),
        mac=_b64(obj, "mac", exact=MAC_LENGTH),
        sig=_b64(obj, "sig", limit=MAX_SIG_BYTES),
        previous=previous,
    )


__all__ = [
    "GRANT_REFUSED",
    "MAX_DETAIL",
    "MAX_MESSAGE_BYTES",
    "NONCE_LENGTH",
    "VERSION",
    "Confirm",
    "GrantsChallenge",
    "MessageError",
    "Notice",
    "PakeChallenge",
    "Response",
    "check_label",
    "decode_challenge",
    "decode_confirm",
    "decode_response",
    "technician_claims",
]
