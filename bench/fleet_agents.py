"""N grant-only service agents as tasks of one process, for bench/fleet.py.

The agents are what ``toolkit serve --accept-grants-from FILE`` runs
(``AgentSettings(codes=False, service=True, grants=GrantAcceptance(...))``),
N of them on one event loop: each with its own persistent host key
(``toolkit.agent.host_key.load_or_create`` under DIR/agents/NAME/), its own
loopback port, its own transcripts and grant ledger, and its own name (the
inventory name, which the grant lists). One process for all is the fleet
benchmark's counterpart of its baselines' N aliases of one sshd: the machine
is the same either way, and N Python processes would measure this VM's
memory rather than toolkit.

The grants' issuer is a fresh Ed25519 key (in memory); its allowed_signers
line goes to DIR/issuer.allowed_signers, which every agent trusts. Once all
listen, this process writes DIR/hosts.toml (every host's address and pinned
host key fingerprint) and DIR/grant.txt (one grant: the fix, every host by
name, the technician's key, the ticket, ``--uses`` uses per host), prints one
JSON line (``ready``), and serves until its stdin closes or SIGTERM; then it
stops every agent and prints one JSON line of totals.

    python -m bench.fleet_agents DIR --hosts N --policy FILE --technician "ssh-ed25519 AAAA..."
        --fix NAME --ticket T --uses N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.agent.server import Agent
    from toolkit.consent import ApprovalRequest, Decision, OneTimeCode
    from toolkit.identity.allowed_signers import AllowedSigners
    from toolkit.plugins.catalogue import Catalogue
    from toolkit.policy import Policy

#: The grants' issuer, as its allowed_signers line names it.
ISSUER = "owner@customer.example"
HOST = "127.0.0.1"
#: How long the grant is valid around now (the benchmark runs within it).
WINDOW = timedelta(hours=12)


class Nobody:
    """The customer of a grant-only agent: nobody to ask. A grant is the approval; anything
    that would need a person is refused, never approved."""

    def ask(self, request: ApprovalRequest) -> Decision:
        return request.decline("nobody-to-ask")

    async def approve_fix(self, question: object) -> bool:
        return False


@dataclass
class Log:
    """An agent's observer: each line it would show goes to stderr, with the agent's name."""

    name: str
    lines: int = 0

    def new_code(self, code: OneTimeCode) -> None:
        pass  # codes=False: none is ever shown

    def say(self, message: str) -> None:
        self.lines += 1
        print(f"{self.name}: {printable(message, None)}", file=sys.stderr, flush=True)

    def shell_size(self, width: int, height: int) -> None:
        pass

    def shell_output(self, data: bytes) -> None:
        pass

    def shell_ended(self) -> None:
        pass


@dataclass
class Host:
    name: str
    agent: Agent
    address: tuple[str, int]
    fingerprint: str


@dataclass
class Options:
    dir: Path
    hosts: int
    policy: Path
    technician: str
    fix: str
    ticket: str
    uses: int
    names: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.names = [f"h{i:04d}" for i in range(1, self.hosts + 1)]


def new_agent(
    name: str, opts: Options, policy: Policy, catalogue: Catalogue, trust: AllowedSigners
) -> Agent:
    """One agent as ``toolkit serve --accept-grants-from F --name NAME`` makes it."""
    from toolkit.agent.host_key import load_or_create
    from toolkit.agent.server import Agent, AgentSettings
    from toolkit.consent import Scope
    from toolkit.grants.acceptance import GrantAcceptance
    from toolkit.grants.ledger import Ledger

    base = opts.dir / "agents" / name
    base.mkdir(parents=True, exist_ok=True)
    nobody = Nobody()
    settings = AgentSettings(
        policy=policy,
        approver=nobody,
        approve_fix=nobody.approve_fix,
        offered=frozenset({Scope.DIAGNOSTICS, Scope.FIXES}),
        catalogue=catalogue,
        transcripts=base / "transcripts",
        hostname=name,
        codes=False,
        service=True,
        grants=GrantAcceptance(
            trust=trust, ledger=Ledger(base / "grants"), names=frozenset({name})
        ),
    )
    host_key = load_or_create(base / "host_key")
    return Agent(settings, Log(name), host_key=host_key)


async def serve(opts: Options) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from toolkit.grants import NAMESPACE, GrantedProcedure, issue
    from toolkit.identity.allowed_signers import AllowedSigners
    from toolkit.identity.keys import public_line
    from toolkit.identity.signer import KeySigner
    from toolkit.plugins import Kind
    from toolkit.plugins.catalogue import Catalogue
    from toolkit.plugins.loader import installed
    from toolkit.policy import Policy

    start = time.perf_counter()
    opts.dir.mkdir(parents=True, exist_ok=True)
    issuer = KeySigner(ed25519.Ed25519PrivateKey.generate())
    signers = opts.dir / "issuer.allowed_signers"
    signers.write_text(f'{ISSUER} namespaces="{NAMESPACE}" {public_line(issuer.public_blob)}\n')
    trust = AllowedSigners.from_file(signers)
    policy = Policy.load(opts.policy)
    catalogue = Catalogue.installed()  # one for all: the same plugins
    found = installed().find(Kind.FIX, opts.fix)
    if found is None:
        raise SystemExit(f"no installed plugin has the fix {opts.fix}")
    digest = found[0].sha256

    hosts: list[Host] = []
    for name in opts.names:
        agent = new_agent(name, opts, policy, catalogue, trust)
        address = await agent.start(HOST, 0)
        hosts.append(Host(name, agent, address, agent.host_key.fingerprint))

    inventory = opts.dir / "hosts.toml"
    inventory.write_text(
        "".join(
            f'[hosts.{h.name}]\naddress = "{h.address[0]}:{h.address[1]}"\n'
            f'host_key = "{h.fingerprint}"\n\n'
            for h in hosts
        )
    )
    now = datetime.now(UTC).replace(microsecond=0)
    grant = issue(
        issuer,
        issuer=ISSUER,
        technician=opts.technician,
        procedures=[GrantedProcedure(kind=Kind.FIX.value, name=opts.fix, sha256=digest)],
        scopes=(),
        # By name: fingerprint lines (57 bytes) pass the grant's 48 KiB at about 860 hosts.
        hosts=opts.names,
        ticket=opts.ticket,
        not_before=now - timedelta(minutes=5),
        not_after=now + WINDOW,
        uses=opts.uses,
        now=now,
    )
    grant_file = opts.dir / "grant.txt"
    grant_file.write_bytes(grant.to_bytes())
    ready = {
        "ready": len(hosts),
        "inventory": str(inventory),
        "grant": str(grant_file),
        "allowed_signers": str(signers),
        "seconds": round(time.perf_counter() - start, 3),
        "rss_mb": round(_peak_rss() / 1e6, 1),
    }
    print(json.dumps(ready), flush=True)

    await _until_stopped()
    for host in hosts:
        await host.agent.stop("the benchmark is over")
    for host in hosts:
        try:
            await asyncio.wait_for(host.agent.wait(), 10)
        except Exception as exc:  # one agent that will not stop must not keep the others
            print(f"{host.name}: stopping: {printable(repr(exc))}", file=sys.stderr, flush=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "stopped": len(hosts),
        "cpu": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(_peak_rss() / 1e6, 1),
    }


async def _until_stopped() -> None:
    """Until stdin closes (the benchmark ends) or SIGTERM."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    eof = loop.run_in_executor(None, sys.stdin.buffer.read)
    waiter = asyncio.ensure_future(stopped.wait())
    await asyncio.wait([eof, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_agents", description=__doc__)
    p.add_argument("dir", type=Path, help="where keys, transcripts, ledgers, inventory, grant go")
    p.add_argument("--hosts", type=int, required=True)
    p.add_argument("--policy", type=Path, required=True, help="every agent's policy (TOML)")
    p.add_argument("--technician", required=True, help="the grant's technician: a key line")
    p.add_argument("--fix", required=True)
    p.add_argument("--ticket", required=True)
    p.add_argument("--uses", type=int, required=True, help="uses per host")
    a = p.parse_args(argv)
    if not 1 <= a.hosts <= 9999:
        p.error("--hosts takes 1 to 9999")
    opts = Options(a.dir, a.hosts, a.policy, a.technician, a.fix, a.ticket, a.uses)
    totals = asyncio.run(serve(opts))
    print(json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
