"""The verifier's fast scan against the streaming scan it replaced.

``reference_scan`` is the previous implementation of ``verify._scan``, kept
here verbatim apart from its parameters (chunk size, longest line): it reads
the file in chunks, carries the partial last line over, and finds the
checkpoint and event marks with two separate searches. The fast scan must
agree with it on every file, damaged or not: the same checkpoint lines with
the same prefix hashes, the same event lines, line count, tail, SHA-512 and
overlong-line note. Small chunk, piece and line limits make every boundary
case (a line across chunks, a mark across pieces, an overlong line) occur in
files of a few hundred bytes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import new_signer, record_sample
from toolkit.errors import TranscriptFormatError
from toolkit.transcript.models import Event, Header

# The package re-exports a function named verify; this is the module.
verify_module = importlib.import_module("toolkit.transcript.verify")

CHECKPOINT_MARK = b', "c", "'
EVENT_MARK = b', "e", "'


@dataclass
class RefFound:
    line: int
    start: int
    raw: bytes
    prefix_sha256: str = ""


@dataclass
class RefScan:
    header: Header
    header_end: int
    size: int = 0
    lines: int = 1
    tail: int = 0
    checkpoints: list[RefFound] = field(default_factory=list)
    events: list[RefFound] = field(default_factory=list)
    digest: bytes = b""  # the whole file, with the hash its format's seal signs
    overlong_line: int | None = None


def reference_scan(path: Path, chunk_size: int, max_line: int) -> RefScan:
    with path.open("rb") as f:
        first = f.readline(1 << 20)
        assert first.endswith(b"\n")
        scan = RefScan(Header.from_line(first), len(first))
        whole = hashlib.new(scan.header.hash_algorithm, first)
        sha256 = hashlib.sha256(first)
        offset = len(first)
        carry = b""
        while chunk := f.read(chunk_size):
            data = carry + chunk if carry else chunk
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                region = data[:cut]
                whole.update(region)
                reference_region(scan, region, offset, sha256)
                offset += cut
            if len(carry) > max_line:
                scan.overlong_line = scan.lines + 1
                whole.update(carry)
                scan.tail += len(carry)
                carry = b""
                while chunk := f.read(chunk_size):
                    whole.update(chunk)
                    scan.tail += len(chunk)
        whole.update(carry)
        scan.tail += len(carry)
        scan.size = offset + scan.tail
        scan.digest = whole.digest()
    return scan


def reference_region(scan: RefScan, region: bytes, offset: int, sha256: Any) -> None:
    view = memoryview(region)
    pos = 0
    lines = scan.lines
    i = region.find(CHECKPOINT_MARK)
    while i != -1:
        start = region.rfind(b"\n", 0, i) + 1
        end = region.index(b"\n", i) + 1
        sha256.update(view[pos:start])
        lines += region.count(b"\n", pos, start)
        scan.checkpoints.append(
            RefFound(lines + 1, offset + start, region[start:end], sha256.hexdigest())
        )
        sha256.update(view[start:end])
        lines += 1
        pos = end
        i = region.find(CHECKPOINT_MARK, end)
    sha256.update(view[pos:])
    counted, line = 0, scan.lines
    i = region.find(EVENT_MARK)
    while i != -1:
        start = region.rfind(b"\n", 0, i) + 1
        end = region.index(b"\n", i) + 1
        line += region.count(b"\n", counted, start)
        counted = start
        scan.events.append(RefFound(line + 1, offset + start, region[start:end]))
        i = region.find(EVENT_MARK, end)
    scan.lines += region.count(b"\n")


def expected_event(raw: bytes) -> tuple[str | None, dict[str, Any] | None, type | None]:
    """What the stats need from an event line: its type, session_end's fields, an error."""
    try:
        fields = Event.from_line(raw).fields()
    except (ValueError, UnicodeDecodeError):
        return None, None, None
    except Exception as exc:
        return None, None, type(exc)
    kind = fields["type"]
    return kind, fields if kind == "session_end" else None, None


def assert_same_scan(path: Path, chunk_size: int, max_line: int) -> None:
    ref = reference_scan(path, chunk_size, max_line)
    got = verify_module._scan(path)
    assert got.header == ref.header and got.header_end == ref.header_end
    assert (got.size, got.lines, got.tail) == (ref.size, ref.lines, ref.tail)
    assert got.overlong_line == ref.overlong_line
    assert got.digest == ref.digest
    assert [(c.line, c.start, c.raw, c.prefix_sha256) for c in got.checkpoints] == [
        (c.line, c.start, c.raw, c.prefix_sha256) for c in ref.checkpoints
    ]
    assert [(e.line, e.end) for e in got.events] == [
        (e.line, e.start + len(e.raw)) for e in ref.events
    ]
    for event, ref_event in zip(got.events, ref.events, strict=True):
        kind, fields, error = expected_event(ref_event.raw)
        assert (event.kind, event.fields) == (kind, fields)
        assert type(event.error) is error if error else event.error is None


@pytest.fixture(scope="module", params=[2, 1], ids=["format2", "format1"])
def sample_lines(tmp_path_factory: pytest.TempPathFactory, request: Any) -> list[bytes]:
    """The lines of a real sealed transcript: header, every event kind, checkpoints.

    Both formats: format 2's whole-file hash is the scan's own SHA-256, format 1's
    the reader thread's SHA-512.
    """
    path = tmp_path_factory.mktemp("scan") / "sample.cast"
    record_sample(path, new_signer(), events=3, checkpoint_events=3, format=request.param)
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture
def limits() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def set_limits(mp: pytest.MonkeyPatch, chunk: int, max_line: int, piece: int, step: int) -> None:
    mp.setattr(verify_module, "_CHUNK", chunk)
    mp.setattr(verify_module, "_MAX_LINE", max_line)
    mp.setattr(verify_module, "_PIECE", piece)
    mp.setattr(verify_module, "_STEP_MIN_LINE", step)


FRAGMENTS = [
    b"\n",
    CHECKPOINT_MARK,
    EVENT_MARK,
    b', "c", "e", "',  # the two marks overlapping
    b', "e", "c", "',
    b', "o", "',
    b'[0.5, "e", "{\\"type\\":\\"operation\\"}"]\n',
    b'[0.5, "e", "{\\"type\\":\\"session_end\\",\\"reason\\":\\"x\\",\\"duration\\":1}"]\n',
    b'[0.5, "e", "' + b"[" * 3000 + b'"]\n',  # nested too deep for json
    b'[1e999, "e", "{\\"type\\":\\"x\\"}"]\n',
    b"\x00\x00",
    b"\xff\xfe",
    b"x" * 40,
]


@st.composite
def transcripts(draw: st.DrawFn, lines: list[bytes]) -> bytes:
    parts = draw(
        st.lists(
            st.one_of(
                st.sampled_from(lines[1:]),
                st.sampled_from(FRAGMENTS),
                st.binary(max_size=12),
            ),
            max_size=40,
        )
    )
    return lines[0] + b"".join(parts)


SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(
    data=st.data(),
    chunk=st.sampled_from([1, 7, 64, 4096, 8 << 20]),
    max_line=st.sampled_from([16, 100, 700, 16 << 20]),
    piece=st.sampled_from([1, 50, 1 << 20]),
    step=st.sampled_from([1, 64, 1024]),
)
def test_the_fast_scan_agrees_with_the_streaming_scan(
    sample_lines: list[bytes],
    tmp_path: Path,
    limits: pytest.MonkeyPatch,
    data: st.DataObject,
    chunk: int,
    max_line: int,
    piece: int,
    step: int,
) -> None:
    body = data.draw(transcripts(sample_lines), label="file")
    path = tmp_path / "t.cast"
    path.write_bytes(body)
    set_limits(limits, chunk, max_line, piece, step)
    assert_same_scan(path, chunk, max_line)


@pytest.mark.parametrize("chunk", [1, 3, 50, 333, 8 << 20])
@pytest.mark.parametrize("max_line", [10, 400, 16 << 20])
def test_every_line_of_a_sample_split_at_every_chunk_size(
    sample_lines: list[bytes],
    tmp_path: Path,
    limits: pytest.MonkeyPatch,
    chunk: int,
    max_line: int,
) -> None:
    path = tmp_path / "t.cast"
    path.write_bytes(b"".join(sample_lines))
    set_limits(limits, chunk, max_line, 1, 1024)
    assert_same_scan(path, chunk, max_line)
    path.write_bytes(b"".join(sample_lines)[:-3])  # a crash mid-line
    assert_same_scan(path, chunk, max_line)


def model_outcome(raw: bytes) -> object:
    try:
        return Event.from_line(raw).fields()
    except (ValueError, UnicodeDecodeError):
        return None
    except Exception as exc:
        return type(exc)


def fast_outcome(raw: bytes) -> object:
    try:
        return verify_module._event_fields(raw)
    except Exception as exc:
        return type(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
EVENT_LINES = [
    b'[0.5, "e", "{\\"type\\":\\"operation\\",\\"argv\\":[\\"ls\\"],\\"n\\":1}"]\n',
    b'[12.000001, "e", "{\\"type\\":\\"session_end\\",\\"reason\\":\\"ok\\"}"]\r\n',
    b'\xef\xbb\xbf[1, "e", "{\\"type\\":\\"x\\"}"]',
    b'[1, "e", "\\ufeff{\\"type\\":\\"x\\"}"]',
    b'[1, "e", " {\\"type\\":\\"x\\"} \\n"]',
    b'[1, "e", "{\\"type\\":\\"x\\"}\\u0000"]',
    b'[-0.0, "c", "{\\"type\\":\\"x\\"}"]',
    b'[1e999, "e", "{\\"type\\":\\"x\\"}"]',
    b"[" + b"9" * 400 + b', "e", "{\\"type\\":\\"x\\"}"]',
    b"[" + b"9" * 400 + b', "x", "{\\"type\\":\\"x\\"}"]',  # OverflowError first
    b"[-" + b"9" * 400 + b', "e", "{}"]',
    # UTF-16 whose bytes hold the event mark: json.loads detects the encoding.
    json.dumps(
        [1, "e", json.dumps({"type": "\u202c\u6522\u2c22\u2220"}, ensure_ascii=False)],
        ensure_ascii=False,
    ).encode("utf-16-le"),
    b'[true, "e", "{\\"type\\":\\"x\\"}"]',
    b'[1, "e", "{\\"type\\":\\"x\\"}", 4]',
    b'[1, "e", "{\\"type\\":\\"x\\"} {}"]',
    b'[1, "e", "{\\"type\\":' + b"[" * 3000 + b'"]',
]


@SETTINGS
@given(
    line=st.sampled_from(EVENT_LINES),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(-1, 255)), max_size=3),
)
def test_event_fields_agree_with_the_model_on_damaged_lines(
    line: bytes, edits: list[tuple[int, int]]
) -> None:
    raw = bytearray(line)
    for pos, value in edits:  # -1 deletes a byte, anything else replaces one
        if raw:
            pos %= len(raw)
            if value < 0:
                del raw[pos]
            else:
                raw[pos] = value
    assert fast_outcome(bytes(raw)) == model_outcome(bytes(raw))


@SETTINGS
@given(
    time=json_values,
    code=json_values,
    fields=json_values,
    extra=st.lists(json_values, max_size=1),
    space=st.sampled_from(["", " ", "\t\n", "\r\n  "]),
    prefix=st.sampled_from([b"", b"\xef\xbb\xbf", b"\x00", b"\xff\xfe", b" "]),
    encoding=st.sampled_from(["utf-8", "utf-16-le", "utf-16-be", "utf-32"]),
)
def test_event_fields_agree_with_the_model_on_any_json(
    time: object,
    code: object,
    fields: object,
    extra: list[object],
    space: str,
    prefix: bytes,
    encoding: str,
) -> None:
    data = fields if isinstance(fields, str) else json.dumps(fields)
    text = space + json.dumps([time, code, data, *extra]) + space
    raw = prefix + text.encode(encoding, "surrogatepass")
    assert fast_outcome(raw) == model_outcome(raw)
    assert fast_outcome(text.encode()) == model_outcome(text.encode())


@pytest.mark.parametrize("chunk", [1, 2, 5, 16, 17])
@pytest.mark.parametrize("length", [15, 16, 17, 31, 32, 33, 40])
@pytest.mark.parametrize("newline", [True, False])
def test_a_line_around_the_longest_length(
    sample_lines: list[bytes],
    tmp_path: Path,
    limits: pytest.MonkeyPatch,
    chunk: int,
    length: int,
    newline: bool,
) -> None:
    path = tmp_path / "t.cast"
    line = b"y" * length + (b"\n" if newline else b"")
    path.write_bytes(b"".join(sample_lines[:3]) + line + b"".join(sample_lines[3:5]))
    set_limits(limits, chunk, 16, 1, 1024)
    assert_same_scan(path, chunk, 16)
    path.write_bytes(b"".join(sample_lines[:3]) + line)
    assert_same_scan(path, chunk, 16)


def test_a_line_holding_both_marks_is_a_checkpoint_and_an_event(
    sample_lines: list[bytes], tmp_path: Path
) -> None:
    both = b'[1.0, "e", "x", "c", "y"]\n'
    path = tmp_path / "t.cast"
    path.write_bytes(b"".join(sample_lines[:3]) + both + b"".join(sample_lines[3:]))
    scan = verify_module._scan(path)
    assert scan.checkpoints[0].line == 4 and scan.checkpoints[0].raw == both
    assert [e.line for e in scan.events][:2] == [2, 4]
    assert_same_scan(path, 8 << 20, 16 << 20)


def test_json_nested_too_deep_is_a_malformed_event_not_an_error(
    sample_lines: list[bytes], tmp_path: Path
) -> None:
    # json raises RecursionError here: a line nobody can read is not an event, so a
    # signed one cannot crash the verifier either.
    deep = b'[0.5, "e", "' + b"[" * 100_000 + b'"]\n'
    path = tmp_path / "t.cast"
    path.write_bytes(b"".join(sample_lines) + deep)
    report = verify_module.examine(path, None)
    assert report.verdict.value == "TAMPERED"
    assert [e.kind for e in verify_module._scan(path).events][-1] is None
    with pytest.raises(ValueError, match="nested too deep"):
        Event.from_line(deep).fields()


def test_the_switch_interval_is_restored(sample_lines: list[bytes], tmp_path: Path) -> None:
    path = tmp_path / "t.cast"
    path.write_bytes(b"".join(sample_lines))
    before = sys.getswitchinterval()
    verify_module._scan(path)
    assert sys.getswitchinterval() == before
    path.write_bytes(b"not a transcript\n")
    with pytest.raises(TranscriptFormatError):
        verify_module._scan(path)
    assert sys.getswitchinterval() == before
