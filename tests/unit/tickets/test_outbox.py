from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample, write_allowed_signers
from toolkit.errors import TicketBackendError
from toolkit.identity import sshsig
from toolkit.identity.signer import KeySigner
from toolkit.tickets.base import Attachment, Ticket
from toolkit.tickets.local import LocalTickets
from toolkit.tickets.outbox import Outbox
from toolkit.tickets.package import GZIP, MANIFEST_NAMESPACE, PARTS, PLAIN, prepare, reassemble

Digests = Mapping[str, str] | None


class Crashing(LocalTickets):
    """Attaches, then dies before answering (the network, or a kill -9, at the worst moment)."""

    def attach(
        self,
        ticket: str,
        files: list[Path],
        comment: str,
        *,
        digests: Digests = None,
        comments: Digests = None,
    ) -> list[Attachment]:
        super().attach(ticket, files, comment, digests=digests, comments=comments)
        raise TicketBackendError("connection reset")


class Mangling(LocalTickets):
    """Keeps attachments with one byte changed, as a re-encoding system would."""

    def attach(
        self,
        ticket: str,
        files: list[Path],
        comment: str,
        *,
        digests: Digests = None,
        comments: Digests = None,
    ) -> list[Attachment]:
        added = super().attach(ticket, files, comment, digests=digests, comments=comments)
        for a in added:
            stored = Path(a.location)
            data = stored.read_bytes() + b"\n"
            stored.unlink()  # a file of its own, not the one it was given
            stored.write_bytes(data)
        return added


class Remote:
    """A ticket system elsewhere: uploads are read whole, downloads written whole."""

    name = "remote"
    max_attachment_bytes: int | None = None

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def ticket(self, ticket: str) -> Ticket:
        return Ticket(ticket, tuple(self._listed(name) for name in self.files))

    def _listed(self, name: str) -> Attachment:
        return Attachment(name, len(self.files[name]), "", "", location=name, id=name)

    def create(self, subject: str, description: str) -> str:
        return "R-1"

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
        for path in files:
            self.files[path.name] = path.read_bytes()
        return [self._listed(path.name) for path in files]

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        dest.write_bytes(self.files[attachment.name])


def _bytes_read() -> int:
    """Bytes this process has read through read calls so far (Linux)."""
    with open("/proc/self/io", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


needs_proc_io = pytest.mark.skipif(
    not os.path.exists("/proc/self/io"), reason="no /proc/self/io to count bytes read (not Linux)"
)


def _sealed(path: Path, events: int = 20_000) -> tuple[Path, KeySigner, str]:
    """A sealed transcript (about 3 MB by default), its key, and its SHA-256 as sealed."""
    signer = new_signer()
    cast = record_sample(path, signer, events=events, checkpoint_events=1000)
    return cast, signer, hashlib.sha256(cast.read_bytes()).hexdigest()


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
    data = first.read_bytes()
    first.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # changed whatever the byte was
    with pytest.raises(TicketBackendError, match="does not match"):
        reassemble(tmp_path)


@needs_proc_io
def test_the_local_store_keeps_one_copy_and_the_transcript_is_read_once(tmp_path: Path) -> None:
    cast, signer, digest = _sealed(tmp_path / "transcripts" / "s.cast")
    size = cast.stat().st_size
    box = Outbox()
    before = _bytes_read()
    entry = box.enqueue("local", "T-1", cast, signer, None, sha256=digest)
    delivered = box.deliver(entry, LocalTickets())
    read = _bytes_read() - before
    assert delivered is not None and box.entries() == []
    held = {a.name: a for a in LocalTickets().ticket("T-1").attachments}
    # Linked, not copied: the ticket's file is the sealed file itself, kept once on disk.
    assert os.path.samefile(held["s.cast"].location, cast)
    assert cast.stat().st_nlink == 2  # the technician's transcripts folder and the ticket
    assert held["s.cast"].sha256 == digest
    # One pass to verify it before it leaves the outbox, which also finds the
    # comment's list of operations (toolkit.tickets.summary). Copying it into the
    # outbox and the ticket, hashing it and reading the copy back took ten.
    assert read < 1.5 * size, f"read {read / size:.1f} times the transcript's size"


@needs_proc_io
def test_a_remote_system_gets_it_read_once_besides_the_upload_and_the_download(
    tmp_path: Path,
) -> None:
    cast, signer, digest = _sealed(tmp_path / "transcripts" / "s.cast")
    size = cast.stat().st_size
    remote = Remote()
    before = _bytes_read()
    entry = Outbox().enqueue("remote", "R-1", cast, signer, None, sha256=digest)
    delivered = Outbox().deliver(entry, remote)
    read = _bytes_read() - before
    assert delivered is not None and remote.files["s.cast"] == cast.read_bytes()
    # verify (with the comment's operations, as above), the upload, the downloaded copy's hash
    assert read < 3.5 * size, f"read {read / size:.1f} times the transcript's size"


def test_across_file_systems_the_local_store_copies_and_checks_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    cast, signer, digest = _sealed(tmp_path / "s.cast", events=50)
    box = Outbox()
    assert box.deliver(box.enqueue("local", "T-1", cast, signer, None), LocalTickets())
    held = {a.name: a for a in LocalTickets().ticket("T-1").attachments}
    stored = Path(held["s.cast"].location)
    assert not os.path.samefile(stored, cast) and stored.read_bytes() == cast.read_bytes()
    assert held["s.cast"].sha256 == digest and box.entries() == []


def test_a_transcript_changed_in_the_outbox_does_not_leave_it(tmp_path: Path) -> None:
    cast, signer, digest = _sealed(tmp_path / "s.cast", events=50)
    box = Outbox()
    entry = box.enqueue("local", "T-1", cast, signer, None, sha256=digest)
    waiting = entry.folder / "s.cast"
    data = bytearray(waiting.read_bytes())
    data[-40] ^= 1  # in place: the outbox's file and the sealed one are the same file
    with waiting.open("r+b") as f:
        f.write(data)
    with pytest.raises(TicketBackendError, match="changed since it entered the outbox"):
        box.deliver(entry, LocalTickets())
    (still,) = box.entries()
    assert "changed since" in (still.last_error or "")
    with pytest.raises(TicketBackendError, match="no local ticket"):
        LocalTickets().ticket("T-1")


def test_a_wrong_sha256_given_at_enqueue_is_caught_before_anything_leaves(tmp_path: Path) -> None:
    cast, signer, _ = _sealed(tmp_path / "s.cast", events=50)
    box = Outbox()
    entry = box.enqueue("local", "T-1", cast, signer, None, sha256="0" * 64)
    with pytest.raises(TicketBackendError, match="changed since it entered the outbox"):
        box.deliver(entry, LocalTickets())
    assert len(box.entries()) == 1


@pytest.mark.parametrize("form", ["format 1", "not trusted"])
def test_a_transcript_not_sealed_by_sha256_and_trust_is_hashed_and_still_delivered(
    tmp_path: Path, form: str
) -> None:
    # Only a SEALED format 2 seal vouches for the manifest's SHA-256; anything
    # else (an old format 1 file, a key the allowed_signers file does not list)
    # is hashed on its own, then checked and delivered as before.
    signer = new_signer()
    cast = record_sample(tmp_path / "s.cast", signer, format=1 if form == "format 1" else 2)
    signers = None
    if form == "not trusted":
        signers = write_allowed_signers(tmp_path / "allowed_signers", new_signer())
    box = Outbox()
    entry = box.enqueue("local", "T-1", cast, signer, None)
    delivered = box.deliver(entry, LocalTickets(), signers)
    assert delivered is not None
    assert delivered.verdict == ("UNTRUSTED" if signers else "SEALED")
    held = {a.name: a for a in LocalTickets().ticket("T-1").attachments}
    assert held["s.cast"].sha256 == hashlib.sha256(cast.read_bytes()).hexdigest()
