"""Session transcripts: asciicast v2 files with signed checkpoints and a final SSHSIG.

Usage::

    from toolkit.transcript import Recorder, new_header, examine

    header = new_header("Alice", "alice@example.com", signer, ticket="T-1")
    with Recorder.create(path, header, signer) as rec:
        rec.output(b"hello\\r\\n")
        rec.event("operation", op="run", argv=["uptime"], exit_status=0)
    report = examine(path, trust)

docs/transcript-format.md is the specification.
"""

from toolkit.transcript.models import NAMESPACE_CHECKPOINT, NAMESPACE_SEAL, NAMESPACES
from toolkit.transcript.recorder import Recorder, keep_checkpointing, new_header
from toolkit.transcript.verify import Report, Verdict, examine, verify

__all__ = [
    "NAMESPACES",
    "NAMESPACE_CHECKPOINT",
    "NAMESPACE_SEAL",
    "Recorder",
    "Report",
    "Verdict",
    "examine",
    "keep_checkpointing",
    "new_header",
    "verify",
]
