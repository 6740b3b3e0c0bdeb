"""One grant-only service agent in a process of its own, for the fleet test's host that is
killed mid-run (tests/integration/test_fleet_grants.py).

    python -m tests.integration.fleet_service_agent ROOT NAME ISSUERS FIFO

Its make-dir fix (another declaration than the other hosts': its own grant names it)
writes one line to FIFO when its apply starts, then waits: the test reads that line
and kills this process with SIGKILL. It prints one JSON line once it listens:
``{"port": N, "host_key": "SHA256:..."}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.session_support import Collector, Customer, make_policy
from toolkit.agent.server import Agent, AgentSettings
from toolkit.consent import Scope
from toolkit.grants.acceptance import GrantAcceptance
from toolkit.grants.ledger import Ledger
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.plugins import Fix, Parameter
from toolkit.plugins.catalogue import Catalogue


def hanging_fix(fifo: Path) -> Fix:
    """make-dir whose apply says it started, then hangs until the process is killed."""
    return Fix(
        "make-dir",
        "Make a directory in the home directory",
        parameters=(Parameter("name", pattern=r"[a-z0-9-]{1,30}", description="its name"),),
        check=[["test", "-d", "{home}/{name}"]],
        apply=[["sh", "-c", 'echo started > "$0"; exec sleep 600', str(fifo)]],
        verify=[["test", "-d", "{home}/{name}"]],
    )


async def serve(root: Path, name: str, issuers: Path, fifo: Path) -> None:
    nobody = Customer(approve=False, approve_fixes=False)
    agent = Agent(
        AgentSettings(
            policy=make_policy(root),
            approver=nobody,
            approve_fix=nobody.approve_fix,
            offered=frozenset({Scope.DIAGNOSTICS, Scope.FIXES}),
            catalogue=Catalogue([hanging_fix(fifo)]),
            transcripts=root / "customer-transcripts",
            hostname=name,
            grants=GrantAcceptance(
                AllowedSigners.from_file(issuers), Ledger(root / "grants"), frozenset({name})
            ),
            codes=False,
            service=True,
        ),
        Collector(),
    )
    _, port = await agent.start("127.0.0.1", 0)
    print(json.dumps({"port": port, "host_key": agent.host_key.fingerprint}), flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    root, name, issuers, fifo = sys.argv[1:5]
    asyncio.run(serve(Path(root), name, Path(issuers), Path(fifo)))
