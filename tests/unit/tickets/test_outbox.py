from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample
from toolkit.errors import TicketBackendError
from toolkit.identity import sshsig
from toolkit.tickets.base import Attachment
from toolkit.tickets.local import LocalTickets
from toolkit.tickets.outbox import Outbox
from toolkit.tickets.package import GZIP, MANIFEST_NAMESPACE, PARTS, PLAIN, prepare, reassemble


class Crashing(LocalTickets):
    """Attaches, then dies before answering (the network, or a kill -9, at the worst moment)."""

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
        super().attach(ticket, files, comment)
        raise TicketBackendError("connection reset")


class Mangling(LocalTickets):
    """Serves attachments back with one byte changed, as a re-encoding system would."""

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        super().download(ticket, attachment, dest)
        dest.write_bytes(dest.read_bytes() + b"\n")


def test_delivered_once_even_when_the_first_try_dies_after_attaching(tmp_path: Path) -> None:
    signer = new_signer()
    cast = record_sample(tmp_path / "s.cast", signer)
    box = Outbox()
    entry = box.enqueue("local", "T-1", cast, signer, None)
    assert box.enqueue("local", "T-1", cast, signer, None).id == entry.id  # idempotent
    with pytest.raises(TicketBackendError, match="connection reset"):
        box.deliver(entry, Crashing())
    (waiting,) = box.entries()
    assert waiting.attempts == 1 and waiting.last_error == "connection reset"
    delivered = box.deliver(waiting, LocalTickets())
    assert delivered is not None and delivered.uploaded == ()
    assert box.entries() == []
    names = [a.name for a in LocalTickets().ticket("T-1").attachments]
    assert sorted(names) == ["s.SHA256SUMS", "s.SHA256SUMS.sig", "s.cast", "s.cast.sig"]


def test_a_different_byte_on_read_back_keeps_the_transcript(tmp_path: Path) -> None:
    signer = new_signer()
    cast = record_sample(tmp_path / "s.cast", signer)
    box = Outbox()
    entry = box.enqueue("local", "T-2", cast, signer, None)
    with pytest.raises(TicketBackendError, match="same SHA-256"):
        box.deliver(entry, Mangling())
    (waiting,) = box.entries()
    assert waiting.bad  # the mangled copies never count as delivered
    assert (waiting.folder / "s.cast").read_bytes() == cast.read_bytes()


@pytest.mark.parametrize(("limit", "form"), [(None, PLAIN), (1 << 20, GZIP), (64 << 10, PARTS)])
def test_packages_rebuild_byte_exact(tmp_path: Path, limit: int | None, form: str) -> None:
    signer = new_signer()
    cast = record_sample(tmp_path / "src" / "s.cast", signer, events=3000)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(cast, work)
    shutil.copy(cast.with_name("s.cast.sig"), work)
    package = prepare(work / "s.cast", work / "s.cast.sig", limit, signer)
    assert package.form == form
    assert limit is None or all(p.stat().st_size <= limit for p in package.files)
    ticket = tmp_path / "ticket"
    ticket.mkdir()
    for p in package.files:
        shutil.copy(p, ticket)
    rebuilt = reassemble(ticket)
    assert [p.name for p in rebuilt] == ([] if form == PLAIN else ["s.cast"])
    assert (ticket / "s.cast").read_bytes() == cast.read_bytes()
    # Format 2 throughout: the manifest is signed with SHA-256 too, as is the seal.
    manifest_sig = sshsig.dearmor((ticket / "s.SHA256SUMS.sig").read_bytes())
    assert sshsig.SSHSig.from_bytes(manifest_sig).hash_algorithm == "sha256"


def test_a_manifest_signed_with_sha512_before_format_2_still_rebuilds(tmp_path: Path) -> None:
    # Tickets hold packages made before format 2: their SHA-512 manifests stay readable.
    signer = new_signer()
    cast = record_sample(tmp_path / "s.cast", signer, events=3000, format=1)
    package = prepare(cast, cast.with_name("s.cast.sig"), 64 << 10, signer)
    manifest = cast.with_name("s.SHA256SUMS")
    old = sshsig.sign(signer, manifest.read_bytes(), MANIFEST_NAMESPACE, "sha512")
    manifest.with_name("s.SHA256SUMS.sig").write_text(old.armor())
    ticket = tmp_path / "ticket"
    ticket.mkdir()
    for p in package.files:
        shutil.copy(p, ticket)
    assert [p.name for p in reassemble(ticket)] == ["s.cast"]


def test_a_swapped_piece_is_caught(tmp_path: Path) -> None:
    signer = new_signer()
    cast = record_sample(tmp_path / "s.cast", signer, events=3000)
    package = prepare(cast, cast.with_name("s.cast.sig"), 64 << 10, signer)
    first = package.files[0]
    first.write_bytes(first.read_bytes()[:-1] + b"\0")
    with pytest.raises(TicketBackendError, match="does not match"):
        reassemble(tmp_path)
