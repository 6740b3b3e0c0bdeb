"""Attaching a sealed transcript through the outbox, and retrying it, as library calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import new_signer, record_sample
from toolkit.errors import TicketBackendError
from toolkit.tickets import plugins
from toolkit.tickets.attach import attach_transcript, sync_quietly
from toolkit.tickets.local import LocalTickets
from toolkit.tickets.outbox import Outbox


def sealed(tmp_path: Path) -> Path:
    return record_sample(tmp_path / "20260101T000000Z-T-1-abcdef12.cast", new_signer())


def test_a_transcript_attached_to_the_local_store_names_the_stores_copies(
    tmp_path: Path,
) -> None:
    cast = sealed(tmp_path)
    notes: list[str] = []
    attached = attach_transcript("T-1", cast, new_signer(), note=notes.append)
    assert notes == []
    assert attached.backend == "local" and attached.ticket == "T-1"
    assert attached.in_local_store and attached.sealed == cast
    assert Path(attached.transcript).read_bytes() == cast.read_bytes()
    assert Path(attached.signature).name == cast.name + ".sig"
    assert [a.name for a in LocalTickets().ticket("T-1").attachments][:2] == [
        cast.name,
        cast.name + ".sig",
    ]
    assert Outbox().entries() == []


def test_a_ticket_system_that_is_down_keeps_it_in_the_outbox_until_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cast = sealed(tmp_path)
    working = plugins.open_backend

    def down(*args: Any, **kwargs: Any) -> Any:
        raise TicketBackendError("the ticket system does not answer")

    monkeypatch.setattr(plugins, "open_backend", down)
    notes: list[str] = []
    with pytest.raises(TicketBackendError, match="waits in the outbox"):
        attach_transcript("T-1", cast, new_signer(), note=notes.append)
    assert notes == ["The local ticket backend cannot be used: the ticket system does not answer"]
    assert [e.ticket for e in Outbox().entries()] == ["T-1"]
    assert LocalTickets().tickets() == []

    [(entry, delivered, error)] = sync_quietly(note=notes.append)  # still down
    assert delivered is None and error is not None and entry.attempts >= 1

    monkeypatch.setattr(plugins, "open_backend", working)
    [(entry, delivered, error)] = sync_quietly(note=notes.append)
    assert error is None and delivered is not None and entry.ticket == "T-1"
    assert cast.name in [a.name for a in LocalTickets().ticket("T-1").attachments]
    assert sync_quietly(note=notes.append) == []  # nothing waits any more
    assert len(notes) == 1


def test_an_outbox_that_cannot_be_tried_is_a_note_never_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cast = sealed(tmp_path)
    Outbox().enqueue("local", "T-1", cast, new_signer(), 1 << 20)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk on fire \x1b[31m")

    monkeypatch.setattr(Outbox, "sync", broken)
    notes: list[str] = []
    assert sync_quietly(note=notes.append) == []
    assert notes == [
        "Could not try the outbox (disk on fire \\x1b[31m); `toolkit tickets sync` tries again."
    ]
