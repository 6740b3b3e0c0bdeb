"""Many transcripts delivered together (Outbox.deliver_many): a fleet's batch, `tickets sync`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample
from toolkit.errors import TicketBackendError
from toolkit.tickets.base import Attachment, Ticket
from toolkit.tickets.local import LocalTickets
from toolkit.tickets.outbox import Entry, Outbox

Names = Mapping[str, str] | None


class Counting(LocalTickets):
    """The local store, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.attaches: list[list[str]] = []
        self.looks = 0

    def ticket(self, ticket: str) -> Ticket:
        self.looks += 1
        return super().ticket(ticket)

    def attach(
        self,
        ticket: str,
        files: list[Path],
        comment: str,
        *,
        digests: Names = None,
        comments: Names = None,
    ) -> list[Attachment]:
        self.attaches.append([f.name for f in files])
        return super().attach(ticket, files, comment, digests=digests, comments=comments)


class Refusing(Counting):
    """A batch attach refused before anything is attached (the system says no)."""

    def attach(
        self,
        ticket: str,
        files: list[Path],
        comment: str,
        *,
        digests: Names = None,
        comments: Names = None,
    ) -> list[Attachment]:
        raise TicketBackendError("the disk is full")


class DyingHalfway(Counting):
    """Attaches the first half of the batch, then dies (a kill -9 in the middle of it)."""

    def attach(
        self,
        ticket: str,
        files: list[Path],
        comment: str,
        *,
        digests: Names = None,
        comments: Names = None,
    ) -> list[Attachment]:
        half = files[: len(files) // 2]
        super().attach(ticket, half, comment, digests=digests, comments=comments)
        raise TicketBackendError("connection reset")


def _waiting(tmp_path: Path, n: int, ticket: str = "T-1") -> tuple[Outbox, list[Entry]]:
    box = Outbox()
    entries = []
    for i in range(n):
        signer = new_signer()
        cast = record_sample(tmp_path / f"s{i}.cast", signer)
        entries.append(box.enqueue("local", ticket, cast, signer, None))
    return box, entries


def _names(ticket: str = "T-1") -> list[str]:
    return sorted(a.name for a in LocalTickets().ticket(ticket).attachments)


def test_a_batch_is_one_attach_with_each_transcript_s_own_comment(tmp_path: Path) -> None:
    box, entries = _waiting(tmp_path, 3)
    backend = Counting()
    tried = box.deliver_many(entries, backend)
    assert [(e.id, d is not None, err) for e, d, err in tried] == [
        (e.id, True, None) for e in entries
    ]
    assert len(backend.attaches) == 1 and len(backend.attaches[0]) == 12  # 4 files each
    assert backend.looks == 2  # what the ticket holds: once before, once after
    assert box.entries() == []
    by_name = {a.name: a for a in LocalTickets().ticket("T-1").attachments}
    for i in range(3):
        comment = by_name[f"s{i}.cast"].comment
        assert comment.startswith(f"toolkit session transcript s{i}.cast\n")
        assert by_name[f"s{i}.cast.sig"].comment == comment
        assert "Verified right before upload: SEALED" in comment
    for _, delivered, _ in tried:
        assert delivered is not None and len(delivered.uploaded) == 4


def test_a_refused_batch_leaves_every_transcript_in_the_outbox(tmp_path: Path) -> None:
    box, entries = _waiting(tmp_path, 3)
    tried = box.deliver_many(entries, Refusing())
    assert all(d is None and err is not None for _, d, err in tried)
    waiting = box.entries()
    assert sorted(e.id for e in waiting) == sorted(e.id for e in entries)
    assert all(e.attempts == 1 and e.last_error == "the disk is full" for e in waiting)
    for e in waiting:  # whole, as sealed
        assert (e.folder / e.transcript).read_bytes() == (tmp_path / e.transcript).read_bytes()
    again = box.deliver_many(waiting, LocalTickets())
    assert all(d is not None for _, d, _ in again)
    assert box.entries() == []
    assert len(_names()) == 12


def test_a_batch_that_dies_halfway_is_finished_later_without_duplicates(tmp_path: Path) -> None:
    box, entries = _waiting(tmp_path, 4)
    tried = box.deliver_many(entries, DyingHalfway())
    assert all(d is None for _, d, _ in tried)
    assert len(_names()) == 8  # half of it got there
    assert len(box.entries()) == 4  # and every transcript still waits
    backend = Counting()
    again = box.deliver_many(box.entries(), backend)
    assert all(d is not None for _, d, _ in again)
    assert sum(len(d.uploaded) for _, d, _ in again if d is not None) == 8  # only what lacked
    names = _names()
    assert len(names) == 16 and len(set(names)) == 16  # each file once: nothing renamed "2-..."
    assert not any(n.startswith("2-") for n in names)
    # A third delivery has nothing left to do.
    assert box.sync(lambda name: Counting()) == []


def test_one_transcript_that_fails_its_check_does_not_hold_up_the_others(
    tmp_path: Path,
) -> None:
    box, entries = _waiting(tmp_path, 3)
    spoiled = entries[1].folder / entries[1].transcript
    data = bytearray(spoiled.read_bytes())
    data[-40] ^= 1
    with spoiled.open("r+b") as f:
        f.write(data)
    tried = box.deliver_many(entries, Counting())
    assert [d is not None for _, d, _ in tried] == [True, False, True]
    error = tried[1][2]
    assert error is not None and "changed since it entered the outbox" in error.message
    (left,) = box.entries()
    assert left.id == entries[1].id and "changed since" in (left.last_error or "")
    assert "s1.cast" not in _names()


def test_sync_delivers_each_ticket_s_entries_together(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    box, first = _waiting(tmp_path / "a", 2, "T-1")
    _, second = _waiting(tmp_path / "b", 2, "T-2")
    backend = Counting()
    results = box.sync(lambda name: backend)
    in_order = sorted(first + second, key=lambda e: (e.created, e.id))
    assert [e.id for e, _, _ in results] == [e.id for e in in_order]
    assert all(d is not None for _, d, _ in results)
    assert len(backend.attaches) == 2  # one per ticket
    assert len(_names("T-1")) == len(_names("T-2")) == 8


def test_an_entry_another_run_holds_is_left_alone(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    box, entries = _waiting(tmp_path, 2)
    with (entries[0].folder / ".lock").open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        tried = box.deliver_many(entries, Counting())
    assert tried[0] == (entries[0], None, None)
    assert tried[1][1] is not None
    assert [e.id for e in box.entries()] == [entries[0].id]


def test_a_large_batch_goes_in_slices_each_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import toolkit.tickets.outbox as outbox

    monkeypatch.setattr(outbox, "_BATCH", 2)  # each entry's lock is an open file: bounded
    box, entries = _waiting(tmp_path, 5)
    backend = Counting()
    tried = box.deliver_many(entries, backend)
    assert [e.id for e, _, _ in tried] == [e.id for e in entries]
    assert all(d is not None for _, d, _ in tried)
    assert [len(files) for files in backend.attaches] == [8, 8, 4]
    assert len(_names()) == 20 and box.entries() == []


def test_an_entry_delivered_by_another_run_meanwhile_is_skipped(tmp_path: Path) -> None:
    box, entries = _waiting(tmp_path, 2)
    assert box.deliver(entries[0], LocalTickets()) is not None  # its folder is gone now
    tried = box.deliver_many(entries, Counting())
    assert tried[0] == (entries[0], None, None)
    assert tried[1][1] is not None and box.entries() == []
