"""The agent's record of grant uses, revocations and history, crash-safe on disk.

Layout under the root (default ``<data dir>/grants``)::

    uses/<grant id>/<n>.json       use n of the grant: spent iff this file exists
    uses/<grant id>/<n>.end.json   how that use ended (outcome, transcript)
    revoked/<grant id>.json        the grant is revoked on this host
    tmp/                           records being written

A record is written whole to ``tmp/`` and fsynced, then hard-linked to its
name. ``link(2)`` fails if the name is taken, so of any number of processes
racing for use ``n`` exactly one gets it, and a name never holds half a
record. The directory is fsynced before :meth:`Ledger.spend` returns, so a use
that a session started on survives a power cut. A process killed at any
point either linked the name (the use is spent, for good) or did not (it is
not, and nothing started): a kill -9 never gives a use back and never lets
one be spent twice. Nothing in ``uses/`` is ever renamed or deleted.

A file toolkit cannot read is never taken as free: an unreadable use record
still counts as spent (and :meth:`Ledger.history` reports it), a name toolkit
never writes stops spending (:class:`LedgerError` naming it), and an
unreadable revocation still revokes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError, UsageError
from toolkit.grants.check import GrantRefused
from toolkit.grants.model import Grant, format_time, parse_time
from toolkit.text import printable

_ID = re.compile(r"g-[a-z2-7]{26}")
_USE = re.compile(r"([1-9][0-9]{0,8})\.json")
_END = re.compile(r"([1-9][0-9]{0,8})\.end\.json")
#: A record is a small JSON object; anything larger is not one of ours.
_MAX_RECORD = 64 * 1024
_VERSION = 1


class LedgerError(ToolkitError):
    """The grant ledger cannot be read or written as toolkit keeps it.

    The ledger counts the uses of grants on this host; toolkit refuses to
    guess when it holds something it did not write or cannot be written (a
    full disk, permissions). Fix what the message names; until then, grants
    are not accepted here.
    """


@dataclass(frozen=True)
class Use:
    """One spent use of a grant."""

    grant_id: str
    number: int
    uses: int
    at: datetime
    technician: str
    ticket: str
    session: str
    peer: str


@dataclass(frozen=True)
class HistoryEntry:
    """One use as the ledger recorded it; ``problem`` set when a record is unreadable."""

    grant_id: str
    number: int  # 0 for a file that is no use record at all
    uses: int | None
    at: datetime | None
    technician: str
    ticket: str
    session: str
    peer: str
    outcome: str | None  # None: no end record (still running, or the agent stopped)
    ended: datetime | None = None
    transcript: str | None = None
    problem: str | None = None  # counted as spent, not trusted

    def to_json(self) -> dict[str, Any]:
        return {
            "grant": self.grant_id,
            "use": self.number,
            "uses": self.uses,
            "at": format_time(self.at) if self.at else None,
            "technician": self.technician,
            "ticket": self.ticket,
            "session": self.session,
            "peer": self.peer,
            "outcome": self.outcome,
            "ended": format_time(self.ended) if self.ended else None,
            "transcript": self.transcript,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class Revocation:
    grant_id: str
    at: datetime
    reason: str | None
    problem: str | None = None


def check_id(grant_id: str) -> str:
    """``grant_id`` if it is a grant id (safe as a file name); UsageError otherwise."""
    if not _ID.fullmatch(grant_id):
        raise UsageError(
            f"'{printable(grant_id, 80)}' is not a grant id: it is g- and 26 of a-z and 2-7."
        )
    return grant_id


class Ledger:
    """Uses, revocations and history of grants on this host, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def default(cls) -> Ledger:
        from toolkit import paths

        return cls(paths.data_dir() / "grants")

    # -- spending -------------------------------------------------------------------------

    def spend(
        self, grant: Grant, *, technician: str, ticket: str, session: str, peer: str, now: datetime
    ) -> Use:
        """Take the next use of ``grant``: GrantRefused("revoked" / "used-up") if none is left.

        When this returns, the use is on disk for good; the session may start.
        """
        gid = check_id(grant.id)
        if (at := self.revoked(gid)) is not None:
            raise GrantRefused("revoked", f"The grant {gid} was revoked on this host at "
                               f"{format_time(at)}.")  # fmt: skip
        uses = self._uses_dir(gid)
        number = self._highest(gid) + 1
        if number <= grant.uses:
            record = {
                "v": _VERSION,
                "grant": gid,
                "grant_sha256": grant.sha256,
                "issuer": grant.issuer,
                "uses": grant.uses,
                "at": format_time(now),
                "technician": technician,
                "ticket": ticket,
                "session": session,
                "peer": peer,
            }
            with self._staged(record) as staged:
                while number <= grant.uses:
                    if self._link(staged, uses / f"{number}.json"):
                        _fsync_dir(uses)
                        return Use(gid, number, grant.uses, now, technician, ticket, session, peer)
                    number += 1  # another process took it
        raise GrantRefused(
            "used-up",
            f"The grant {gid} is used up on this host ({grant.uses} of {grant.uses} uses).",
        )

    def finish(self, use: Use, *, outcome: str, transcript: str | None, now: datetime) -> None:
        """Record how a use ended; once per use (LedgerError the second time)."""
        gid = check_id(use.grant_id)
        uses = self._uses_dir(gid)
        record = {"v": _VERSION, "outcome": outcome, "transcript": transcript,
                  "ended": format_time(now)}  # fmt: skip
        with self._staged(record) as staged:
            if not self._link(staged, uses / f"{use.number}.end.json"):
                raise LedgerError(f"Use {use.number} of the grant {gid} has already ended.")
        _fsync_dir(uses)

    # -- revocation -----------------------------------------------------------------------

    def revoke(self, grant_id: str, *, reason: str | None, now: datetime) -> bool:
        """Revoke ``grant_id`` on this host; False if it already was."""
        gid = check_id(grant_id)
        directory = self._dir(self.root / "revoked")
        record = {"v": _VERSION, "grant": gid, "at": format_time(now), "reason": reason}
        with self._staged(record) as staged:
            done = self._link(staged, directory / f"{gid}.json")
        _fsync_dir(directory)
        return done

    def revoked(self, grant_id: str) -> datetime | None:
        """When ``grant_id`` was revoked here, or None. A revocation toolkit cannot read
        still revokes (at its file's time)."""
        path = self.root / "revoked" / f"{check_id(grant_id)}.json"
        found = self._revocation(path)
        return found.at if found else None

    def revocations(self) -> list[Revocation]:
        """Every revocation on this host, oldest first."""
        directory = self.root / "revoked"
        found = []
        for name in self._names(directory):
            gid = name.removesuffix(".json")
            if name.endswith(".json") and _ID.fullmatch(gid):
                revocation = self._revocation(directory / name)
                if revocation is not None:
                    found.append(revocation)
        return sorted(found, key=lambda r: (r.at, r.grant_id))

    def _revocation(self, path: Path) -> Revocation | None:
        gid = path.name.removesuffix(".json")
        try:
            info = path.lstat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error("read", path, exc) from None
        fallback = datetime.fromtimestamp(info.st_mtime, UTC).replace(microsecond=0)
        raw, problem = _read_record(path)
        if raw is not None:
            try:
                if raw.get("grant") != gid:
                    raise ValueError("it names another grant")
                reason = raw.get("reason")
                if reason is not None and not isinstance(reason, str):
                    raise ValueError("its reason is not text")
                return Revocation(gid, parse_time(str(raw.get("at"))), reason)
            except ValueError as exc:  # any doubt: still revoked
                problem = f"unreadable revocation record ({printable(exc, 100)})"
        return Revocation(gid, fallback, None, problem)

    # -- reading --------------------------------------------------------------------------

    def used(self, grant_id: str) -> int:
        """How many uses of ``grant_id`` are spent here: the highest number taken."""
        return self._highest(check_id(grant_id))

    def history(self, grant_id: str | None = None) -> list[HistoryEntry]:
        """Every recorded use (of ``grant_id``, or of every grant), by grant then number."""
        if grant_id is not None:
            gids = [check_id(grant_id)]
        else:
            gids = sorted(n for n in self._names(self.root / "uses") if _ID.fullmatch(n))
        entries: list[HistoryEntry] = []
        for gid in gids:
            entries += self._history(gid)
        return entries

    def _history(self, gid: str) -> list[HistoryEntry]:
        directory = self.root / "uses" / gid
        names = self._names(directory)
        entries = []
        for name in names:
            if _END.fullmatch(name):
                number = int(name.split(".")[0])
                if f"{number}.json" not in names:
                    entries.append(_problem(gid, number, f"{name} ends a use with no record"))
                continue
            match = _USE.fullmatch(name)
            if match is None:
                entries.append(_problem(gid, 0, f"{printable(name, 80)} is not a ledger file"))
                continue
            number = int(match.group(1))
            entries.append(self._entry(directory, gid, number, f"{number}.end.json" in names))
        return sorted(entries, key=lambda e: e.number)

    def _entry(self, directory: Path, gid: str, number: int, ended: bool) -> HistoryEntry:
        raw, problem = _read_record(directory / f"{number}.json")
        if raw is None:
            return _problem(gid, number, problem or "unreadable")
        try:
            if raw.get("grant") != gid:
                raise ValueError("it names another grant")
            technician, ticket, session, peer = (
                _text(raw, k) for k in ("technician", "ticket", "session", "peer")
            )
            uses = raw.get("uses")
            if not isinstance(uses, int) or isinstance(uses, bool):
                raise ValueError("uses is not a number")
            at = parse_time(str(raw.get("at")))
        except ValueError as exc:  # a record toolkit cannot trust: reported, still spent
            return _problem(gid, number, f"use record unreadable ({printable(exc, 100)})")
        entry = HistoryEntry(gid, number, uses, at, technician, ticket, session, peer, None)
        if not ended:
            return entry
        end, why = _read_record(directory / f"{number}.end.json")
        try:
            if end is None:
                raise ValueError(why)
            transcript = end.get("transcript")
            if transcript is not None and not isinstance(transcript, str):
                raise ValueError("the transcript is not text")
            return replace(
                entry,
                outcome=_text(end, "outcome"),
                ended=parse_time(str(end.get("ended"))),
                transcript=transcript,
            )
        except ValueError as exc:
            return replace(entry, problem=f"end record unreadable ({printable(exc, 100)})")

    # -- the files ------------------------------------------------------------------------

    def _highest(self, gid: str) -> int:
        """The highest use number taken; LedgerError for a name toolkit never writes."""
        directory = self.root / "uses" / gid
        names = self._names(directory)
        highest = 0
        for name in names:
            match = _USE.fullmatch(name) or _END.fullmatch(name)
            if match is None:
                raise LedgerError(
                    f"The grant ledger {directory} holds {printable(name, 80)}, which toolkit "
                    "never writes; it does not guess what that means and accepts no use of "
                    "this grant until it is moved away.",
                )
            highest = max(highest, int(match.group(1)))
        return highest

    def _names(self, directory: Path) -> list[str]:
        try:
            return sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _os_error("read", directory, exc) from None

    def _uses_dir(self, gid: str) -> Path:
        return self._dir(self._dir(self.root / "uses") / gid)

    def _dir(self, path: Path) -> Path:
        """``path``, created (0700, durably: its parent is fsynced) if missing."""
        if path.is_dir():
            return path
        if path != self.root:
            self._dir(path.parent)
        try:
            path.mkdir(mode=0o700, parents=path == self.root)
        except FileExistsError:
            if not path.is_dir():
                raise LedgerError(
                    f"{printable(str(path), 200)} is in the grant ledger's way: "
                    "it is not a directory."
                ) from None
            return path
        except OSError as exc:
            raise _os_error("create", path, exc) from None
        _fsync_dir(path.parent)
        return path

    def _staged(self, record: dict[str, Any]) -> _Staged:
        return _Staged(self._dir(self.root / "tmp"), record)

    @staticmethod
    def _link(staged: Path, target: Path) -> bool:
        """Give the staged record the name ``target``; False if the name is taken."""
        try:
            os.link(staged, target)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _os_error("write", target, exc) from None
        return True


class _Staged:
    """A record written whole and fsynced in tmp/, removed again on exit."""

    def __init__(self, directory: Path, record: dict[str, Any]) -> None:
        self._path = directory / f"{os.getpid()}-{secrets.token_hex(8)}.json"
        self._data = json.dumps(record, ensure_ascii=False, sort_keys=True).encode() + b"\n"

    def __enter__(self) -> Path:
        try:
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, self._data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self._remove()
            raise _os_error("write", self._path, exc) from None
        return self._path

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_error("remove", self._path, exc) from None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _os_error("sync", directory, exc) from None


def _os_error(verb: str, path: Path, exc: OSError) -> LedgerError:
    why = (exc.strerror or str(exc)).lower()
    return LedgerError(f"Cannot {verb} {printable(str(path), 200)} in the grant ledger: {why}.")


def _read_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A record's JSON object, or None and why it cannot be read."""
    from toolkit.inputs import UnreadableInput, read_regular
    from toolkit.unique_json import unique_names

    try:
        data = read_regular(path, what="the ledger record", limit=_MAX_RECORD)
        raw = json.loads(data.decode("utf-8"), object_pairs_hook=unique_names)
    except UnreadableInput as exc:
        return None, exc.message
    except ValueError as exc:  # bad UTF-8, bad JSON, a name given twice
        return None, f"not a ledger record ({printable(exc, 100)})"
    if not isinstance(raw, dict) or raw.get("v") != _VERSION:
        return None, "not a ledger record"
    return raw, None


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise ValueError(f"its {key} is not text")
    return value


def _problem(gid: str, number: int, problem: str) -> HistoryEntry:
    return HistoryEntry(gid, number, None, None, "", "", "", "", None, problem=problem)


__all__ = ["HistoryEntry", "Ledger", "LedgerError", "Revocation", "Use", "check_id"]
