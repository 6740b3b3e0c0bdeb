"""How ``toolkit show`` says the events of the customer's copy (issue 15, evid2).

The session itself is driven in tests/integration/test_first_use_evid2.py;
these cover the shapes that session does not reach (the technician's end
request, an older file's times).
"""

from __future__ import annotations

from typing import Any

from toolkit.cli.show import _late, describe
from toolkit.transcript.timeline import Entry


def _said(**fields: Any) -> tuple[str, str]:
    return describe(Entry(1.0, 2, fields))


def test_the_technicians_end_request_is_said_in_words() -> None:
    label, text = _said(type="operation", id=9, op="end", reason="done", ok=True)
    assert (label, text) == ("session", "the technician's toolkit asked to end the session")


def test_a_cancel_names_its_request() -> None:
    label, text = _said(type="operation", id=7, op="cancel", target=6, cancelled=True, ok=True)
    assert (label, text) == ("session", "the technician cancelled request 6")


def test_a_hello_says_which_copy_is_the_technicians() -> None:
    label, text = _said(
        type="operation", id=1, op="hello", session="abc", technician_session="abc", ok=True
    )
    assert label == "session"
    assert text == "the technician's toolkit connected; the technician's copy is session abc"


def test_trust_is_said_in_words() -> None:
    _, trusted = _said(type="consent", result="approved", trusted=True)
    _, untrusted = _said(type="consent", result="approved", trusted=False)
    assert "the customer's allowed_signers vouched for the key" in trusted
    assert "no allowed_signers of the customer's vouched for the key" in untrusted
    assert "trusted" not in untrusted.replace("allowed_signers", "")


def test_a_read_with_a_range_says_it() -> None:
    _, text = _said(type="operation", op="read", path="/var/log/dpkg.log", tail=5, ok=True)
    assert text == "read /var/log/dpkg.log --tail 5: ok"
    _, text = _said(type="operation", op="stat", path="/etc/hostname", name="hostname", ok=True)
    assert text == "stat /etc/hostname: ok"


def test_an_older_files_times_move_up_to_its_approvals_at() -> None:
    # t counted from the file's creation, 0.7 s after the timestamp 1000.
    approval = Entry(2.0, 3, {"type": "approval", "at": "1970-01-01T00:16:42Z"})  # 1002
    late = _late(1000, [Entry(0.1, 2, {"type": "consent"}), approval])
    assert late == 0.0  # 1000 + 2.0 is not earlier than 1002
    approval = Entry(1.5, 3, {"type": "approval", "at": "1970-01-01T00:16:42Z"})
    assert _late(1000, [approval]) == 0.5
    far = Entry(0.0, 3, {"type": "approval", "at": "1970-01-01T01:00:00Z"})
    assert _late(1000, [far]) == 1.0  # never more than the timestamp's second
