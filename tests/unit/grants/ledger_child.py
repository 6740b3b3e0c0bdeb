"""A process that spends uses of a grant, for the ledger's crash and race tests.

    python -m tests.unit.grants.ledger_child ROOT GRANT_FILE [CRASH_AT]

It prints "ready", waits for a line on stdin (so that racing processes start
together), then spends until the grant is used up, printing each number it
got once spend() has returned, and "done" at the end. With CRASH_AT=k it
kills itself with SIGKILL at the k-th file-system call spend() makes (open,
write, fsync, link, unlink), to stop at every point of a spend in turn.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.grants import GrantRefused, Ledger, load

_CALLS = ("open", "write", "fsync", "link", "unlink")


def _crash_at(k: int) -> None:
    count = [0]
    for name in _CALLS:
        real = getattr(os, name)

        def wrapped(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            count[0] += 1
            if count[0] == k:
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(*args, **kwargs)

        setattr(os, name, wrapped)


def main() -> None:
    root, grant_file = Path(sys.argv[1]), Path(sys.argv[2])
    ledger, grant = Ledger(root), load(grant_file)
    print("ready", flush=True)
    sys.stdin.readline()
    if len(sys.argv) > 3:
        _crash_at(int(sys.argv[3]))
    while True:
        try:
            use = ledger.spend(
                grant,
                technician="alice@example.com",
                ticket=grant.ticket,
                session=f"s-{os.getpid()}",
                peer="127.0.0.1:1",
                now=datetime.now(UTC),
            )
        except GrantRefused as exc:
            print(f"done {exc.reason}", flush=True)
            return
        print(use.number, flush=True)


if __name__ == "__main__":
    main()
