"""Fuzzing the transcript verifier: ``examine`` and ``toolkit verify`` as a whole.

Seeds are real sealed transcripts: the committed tests/assets/sealed.cast and
one recorded here with a key the test holds. Each example edits one of them
the ways an attacker or a broken disk would: bits flipped, bytes inserted,
deleted or duplicated, lines dropped, repeated, swapped or moved, header and
event fields set to hostile JSON (escape sequences, 1e20, deep nesting), the
.sig damaged or swapped; and sometimes re-signs the result with the held key,
so that hostile fields reach a SEALED report too. Whatever the bytes:
- ``examine`` returns a Report or raises TranscriptFormatError, within seconds;
- a file whose bytes (or signature) differ from what was signed is never
  SEALED, and an unchanged one always is;
- ``toolkit verify`` exits 0, 1 or 2, never reports an internal error, prints
  nothing a terminal would take as a control sequence, gives each file the
  verdict ``examine`` gives it, and still checks the next file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import currently_in_test_context, event, given
from hypothesis import strategies as st

from tests.assets.make_assets import rechain
from tests.fuzz.budget import budget
from tests.helpers import new_signer, record_sample, write_allowed_signers
from toolkit.cli import run as toolkit
from toolkit.errors import SignatureError, TranscriptFormatError
from toolkit.identity import sshsig
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.identity.signer import Signer
from toolkit.transcript.verify import Report, Verdict, examine

ASSETS = Path(__file__).resolve().parents[1] / "assets"
#: One examine of a small file takes milliseconds; this is a hang, even on a loaded machine.
HANG = 30.0
T = TypeVar("T")


@dataclass(frozen=True)
class Seed:
    name: str
    data: bytes
    sig: bytes
    allowed_signers: Path
    signer: Signer | None  # the key that sealed it, when the test holds it


@functools.cache
def seeds() -> tuple[Seed, ...]:
    """The committed sample and a fresh recording (its key kept in memory only)."""
    asset = ASSETS / "sealed.cast"
    committed = Seed(
        "sealed.cast",
        asset.read_bytes(),
        (ASSETS / "sealed.cast.sig").read_bytes(),
        ASSETS / "allowed_signers",
        None,
    )
    scratch = Path(tempfile.mkdtemp(prefix="toolkit-fuzz-seed-"))
    signer = new_signer()

    def body(rec: Any) -> None:
        rec.event("refusal", op="read", path="/etc/shadow", reason="denied by policy")

    path = record_sample(scratch / "fresh.cast", signer, events=3, checkpoint_events=2, body=body)
    recorded = Seed(
        "fresh.cast",
        path.read_bytes(),
        path.with_name("fresh.cast.sig").read_bytes(),
        write_allowed_signers(scratch / "allowed_signers", signer),
        signer,
    )
    return committed, recorded


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, failing the test if it has not returned after ``seconds``."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            error.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise AssertionError(f"still running after {seconds:.0f} s: a hang")
    if error:
        raise error[0]
    return result[0]


# -- what an attacker writes ------------------------------------------------------------

ESCAPES = [
    "\x1b[2A\x1b[1G\x1b[2K",
    "\x1b]0;SEALED\x07",
    "\r\x1b[KSEALED",
    "\u202e",
    "\x9b2J",
    "\x00",
    "\ud800",
    "\\x1b",
]
hostile_text = (
    st.sampled_from(ESCAPES)
    | st.text(max_size=30)
    | st.integers(500, 20_000).map(lambda n: "A" * n)
)
hostile_numbers = st.sampled_from(
    [1e20, -1e15, 1e308, -1, 0, 2**63, 2**64 + 1, 0.5, float("inf"), float("nan"), -0.0]
) | st.integers(-(2**70), 2**70)
json_values = st.recursive(
    st.none() | st.booleans() | hostile_numbers | hostile_text,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
deep = st.integers(10, 100_000).map(lambda n: json.loads("[" * min(n, 900) + "]" * min(n, 900)))
values = hostile_text | hostile_numbers | json_values | deep

HEADER_FIELDS = [
    ("version",),
    ("width",),
    ("height",),
    ("timestamp",),
    ("env",),
    ("toolkit",),
    ("toolkit", "format"),
    ("toolkit", "session"),
    ("toolkit", "ticket"),
    ("toolkit", "technician"),
    ("toolkit", "technician", "name"),
    ("toolkit", "technician", "email"),
    ("toolkit", "technician", "fingerprint"),
    ("toolkit", "signer"),
    ("toolkit", "agent_host_key"),
    ("toolkit", "customer_host"),
    ("toolkit", "scope"),
    ("toolkit", "tool_version"),
    ("toolkit", "namespaces"),
    ("toolkit", "namespaces", "seal"),
]
EVENT_FIELDS = ["type", "reason", "duration", "op", "argv", "path", "result", "seq", "offset"]
EVENT_FIELDS += ["events", "sha256", "sig", "exit_status", "method"]
TOKENS = [b"\n", b'"', b"\\", b"\\u001b", b', "c", "', b', "e", "', b"\x00", b"\xff", b"\r", b"]"]


def lines_of(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def set_path(obj: Any, path: tuple[str, ...], value: Any, delete: bool) -> None:
    for key in path[:-1]:
        if not isinstance(obj, dict):
            return
        obj = obj.setdefault(key, {})
    if isinstance(obj, dict):
        if delete:
            obj.pop(path[-1], None)
        else:
            obj[path[-1]] = value


@st.composite
def header_edit(draw: st.DrawFn, data: bytes) -> bytes:
    lines = lines_of(data)
    try:
        header = json.loads(lines[0])
    except (IndexError, ValueError):  # an earlier edit broke it
        return data
    path = draw(st.sampled_from(HEADER_FIELDS))
    set_path(header, path, draw(values), delete=draw(st.booleans()))
    ascii_only = draw(st.booleans())
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=ascii_only)
    lines[0] = text.encode("utf-8", "surrogatepass") + b"\n"
    return b"".join(lines)


@st.composite
def event_edit(draw: st.DrawFn, data: bytes) -> bytes:
    lines = lines_of(data)
    if len(lines) < 2:
        return data
    index = draw(st.integers(1, len(lines) - 1))
    try:
        event = json.loads(lines[index])
    except ValueError:
        return data
    if not isinstance(event, list) or len(event) != 3:
        return data
    where = draw(st.sampled_from(["time", "code", "fields", "fields", "data"]))
    if where == "time":
        event[0] = draw(hostile_numbers | values)
    elif where == "code":
        event[1] = draw(st.sampled_from(["e", "c", "o", "i", "m", "r", "x", "", "E"]) | values)
    elif where == "data":
        event[2] = draw(values)
    else:
        try:
            fields = json.loads(event[2])
        except (TypeError, ValueError):
            fields = None
        if isinstance(fields, dict):
            key = draw(st.sampled_from(EVENT_FIELDS))
            set_path(fields, (key,), draw(values), delete=draw(st.booleans()))
            event[2] = json.dumps(fields, separators=(",", ":"))
    lines[index] = json.dumps(event).encode("utf-8", "surrogatepass") + b"\n"
    return b"".join(lines)


@st.composite
def byte_edit(draw: st.DrawFn, data: bytes) -> bytes:
    if not data:
        return draw(st.binary(max_size=100))
    pos = draw(st.integers(0, len(data)))
    size = draw(st.integers(0, 64))
    what = draw(st.sampled_from(["flip", "set", "insert", "delete", "duplicate", "truncate"]))
    if what == "flip" and pos < len(data):
        return data[:pos] + bytes([data[pos] ^ (1 << draw(st.integers(0, 7)))]) + data[pos + 1 :]
    if what == "set" and pos < len(data):
        return data[:pos] + bytes([draw(st.integers(0, 255))]) + data[pos + 1 :]
    if what == "insert":
        return data[:pos] + draw(st.sampled_from(TOKENS) | st.binary(max_size=16)) + data[pos:]
    if what == "duplicate":
        return data[:pos] + data[pos : pos + size] + data[pos:]
    if what == "truncate":
        return data[:pos]
    return data[:pos] + data[pos + size :]


@st.composite
def line_edit(draw: st.DrawFn, data: bytes) -> bytes:
    lines = lines_of(data)
    if not lines:
        return data
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    what = draw(st.sampled_from(["delete", "duplicate", "swap", "move", "insert", "reformat"]))
    if what == "delete":
        del lines[i]
    elif what == "duplicate":
        lines.insert(j, lines[i])
    elif what == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif what == "move":
        lines.insert(j, lines.pop(i))
    elif what == "insert":
        other = draw(st.sampled_from(seeds())).data
        lines.insert(i, draw(st.sampled_from(lines_of(other)) | st.binary(max_size=80)))
    else:  # the same JSON, written differently
        with contextlib.suppress(ValueError):
            lines[i] = json.dumps(json.loads(lines[i]), indent=None).encode() + b"\n"
    return b"".join(lines)


@st.composite
def sig_edit(draw: st.DrawFn, sig: bytes) -> bytes | None:
    what = draw(
        st.sampled_from(["keep", "keep", "keep", "missing", "bytes", "other", "garbage", "ws"])
    )
    if what == "missing":
        return None
    if what == "bytes":
        return draw(byte_edit(sig))
    if what == "other":
        return draw(st.sampled_from(seeds())).sig
    if what == "garbage":
        return draw(st.binary(max_size=300))
    if what == "ws":
        return sig.replace(b"\n", draw(st.sampled_from([b"\r\n", b" ", b"\n\n", b""])))
    return sig


@dataclass(frozen=True)
class Case:
    seed: Seed
    data: bytes
    sig: bytes | None
    resigned: bool  # sealed again by the seed's own key after the edits

    def write(self, directory: Path, name: str = "t.cast") -> Path:
        path = directory / name
        path.write_bytes(self.data)
        if self.sig is not None:
            path.with_name(name + ".sig").write_bytes(self.sig)
        return path

    @property
    def must_be_sealed(self) -> bool:
        """Whether this is exactly what the key signed (``False``: it must not be SEALED)."""
        if self.resigned:
            raise ValueError("a re-signed file may be SEALED or not")
        return self.data == self.seed.data and _signature(self.sig) == _signature(self.seed.sig)


def _signature(armoured: bytes | None) -> bytes | None:
    if armoured is None:
        return None
    try:
        return sshsig.dearmor(armoured)
    except SignatureError:
        return None


@st.composite
def cases(draw: st.DrawFn) -> Case:
    seed = draw(st.sampled_from(seeds()), label="seed")
    data = seed.data
    edits = st.sampled_from([header_edit, event_edit, byte_edit, line_edit, header_edit])
    for edit in draw(st.lists(edits, min_size=1, max_size=3), label="edits"):
        data = draw(edit(data))
    if seed.signer is not None and draw(st.integers(0, 3)) == 0:
        try:
            data, seal = rechain(data, seed.signer)
        except (ValueError, IndexError, AssertionError, TranscriptFormatError, UnicodeDecodeError):
            pass  # the edits left nothing rechain can parse: keep the unsigned bytes
        else:
            return Case(seed, data, seal.encode(), resigned=True)
    return Case(seed, data, draw(sig_edit(seed.sig), label="sig"), resigned=False)


# -- the properties --------------------------------------------------------------------


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="toolkit-fuzz-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def examined(path: Path, allowed_signers: Path) -> Report | TranscriptFormatError:
    trust = AllowedSigners.from_file(allowed_signers)
    try:
        report = within(HANG, lambda: examine(path, trust))
    except TranscriptFormatError as exc:  # the one documented failure
        note("not a transcript")
        return exc
    note(report.verdict.value)
    return report


def note(outcome: str) -> None:
    """Count outcomes for ``pytest --hypothesis-show-statistics``."""
    if currently_in_test_context():
        event(outcome)


@budget()
@given(case=cases())
def test_examine_returns_a_report_and_never_seals_an_edited_file(case: Case) -> None:
    with scratch() as directory:
        outcome = examined(case.write(directory), case.seed.allowed_signers)
    if isinstance(outcome, Report) and not case.resigned:
        assert (outcome.verdict is Verdict.SEALED) == case.must_be_sealed, outcome.failure


@budget()
@given(data=st.binary(max_size=2000), first=st.sampled_from([b"", b"{}\n", b"\n", b"[]\n"]))
def test_examine_takes_any_bytes(data: bytes, first: bytes) -> None:
    with scratch() as directory:
        path = directory / "t.cast"
        path.write_bytes(first + data)
        outcome = examined(path, ASSETS / "allowed_signers")
    assert not isinstance(outcome, Report) or outcome.verdict is not Verdict.SEALED


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = within(HANG, lambda: toolkit(args))
    return code, out.getvalue(), err.getvalue()


def terminal_safe(text: str) -> bool:
    """Nothing a terminal acts on but a newline: no ESC, CSI, BEL, CR, bidi override, ..."""
    return all(line.isprintable() for line in text.split("\n"))


@budget(quick=100)
@given(case=cases(), as_json=st.booleans())
def test_toolkit_verify_answers_every_file_with_a_verdict_or_one_sentence(
    case: Case, as_json: bool
) -> None:
    check_toolkit_verify(case, as_json)


def check_toolkit_verify(case: Case, as_json: bool) -> None:
    with scratch() as directory:
        edited = case.write(directory, "edited.cast")
        intact = Case(case.seed, case.seed.data, case.seed.sig, False).write(directory, "ok.cast")
        outcome = examined(edited, case.seed.allowed_signers)
        args = ["verify", str(edited), str(intact), "--allowed-signers"]
        code, out, err = run_cli([*args, str(case.seed.allowed_signers)] + as_json * ["--json"])
    assert "internal error" not in err and "Traceback" not in err, err
    assert terminal_safe(out) and terminal_safe(err), (out, err)
    if isinstance(outcome, TranscriptFormatError):
        expected = 2
    else:
        expected = 0 if outcome.verdict is Verdict.SEALED else 1
    assert code == expected, (out, err)
    # The intact file after it is still checked, and found SEALED.
    if as_json:
        reports = [json.loads(line) for line in out.splitlines()]
        assert reports[-1]["path"] == str(intact) and reports[-1]["verdict"] == "SEALED"
        if isinstance(outcome, Report):
            assert reports[0]["verdict"] == outcome.verdict.value
    else:
        lines = out.splitlines()
        assert f"SEALED {intact}" in lines, out
        if isinstance(outcome, Report):
            assert f"{outcome.verdict.value} {edited}" in lines, out


# -- what fuzzing found: kept as fixed cases, so that `make test` always tries them ----


def header_with(field: tuple[str, ...], value: object, raw: str = "") -> Case:
    """The committed sample with one header field set (to ``raw`` JSON text, if given)."""
    seed = seeds()[0]
    lines = lines_of(seed.data)
    header = json.loads(lines[0])
    set_path(header, field, "RAW" if raw else value, delete=False)
    text = json.dumps(header, separators=(",", ":")).replace('"RAW"', raw)
    return Case(seed, text.encode() + b"\n" + b"".join(lines[1:]), seed.sig, resigned=False)


def resigned_end_reason(reason: str) -> Case:
    """The customer's own copy, validly sealed, whose end reason a technician chose."""
    seed = seeds()[1]
    assert seed.signer is not None
    lines = lines_of(seed.data)
    [index] = [i for i, line in enumerate(lines) if b"session_end" in line]
    event = json.loads(lines[index])
    fields = json.loads(event[2])
    fields["reason"] = reason
    event[2] = json.dumps(fields, separators=(",", ":"))
    lines[index] = json.dumps(event).encode() + b"\n"
    data, seal = rechain(b"".join(lines), seed.signer)
    return Case(seed, data, seal.encode(), resigned=True)


FOUND = {
    # Issue 13: escapes in a header field redrew a TAMPERED report as SEALED.
    "ticket with cursor moves": lambda: header_with(
        ("toolkit", "ticket"), "\x1b[2A\x1b[1G\x1b[2KSEALED"
    ),
    "technician name with a C1 CSI": lambda: header_with(
        ("toolkit", "technician", "name"), "\x9b2J"
    ),
    # Issue 13: the end reason of a sealed copy, with escapes, redrew its counts.
    "sealed end reason with escapes": lambda: resigned_end_reason("\x1b[1A\x1b[2Koperations 0"),
    # Issue 13: a timestamp past datetime's range was an internal error.
    "timestamp 1e20": lambda: header_with(("timestamp",), 1e20),
    "timestamp -1e15": lambda: header_with(("timestamp",), -1e15),
    "ticket nested 5000 deep": lambda: header_with(
        ("toolkit", "ticket"), None, raw="[" * 5000 + "]" * 5000
    ),
}


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("name", sorted(FOUND))
def test_what_fuzzing_found_stays_fixed(name: str, as_json: bool) -> None:
    check_toolkit_verify(FOUND[name](), as_json)
