"""OpenSSH allowed_signers files: who may sign, for which namespaces, when.

The same file serves ``toolkit verify`` and ``ssh-keygen -Y verify``, so the
rules are OpenSSH's (ssh-keygen(1), "ALLOWED SIGNERS"): principal patterns with
``*``, ``?`` and ``!``; ``cert-authority`` lines that trust user certificates
naming the principal; ``namespaces="..."`` patterns; ``valid-after`` and
``valid-before`` bounds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from toolkit.errors import SignatureError, UsageError
from toolkit.identity.keys import (
    PublicKey,
    blob_from_line,
    blob_of,
    fingerprint,
    load_identity,
    load_public,
)


class UntrustedSigner(SignatureError):
    """The signature is valid, but allowed_signers does not trust its key for this use."""


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
        re.DOTALL,
    )


def match_pattern_list(value: str, patterns: str) -> bool:
    """OpenSSH's match_pattern_list: any ``!pattern`` match refuses, else any match allows."""
    matched = False
    for raw in patterns.split(","):
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        if _pattern_regex(pattern).fullmatch(value):
            if negate:
                return False
            matched = True
    return matched


def _parse_time(value: str, lineno: int) -> datetime:
    utc = value.endswith("Z") or value.endswith("z")
    digits = value[:-1] if utc else value
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    if not digits.isdigit() or len(digits) not in formats:
        raise UsageError(f"allowed_signers line {lineno}: bad time {value!r}.")
    moment = datetime.strptime(digits, formats[len(digits)])
    return moment.replace(tzinfo=UTC) if utc else moment.astimezone()


def _tokens(line: str) -> list[str]:
    """Split on whitespace outside double quotes, as OpenSSH does for these lines."""
    tokens: list[str] = []
    current = ""
    quoted = False
    for c in line:
        if c == '"':
            quoted = not quoted
            current += c
        elif c.isspace() and not quoted:
            if current:
                tokens.append(current)
            current = ""
        else:
            current += c
    if current:
        tokens.append(current)
    return tokens


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


@dataclass(frozen=True)
class SignerEntry:
    lineno: int
    principals: str
    key_blob: bytes
    cert_authority: bool = False
    namespaces: str | None = None
    valid_after: datetime | None = None
    valid_before: datetime | None = None


def _parse_options(text: str, lineno: int) -> dict[str, str | None]:
    options: dict[str, str | None] = {}
    current = ""
    quoted = False
    for c in text + ",":
        if c == '"':
            quoted = not quoted
            current += c
        elif c == "," and not quoted:
            name, _, value = current.partition("=")
            options[name.lower()] = _unquote(value) if value else None
            current = ""
        else:
            current += c
    if quoted:
        raise UsageError(f"allowed_signers line {lineno}: unbalanced quotes in options.")
    return options


def parse_line(line: str, lineno: int) -> SignerEntry | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    tokens = _tokens(text)
    if len(tokens) < 3:
        raise UsageError(f"allowed_signers line {lineno}: needs principals and a key.")
    principals = _unquote(tokens[0])
    rest = tokens[1:]
    options: dict[str, str | None] = {}
    try:
        blob = blob_from_line(" ".join(rest[:2]))
    except SignatureError:
        options = _parse_options(rest[0], lineno)
        try:
            blob = blob_from_line(" ".join(rest[1:3]))
        except SignatureError as exc:
            raise UsageError(f"allowed_signers line {lineno}: {exc.message}") from None
    known = {"cert-authority", "namespaces", "valid-after", "valid-before"}
    unknown = set(options) - known
    if unknown:
        raise UsageError(f"allowed_signers line {lineno}: unknown option {sorted(unknown)[0]}.")
    after, before = options.get("valid-after"), options.get("valid-before")
    return SignerEntry(
        lineno=lineno,
        principals=principals,
        key_blob=blob,
        cert_authority="cert-authority" in options,
        namespaces=options.get("namespaces"),
        valid_after=_parse_time(after, lineno) if after else None,
        valid_before=_parse_time(before, lineno) if before else None,
    )


#: An allowed_signers file for a large organisation: 100,000 lines or so.
MAX_FILE = 16 << 20


@dataclass(frozen=True)
class AllowedSigners:
    """A parsed allowed_signers file. ``check`` raises or returns the matching entry."""

    entries: tuple[SignerEntry, ...]
    source: str = "<memory>"

    @classmethod
    def from_text(cls, text: str, source: str = "<memory>") -> AllowedSigners:
        parsed = (parse_line(line, n) for n, line in enumerate(text.splitlines(), 1))
        return cls(tuple(e for e in parsed if e is not None), source)

    @classmethod
    def from_file(cls, path: Path) -> AllowedSigners:
        """Parse a regular file of at most MAX_FILE bytes; UsageError (one sentence) otherwise."""
        from toolkit.inputs import read_text

        return cls.from_text(
            read_text(path, what="the allowed signers file", limit=MAX_FILE), str(path)
        )

    def check(
        self, principal: str, key_blob: bytes, namespace: str, at: datetime | None = None
    ) -> SignerEntry:
        """The entry that trusts ``key_blob`` as ``principal`` for ``namespace`` at ``at``.

        Raises UntrustedSigner naming the closest reason when none does.
        """
        at = at or datetime.now(UTC)
        ident = load_identity(key_blob)
        reasons: list[str] = []
        for entry in self.entries:
            if not match_pattern_list(principal, entry.principals):
                continue
            if entry.cert_authority:
                if not isinstance(ident, serialization.SSHCertificate):
                    continue
                reason = _check_certificate(ident, entry.key_blob, principal, at)
            else:
                plain = blob_of(load_public(key_blob))
                reason = None if plain == entry.key_blob else "key differs"
            if reason == "key differs":
                continue
            if (
                reason is None
                and entry.namespaces is not None
                and not match_pattern_list(namespace, entry.namespaces)
            ):
                reason = f"not trusted for namespace {namespace!r}"
            if reason is None and entry.valid_after and at < entry.valid_after:
                reason = f"not valid before {entry.valid_after.isoformat()}"
            if reason is None and entry.valid_before and at >= entry.valid_before:
                reason = f"expired at {entry.valid_before.isoformat()}"
            if reason is None:
                return entry
            reasons.append(f"line {entry.lineno}: {reason}")
        detail = "; ".join(reasons) if reasons else "no line names this principal and key"
        raise UntrustedSigner(
            f"{self.source} does not trust {fingerprint(key_blob)} as {principal!r} "
            f"for {namespace!r} ({detail})."
        )


def _check_certificate(
    cert: serialization.SSHCertificate, ca_blob: bytes, principal: str, at: datetime
) -> str | None:
    signer = cert.signature_key()
    if not isinstance(signer, PublicKey) or blob_of(signer) != ca_blob:
        return "key differs"
    try:
        cert.verify_cert_signature()
    except (InvalidSignature, ValueError):
        return "certificate signature invalid"
    if cert.type != serialization.SSHCertificateType.USER:
        return "not a user certificate"
    names = [p.decode("utf-8", "replace") for p in cert.valid_principals]
    if principal not in names:
        return f"certificate does not name {principal!r}"
    stamp = at.timestamp()
    if stamp < cert.valid_after:
        return "certificate not yet valid"
    if stamp >= cert.valid_before:
        return "certificate expired"
    return None


__all__ = ["AllowedSigners", "SignerEntry", "UntrustedSigner", "match_pattern_list"]
