"""Record a short, real diagnostic session on this machine into a sealed transcript.

Until `toolkit share`/`toolkit connect` land, this stands in for the session:
it runs a few read-only commands locally through the same Recorder API that
the session will use, signed by the stored technician identity.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from toolkit.identity.store import load
from toolkit.transcript.recorder import Recorder, new_header

COMMANDS = [["uname", "-sr"], ["uptime"], ["df", "-h", "/"]]


def main(path: Path) -> None:
    ident = load(lambda: os.environ["TOOLKIT_KEY_PASSPHRASE"])
    header = new_header(
        ident.name,
        ident.email,
        ident.signer,
        ticket="DEMO-1",
        scope=["diagnostics"],
        customer_host=socket.gethostname(),
        width=100,
        height=30,
    )
    with Recorder.create(path, header, ident.signer) as rec:
        rec.event("consent", method="demo", result="approved", scope=["diagnostics"])
        rec.marker("diagnostics")
        for argv in COMMANDS:
            line = shlex.join(argv)
            rec.output(f"$ {line}\r\n".encode())
            done = subprocess.run(argv, capture_output=True, check=False)
            rec.output(done.stdout.replace(b"\n", b"\r\n"))
            rec.event(
                "operation", op="run", argv=argv, exit_status=done.returncode,
                stdout_bytes=len(done.stdout), stderr_bytes=len(done.stderr),
            )  # fmt: skip
        rec.event("refusal", op="read", path="~/.ssh/id_ed25519", reason="denied by policy")
        rec.output(b"read ~/.ssh/id_ed25519: refused by the customer's policy\r\n")
    print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
