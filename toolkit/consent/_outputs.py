"""Collects what the PAKE and confirmation machines emit during one handshake call."""

from __future__ import annotations

from toolkit.consent._pake import PakeKey


class Outputs:
    """A PakeListener and ConfirmListener that remembers what it was told."""

    def __init__(self) -> None:
        self.message: bytes | None = None
        self.key: PakeKey | None = None
        self.pake_failed = False
        self.verdict: bool | None = None

    def pake_message(self, message: bytes) -> None:
        self.message = message

    def pake_key(self, key: PakeKey) -> None:
        self.key = key

    def pake_refused(self) -> None:
        self.pake_failed = True

    def confirmed(self) -> None:
        self.verdict = True

    def mismatch(self) -> None:
        self.verdict = False
