from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from toolkit.errors import TicketBackendError, UsageError
from toolkit.tickets.local import LocalTickets


def test_attach_list_show_and_never_overwrite(tmp_path: Path) -> None:
    store = LocalTickets()
    a = tmp_path / "s.cast"
    a.write_bytes(b"one")
    first = store.attach("T-1", [a], "first session")
    a.unlink()  # another file of the same name (each session's transcript is a new file)
    a.write_bytes(b"two")
    second = store.attach("T-1", [a], "second session")
    assert first[0].name == "s.cast" and second[0].name == "2-s.cast"
    ticket = store.ticket("T-1")
    assert [x.comment for x in ticket.attachments] == ["first session", "second session"]
    assert Path(ticket.attachments[0].location).read_bytes() == b"one"
    assert [t.id for t in store.tickets()] == ["T-1"]


def test_a_file_on_the_same_file_system_is_linked_not_copied(tmp_path: Path) -> None:
    a = tmp_path / "s.cast"
    a.write_bytes(b"sealed")
    (added,) = LocalTickets().attach("T-1", [a], "session")
    assert os.path.samefile(added.location, a) and a.stat().st_nlink == 2
    assert added.sha256 == hashlib.sha256(b"sealed").hexdigest()
    assert LocalTickets().holds("T-1", added, a)
    assert not LocalTickets().holds("T-2", added, a)  # only a file of that ticket's own


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "x" * 65, "-x", "t\n1"])
def test_ticket_ids_are_checked(bad: str) -> None:
    with pytest.raises(UsageError, match="not a ticket id"):
        LocalTickets().ticket(bad)


def test_unknown_ticket_and_damaged_index(tmp_path: Path) -> None:
    store = LocalTickets(tmp_path / "t")
    with pytest.raises(TicketBackendError, match="no local ticket"):
        store.ticket("T-2")
    (tmp_path / "t" / "T-2").mkdir(parents=True)
    (tmp_path / "t" / "T-2" / "ticket.json").write_text("{broken")
    with pytest.raises(TicketBackendError, match="damaged"):
        store.ticket("T-2")
