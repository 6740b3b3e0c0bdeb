"""The grant: consent given in advance, as a small signed text (docs/grants.md).

A grant is a BODY of ``key: value`` lines in a fixed order, followed by
OpenSSH's armoured SSHSIG over exactly those bytes (namespace
``toolkit-grant``). Splitting the file at the ``-----BEGIN SSH SIGNATURE-----``
line gives what ``ssh-keygen -Y verify`` needs, so a grant can be checked
without toolkit.

Parsing is strict, in the spirit of a signed document: anything that is not
exactly the format (an unknown or misplaced key, a duplicate, a CR, a control
or invisible character, a trailing space, a loose time) is refused with a
:class:`GrantError` naming the line, never guessed at. Parsing does not
check the signature; :func:`toolkit.grants.check.check_grant` does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from toolkit.errors import SignatureError, UsageError
from toolkit.identity import sshsig
from toolkit.identity.keys import blob_from_line, is_certificate
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.identity.signer import Signer

NAMESPACE = "toolkit-grant"
MAX_GRANT_BYTES = 48 * 1024
#: The hash of the signature, as ``ssh-keygen -Y sign`` makes it by default.
HASH = "sha512"
MAGIC = "toolkit-grant v1"
KINDS = ("fix", "diagnostic")
SCOPES = ("diagnostics", "fixes")
MAX_USES = 100_000
#: A principal (issuer or technician) is one printable word of at most this many characters.
MAX_PRINCIPAL = 256

_BEGIN = b"-----BEGIN SSH SIGNATURE-----\n"
_ID = re.compile(r"g-[a-z2-7]{26}")
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_SHA256 = re.compile(r"sha256:([0-9a-f]{64})")
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
_HOST_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_USES = re.compile(r"[1-9][0-9]{0,5}")
_PROCEDURE_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")  # toolkit.plugins.declaration.NAME

# (key, how many times: "1" once, "+" once or more, "*" any number), in file order.
_LAYOUT = (
    ("id", "1"),
    ("issued", "1"),
    ("issuer", "1"),
    ("technician", "1"),
    ("procedure", "*"),
    ("scope", "*"),
    ("host", "+"),
    ("ticket", "1"),
    ("not-before", "1"),
    ("not-after", "1"),
    ("uses", "1"),
)
_ORDER = {key: i for i, (key, _) in enumerate(_LAYOUT)}


_T = TypeVar("_T")
_Check = Callable[[str], _T]


class GrantError(UsageError):
    """A file that is not a well-formed grant (exit 2).

    A grant is a small text in a fixed format (docs/grants.md); toolkit
    refuses anything else rather than guess what was meant. If the file was
    edited by hand after it was issued, its signature no longer holds
    anyway: ask the issuer for a new grant (toolkit grant issue).
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # Messages start with where ("the grant file X, line 3: ..."): a sentence all the same.
        super().__init__(message[:1].upper() + message[1:], hint=hint)


class _Bad(ValueError):
    """One value that is not what its key takes; the caller says where."""


@dataclass(frozen=True)
class GrantedProcedure:
    """One procedure a grant names, with the digest of the declaration it allows."""

    kind: str  # "fix" | "diagnostic" (toolkit.plugins.Kind values)
    name: str
    sha256: str  # 64 lowercase hex: toolkit.plugins.declaration.Procedure.sha256

    def line(self) -> str:
        return f"{self.kind} {self.name} sha256:{self.sha256}"


@dataclass(frozen=True)
class Grant:
    """A parsed grant. Build one with :meth:`parse`, :func:`load` or :func:`issue`."""

    id: str
    issued: datetime
    issuer: str
    technician: str  # a principal, or "ssh-ed25519 AAAA..." (a key line without comment)
    procedures: tuple[GrantedProcedure, ...]
    scopes: frozenset[str]  # a subset of {"diagnostics", "fixes"}
    hosts: tuple[str, ...]  # "SHA256:..." fingerprints and/or inventory names
    ticket: str
    not_before: datetime
    not_after: datetime
    uses: int
    body: bytes  # the exact signed bytes
    signature: bytes  # the SSHSIG blob (de-armoured)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the whole file (body and armour), as :meth:`to_bytes` gives it."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def technician_key(self) -> bytes | None:
        """The technician's key blob when the grant names a key, not a principal."""
        if " " not in self.technician:
            return None
        return blob_from_line(self.technician)

    @property
    def signer_key(self) -> bytes:
        """The public key (or certificate) blob inside the signature."""
        return sshsig.SSHSig.from_bytes(self.signature).public_key

    def to_bytes(self) -> bytes:
        """The grant file: the body, then the armoured signature."""
        return self.body + sshsig.armor(self.signature).encode("ascii")

    def names(self, kind: str, name: str) -> GrantedProcedure | None:
        """The procedure line naming ``kind`` ``name``, if the grant has one."""
        for procedure in self.procedures:
            if procedure.kind == kind and procedure.name == name:
                return procedure
        return None

    @classmethod
    def parse(cls, data: bytes, source: str = "the grant") -> Grant:
        """A grant from the bytes of a grant file; GrantError naming the line otherwise."""
        return _parse(data, printable(source, 200))


# -- the values --------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """A time as a grant writes it: UTC, to the second, with Z."""
    if moment.tzinfo is None:
        raise _Bad("a time needs a time zone")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """A grant's time (``2026-12-03T18:00:00Z``) as an aware UTC datetime."""
    if not _TIME.fullmatch(text):
        raise _Bad("a time is written like 2026-12-03T18:00:00Z (UTC, to the second)")
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise _Bad("no such date or time") from None


def new_id() -> str:
    """A fresh grant id: ``g-`` and 26 base32 characters, 130 random bits."""
    bits = secrets.randbits(130)
    return "g-" + "".join(_ID_ALPHABET[(bits >> (5 * i)) & 31] for i in range(25, -1, -1))


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise _Bad("a grant id is g- and 26 characters of a-z and 2-7")
    return value


def _check_principal(value: str) -> str:
    if not value or len(value) > MAX_PRINCIPAL:
        raise _Bad(f"a principal is 1 to {MAX_PRINCIPAL} characters")
    if any(c.isspace() or not c.isprintable() or c == "," for c in value):
        raise _Bad("a principal has no spaces, commas or invisible characters")
    return value


def _check_technician(value: str) -> str:
    """A principal, or a public key line of exactly two words (type and base64)."""
    if " " not in value:
        return _check_principal(value)
    parts = value.split(" ")
    if len(parts) != 2:
        raise _Bad("a technician's key is a key type and its base64, without a comment")
    try:
        blob = blob_from_line(value)
    except SignatureError as exc:
        raise _Bad(exc.message.rstrip(".").lower()) from None
    if base64.b64encode(blob).decode("ascii") != parts[1]:
        raise _Bad("the key's base64 is not in its canonical form")
    if is_certificate(blob):
        raise _Bad("name the technician's key, not a certificate (or name a principal)")
    return value


def _check_procedure(value: str) -> GrantedProcedure:
    parts = value.split(" ")
    if len(parts) != 3:
        raise _Bad("a procedure is KIND NAME sha256:HEX, like fix restart-unit sha256:...")
    kind, name, digest = parts
    if kind not in KINDS:
        raise _Bad(f"a procedure's kind is fix or diagnostic, not {kind!r}")
    if not _PROCEDURE_NAME.fullmatch(name):
        raise _Bad("a procedure's name is lower-case-with-dashes, 1 to 64 characters")
    matched = _SHA256.fullmatch(digest)
    if not matched:
        raise _Bad("a procedure's digest is sha256: and 64 lower-case hex digits")
    return GrantedProcedure(kind, name, matched.group(1))


def _check_scope(value: str) -> str:
    if value == "shell":
        raise _Bad("a shell is never granted in advance: only diagnostics or fixes")
    if value not in SCOPES:
        raise _Bad("a scope is diagnostics or fixes")
    return value


def _check_host(value: str) -> str:
    if value.startswith("SHA256:"):
        if not _FINGERPRINT.fullmatch(value):
            raise _Bad("a host key fingerprint is SHA256: and 43 base64 characters")
        try:
            base64.b64decode(value[7:] + "=", validate=True)
        except (binascii.Error, ValueError):
            raise _Bad("the fingerprint is not valid base64") from None
        return value
    if not _HOST_NAME.fullmatch(value):
        raise _Bad("a host is SHA256:<fingerprint> or a name of 1 to 64 of A-Z a-z 0-9 . _ -")
    return value


def _check_ticket(value: str) -> str:
    from toolkit.tickets.base import check_ticket_id

    try:
        return check_ticket_id(value)
    except UsageError:
        raise _Bad("a ticket id is 1 to 64 of letters, digits, '.', '_', '-' or '#'") from None


def _check_uses(value: str) -> int:
    if not _USES.fullmatch(value) or int(value) > MAX_USES:
        raise _Bad(f"uses is a whole number from 1 to {MAX_USES}")
    return int(value)


# -- parsing ------------------------------------------------------------------------------


def _split(data: bytes, source: str) -> tuple[bytes, bytes]:
    """The body and the armoured signature."""
    if len(data) > MAX_GRANT_BYTES:
        raise GrantError(f"{source} is larger than {MAX_GRANT_BYTES // 1024} KiB: not a grant.")
    at = data.find(b"\n" + _BEGIN)
    if not data.startswith(MAGIC.encode() + b"\n"):
        raise GrantError(f"{source} is not a toolkit grant: it does not start with {MAGIC!r}.")
    if at < 0:
        raise GrantError(f"{source} has no signature: no -----BEGIN SSH SIGNATURE----- line.")
    return data[: at + 1], data[at + 1 :]


def _text_lines(body: bytes, source: str) -> list[str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = body[: exc.start].count(b"\n") + 1
        raise GrantError(f"{source}, line {where}: it is not UTF-8 text.") from None
    lines = text[:-1].split("\n")  # the body ends with "\n" (see _split)
    for n, line in enumerate(lines, 1):
        if "\r" in line:
            raise GrantError(f"{source}, line {n}: a grant has LF line ends only, no CR.")
        if not line.isprintable():
            raise GrantError(
                f"{source}, line {n}: it holds a control or invisible character "
                f"({printable(line, 80)})."
            )
        if line != line.strip():
            raise GrantError(f"{source}, line {n}: leading or trailing spaces.")
    return lines


def _parse(data: bytes, source: str) -> Grant:
    body, armoured = _split(data, source)
    lines = _text_lines(body, source)
    values: dict[str, list[tuple[int, str]]] = {key: [] for key, _ in _LAYOUT}
    last = -1
    for n, line in enumerate(lines[1:], 2):
        key, sep, value = line.partition(": ")
        if not sep or key not in _ORDER:
            word = line.partition(":")[0]
            if word in _ORDER:
                raise GrantError(f"{source}, line {n}: write it as '{word}: VALUE'.")
            raise GrantError(f"{source}, line {n}: '{printable(word, 40)}' is not a grant's key.")
        order = _ORDER[key]
        if order < last:
            raise GrantError(f"{source}, line {n}: {key} comes too late (see docs/grants.md).")
        if order == last and _LAYOUT[order][1] == "1":
            raise GrantError(f"{source}, line {n}: a second {key} line.")
        last = order
        values[key].append((n, value))
    for key, count in _LAYOUT:
        if count != "*" and not values[key]:
            raise GrantError(f"{source} has no {key} line.")
    if not values["procedure"] and not values["scope"]:
        raise GrantError(f"{source} names no procedure and no scope: it grants nothing.")

    def one(key: str, check: _Check[_T]) -> _T:
        n, value = values[key][0]
        return _field(source, n, key, value, check)

    def many(key: str, check: _Check[_T]) -> list[_T]:
        found: list[_T] = []
        for n, value in values[key]:
            item = _field(source, n, key, value, check)
            if item in found:
                raise GrantError(f"{source}, line {n}: the same {key} twice.")
            found.append(item)
        return found

    procedures = many("procedure", _check_procedure)
    named: set[tuple[str, str]] = set()
    for (n, _), p in zip(values["procedure"], procedures, strict=True):
        if (p.kind, p.name) in named:
            raise GrantError(f"{source}, line {n}: the {p.kind} {p.name} twice.")
        named.add((p.kind, p.name))
    not_before = one("not-before", parse_time)
    not_after = one("not-after", parse_time)
    if not_after <= not_before:
        n = values["not-after"][0][0]
        raise GrantError(f"{source}, line {n}: not-after must be later than not-before.")
    signature = _signature(armoured, source, len(lines) + 1)
    return Grant(
        id=one("id", _check_id),
        issued=one("issued", parse_time),
        issuer=one("issuer", _check_principal),
        technician=one("technician", _check_technician),
        procedures=tuple(procedures),
        scopes=frozenset(many("scope", _check_scope)),
        hosts=tuple(many("host", _check_host)),
        ticket=one("ticket", _check_ticket),
        not_before=not_before,
        not_after=not_after,
        uses=one("uses", _check_uses),
        body=body,
        signature=signature,
    )


def _signature(armoured: bytes, source: str, line: int) -> bytes:
    """The SSHSIG blob, from armour exactly as ssh-keygen writes it (so the file's
    digest is the same however it was made)."""
    try:
        blob = sshsig.dearmor(armoured)
        sshsig.SSHSig.from_bytes(blob)
    except SignatureError as exc:
        why = exc.message.rstrip(".")
        raise GrantError(f"{source}, line {line}: the signature is malformed ({why}).") from None
    if sshsig.armor(blob).encode("ascii") != armoured:
        raise GrantError(
            f"{source}, line {line}: the signature armour is not as ssh-keygen writes it "
            "(70-column lines, LF, nothing after the END line)."
        )
    return blob


def _field(source: str, n: int, key: str, value: str, check: _Check[_T]) -> _T:
    try:
        return check(value)
    except _Bad as exc:
        raise GrantError(f"{source}, line {n} ({key}): {exc}.") from None


# -- writing ------------------------------------------------------------------------------


def render_body(
    *,
    id: str,
    issued: datetime,
    issuer: str,
    technician: str,
    procedures: Sequence[GrantedProcedure],
    scopes: Iterable[str],
    hosts: Sequence[str],
    ticket: str,
    not_before: datetime,
    not_after: datetime,
    uses: int,
) -> bytes:
    """The body a grant with these values has (not checked: :func:`issue` checks)."""
    ordered_scopes = [s for s in SCOPES if s in set(scopes)] + sorted(set(scopes) - set(SCOPES))
    lines = [
        MAGIC,
        f"id: {id}",
        f"issued: {format_time(issued)}",
        f"issuer: {issuer}",
        f"technician: {technician}",
        *(f"procedure: {p.line()}" for p in procedures),
        *(f"scope: {s}" for s in ordered_scopes),
        *(f"host: {h}" for h in hosts),
        f"ticket: {ticket}",
        f"not-before: {format_time(not_before)}",
        f"not-after: {format_time(not_after)}",
        f"uses: {uses}",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def issue(
    signer: Signer,
    *,
    issuer: str,
    technician: str,
    procedures: Sequence[GrantedProcedure],
    scopes: Iterable[str],
    hosts: Sequence[str],
    ticket: str,
    not_before: datetime,
    not_after: datetime,
    uses: int,
    now: datetime | None = None,
) -> Grant:
    """A new grant with a fresh id, signed by ``signer`` (SSHSIG, namespace toolkit-grant).

    Every value is checked as a parser would check it (GrantError naming the
    value); a window that has already ended is refused too.
    """
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    values = {
        "issuer": (issuer, _check_principal),
        "technician": (technician, _check_technician),
        "ticket": (ticket, _check_ticket),
    }
    for key, (value, check) in values.items():
        _given(key, value, check)
    for p in procedures:
        _given("procedure", p.line(), _check_procedure)
    scope_list = list(scopes)
    for s in scope_list:
        _given("scope", s, _check_scope)
    for h in hosts:
        _given("host", h, _check_host)
    if not procedures and not scope_list:
        raise GrantError("A grant must name at least one procedure or scope.")
    if not hosts:
        raise GrantError("A grant must name at least one host.")
    if not 1 <= uses <= MAX_USES:
        raise GrantError(f"A grant's uses is a whole number from 1 to {MAX_USES}, not {uses}.")
    for key, moment_given in (("not-before", not_before), ("not-after", not_after)):
        if moment_given.tzinfo is None:
            raise GrantError(f"The grant's {key} time needs a time zone.")
    start, end = not_before.replace(microsecond=0), not_after.replace(microsecond=0)
    # A not-after in the past is said as such, even when it is also before not-before
    # (which defaults to now): that is the mistake made.
    if end <= moment:
        raise GrantError(f"The grant's not-after ({format_time(end)}) has already passed.")
    if end <= start:
        raise GrantError("The grant's not-after must be later than its not-before.")
    body = render_body(
        id=new_id(),
        issued=moment,
        issuer=issuer,
        technician=technician,
        procedures=procedures,
        scopes=scope_list,
        hosts=hosts,
        ticket=ticket,
        not_before=start,
        not_after=end,
        uses=uses,
    )
    signature = sshsig.sign(signer, body, NAMESPACE, HASH)
    # Through the parser: what issue() writes is exactly what every reader accepts.
    return Grant.parse(body + signature.armor().encode("ascii"), "the new grant")


def _given(key: str, value: str, check: _Check[object]) -> None:
    try:
        check(value)
    except _Bad as exc:
        raise GrantError(f"The grant's {key} '{printable(value, 80)}' is refused: {exc}.") from None


def load(path: Path) -> Grant:
    """The grant in ``path``: a regular file of at most MAX_GRANT_BYTES; GrantError/UsageError."""
    from toolkit.inputs import read_regular

    data = read_regular(path, what="the grant file", limit=MAX_GRANT_BYTES)
    return Grant.parse(data, f"the grant file {path}")


__all__ = [
    "HASH",
    "MAX_GRANT_BYTES",
    "NAMESPACE",
    "Grant",
    "GrantError",
    "GrantedProcedure",
    "format_time",
    "issue",
    "load",
    "new_id",
    "parse_time",
    "render_body",
]
