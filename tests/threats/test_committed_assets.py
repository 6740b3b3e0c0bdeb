"""The committed sample transcripts under tests/assets get exactly their verdicts.

The files come from tests/assets/make_assets.py (run it to regenerate them;
its docstring describes the sample's lines). They were signed with keys that
no longer exist, so these tests also show that verification needs nothing but
the files: no key store, no agent, no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.assets import make_assets
from tests.helpers import EMAIL, run
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.transcript.models import NAMESPACE_CHECKPOINT, NAMESPACE_SEAL
from toolkit.transcript.verify import Verdict, examine

ASSETS = Path(make_assets.__file__).resolve().parent
#: Each format's committed assets: format 1's predate format 2 and stay as they were.
FORMAT_DIRS = make_assets.DIRECTORIES
TRUSTED = "allowed_signers"


@dataclass(frozen=True)
class Expect:
    cast: str
    verdict: Verdict
    checkpoints: int  # valid checkpoints
    failing: int | None = None  # Failure.checkpoint
    line: int | None = None  # Failure.line
    reason: str = ""  # a phrase of Failure.reason
    allowed_signers: str = TRUSTED

    @property
    def id(self) -> str:
        suffix = "" if self.allowed_signers == TRUSTED else f"+{self.allowed_signers}"
        return self.cast + suffix


CASES = [
    Expect("sealed.cast", Verdict.SEALED, 3),
    Expect("missing_sig.cast", Verdict.UNSEALED, 3, 3, None, "no final signature"),
    Expect("truncated_mid_line.cast", Verdict.UNSEALED, 1, 1, 6, "ends before its seal"),
    Expect("flipped_byte.cast", Verdict.TAMPERED, 1, 2, 7, "SHA-256"),
    Expect("swapped_lines.cast", Verdict.TAMPERED, 1, 2, None, "SHA-256"),
    Expect("deleted_line.cast", Verdict.TAMPERED, 0, 1, None, "offset"),
    Expect("inserted_line.cast", Verdict.TAMPERED, 1, 2, None, "offset"),
    Expect("foreign_sig.cast", Verdict.TAMPERED, 3, 3, None, "final signature does not match"),
    Expect("namespaces_swapped.cast", Verdict.TAMPERED, 0, 1, None, "namespace"),
    Expect("resigned_checkpoint.cast", Verdict.TAMPERED, 1, 2, None, "different key"),
    Expect("forged_header.cast", Verdict.UNTRUSTED, 3, None, None, "does not trust"),
    Expect(
        "sealed.cast",
        Verdict.UNTRUSTED,
        3,
        reason="no line names this principal and key",
        allowed_signers="untrusted_signer_allowed_signers",
    ),
    Expect(
        "sealed.cast",
        Verdict.UNTRUSTED,
        3,
        reason="not trusted for namespace",
        allowed_signers="namespaces_omitted_allowed_signers",
    ),
]


#: Format 2's own: a seal or checkpoints signed with format 1's SHA-512 (good signatures by
#: the right key over the same bytes), and a format 1 file sealed with SHA-256.
DOWNGRADES = [
    Expect("downgraded_seal.cast", Verdict.TAMPERED, 3, 3, None, "sha512, but a format 2"),
    Expect("downgraded_checkpoints.cast", Verdict.TAMPERED, 0, 1, None, "sha512, but a format 2"),
    Expect(
        "format1_sealed_with_sha256.cast", Verdict.TAMPERED, 3, 3, None, "sha256, but a format 1"
    ),
]
CASES_BY_FORMAT = {1: CASES, 2: CASES + DOWNGRADES}
ALL_CASES = [(f, case) for f, cases in CASES_BY_FORMAT.items() for case in cases]


def expected_files(format: int) -> set[str]:
    names = {".gitattributes"}
    if format == 1:
        names |= {Path(make_assets.__file__).name, "format2"}
    for case in CASES_BY_FORMAT[format]:
        names |= {case.cast, case.allowed_signers}
        if case.cast != "missing_sig.cast":
            names.add(f"{case.cast}.sig")
    return names


def check(directory: Path, case: Expect) -> None:
    path = directory / case.cast
    report = examine(path, AllowedSigners.from_file(directory / case.allowed_signers))
    failure = report.failure
    assert report.verdict is case.verdict, failure
    assert report.checkpoints == case.checkpoints
    assert report.header.technician.name == "Alice Tech"
    assert report.header.technician.email == EMAIL
    if case.verdict is Verdict.SEALED:
        assert failure is None and report.trusted_as == EMAIL
        return
    assert failure is not None
    assert (failure.checkpoint, failure.line) == (case.failing, case.line), failure
    assert case.reason in failure.reason
    if failure.lines is not None:  # a checkpoint failed: the range holds the first change
        sealed, data = (directory / "sealed.cast").read_bytes(), path.read_bytes()
        first = next(i for i, (a, b) in enumerate(zip(sealed, data, strict=False)) if a != b)
        assert failure.byte_range is not None
        assert failure.byte_range[0] <= first < failure.byte_range[1]


@pytest.mark.parametrize(("format", "case"), ALL_CASES, ids=[f"v{f}:{c.id}" for f, c in ALL_CASES])
def test_each_committed_asset_gets_its_verdict(format: int, case: Expect) -> None:
    check(FORMAT_DIRS[format], case)
    assert examine(FORMAT_DIRS[format] / "sealed.cast", None).header.format == format


NOT_TRANSCRIPTS = ("__pycache__", "plugins")


@pytest.mark.parametrize("format", FORMAT_DIRS)
def test_every_committed_asset_is_checked_and_nothing_else_is_there(format: int) -> None:
    # tests/assets/plugins holds test plugin distributions, not transcripts.
    present = {p.name for p in FORMAT_DIRS[format].iterdir() if p.name not in NOT_TRANSCRIPTS}
    assert present == expected_files(format)


def test_no_private_key_is_committed_and_assets_stay_small() -> None:
    for path in [*ASSETS.iterdir(), *FORMAT_DIRS[2].iterdir()]:
        if path.is_file():
            data = path.read_bytes()
            assert b"PRIVATE KEY" not in data, path
            assert b"\r\n" not in data, f"{path} has CRLF line ends"
            assert len(data) < 8192 or path.suffix == ".py", path


@pytest.mark.parametrize("format", FORMAT_DIRS)
def test_make_assets_regenerates_files_with_the_same_verdicts(tmp_path: Path, format: int) -> None:
    written = make_assets.build(tmp_path, format)
    mine = {Path(make_assets.__file__).name, "format2"}
    assert {p.name for p in written} == expected_files(format) - mine
    for case in CASES_BY_FORMAT[format]:
        check(tmp_path, case)
    # Fresh keys every run: nothing is reused from the committed files.
    assert (tmp_path / TRUSTED).read_bytes() != (FORMAT_DIRS[format] / TRUSTED).read_bytes()


@pytest.mark.ssh_keygen
@pytest.mark.parametrize("format", FORMAT_DIRS)
@pytest.mark.parametrize(
    ("cast", "namespace", "allowed_signers", "ok"),
    [
        ("sealed.cast", NAMESPACE_SEAL, TRUSTED, True),
        ("sealed.cast", NAMESPACE_CHECKPOINT, TRUSTED, False),
        ("sealed.cast", NAMESPACE_SEAL, "untrusted_signer_allowed_signers", False),
        ("sealed.cast", NAMESPACE_SEAL, "namespaces_omitted_allowed_signers", False),
        ("truncated_mid_line.cast", NAMESPACE_SEAL, TRUSTED, False),
        ("flipped_byte.cast", NAMESPACE_SEAL, TRUSTED, False),
        ("foreign_sig.cast", NAMESPACE_SEAL, TRUSTED, False),
        ("namespaces_swapped.cast", NAMESPACE_SEAL, TRUSTED, False),
        # The swapped seal is a good signature, but only in the checkpoint namespace.
        ("namespaces_swapped.cast", NAMESPACE_CHECKPOINT, TRUSTED, True),
        ("forged_header.cast", NAMESPACE_SEAL, TRUSTED, False),
    ],
)
def test_ssh_keygen_agrees_on_the_final_signature(
    ssh_keygen: str, format: int, cast: str, namespace: str, allowed_signers: str, ok: bool
) -> None:
    # What a supervisor without toolkit runs (toolkit verify prints this command); the
    # same line for both formats: ssh-keygen reads the hash from the signature.
    assets = FORMAT_DIRS[format]
    result = run(
        ssh_keygen,
        "-Y",
        "verify",
        "-f",
        assets / allowed_signers,
        "-I",
        EMAIL,
        "-n",
        namespace,
        "-s",
        assets / f"{cast}.sig",
        stdin=(assets / cast).read_bytes(),
    )
    assert (result.returncode == 0) is ok, result.stderr.decode()
