"""The fleet benchmark's stand-in for toolkit's side until issue 17 is merged.

Today's toolkit has no grants, no service agent and no fleet runner, but each
piece of a fleet run already exists: N agents as ``toolkit share`` makes them
(one session each, code consent, ``--yes``), and the session ``toolkit run FIX
--check`` runs on each (toolkit.session.workflow.run_session with the fix's
check, sealed, verified and attached to the ticket). This runs them the way
the contract's fleet will, so that the numbers can be had before the merge:

- ``agents N POLICY``: N agents on one event loop, each on its own loopback
  port with its own code; prints one JSON line (every host's port and code),
  then serves until every agent's one session ended or stdin closes.
- ``run HOSTS.json FIX TICKET --forks F``: in one process, each host's whole
  session (code consent, the check, end, seal, verify, attach) with at most F
  at once; prints one JSON line: how many hosts ended with each result (``ok``:
  not needed); exit 0 when every host ended ok.

Consent here is SPAKE2 with a code (about 10 ms a side, in pure Python), where
the contract's grant check is a signature check and a ledger write; and each
session retries the outbox at its start, which a fleet runner does once.
The technician's identity is the one of HOME (``toolkit keys init``).

    python -m bench.fleet_standin agents N POLICY
    python -m bench.fleet_standin run HOSTS.json FIX TICKET [--forks 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.consent import ApprovalRequest, Decision, OneTimeCode
    from toolkit.errors import ToolkitError
    from toolkit.secrets import Secret
    from toolkit.session.results import SessionResult, Tally
    from toolkit.session.technician import TechnicianSession
    from toolkit.tickets.attach import Attached, Synced


class Yes:
    """``toolkit share --yes``: approves what consent asks for, never more."""

    def ask(self, request: ApprovalRequest) -> Decision:
        return request.grant()

    async def approve_fix(self, question: object) -> bool:
        return False


class Quiet:
    """An agent's observer that keeps its code."""

    code = ""

    def new_code(self, code: OneTimeCode) -> None:
        self.code = code.display.reveal()

    def say(self, message: str) -> None:
        pass

    def shell_size(self, width: int, height: int) -> None:
        pass

    def shell_output(self, data: bytes) -> None:
        pass

    def shell_ended(self) -> None:
        pass


async def agents(hosts: int, policy_path: Path) -> int:
    from toolkit.agent.server import Agent, AgentSettings
    from toolkit.plugins.catalogue import Catalogue
    from toolkit.policy import Policy

    policy = Policy.load(policy_path)
    catalogue = Catalogue.installed()
    yes = Yes()
    served = []
    shown = []
    for _ in range(hosts):
        seen = Quiet()
        agent = Agent(
            AgentSettings(policy=policy, approver=yes, approve_fix=yes.approve_fix,
                          catalogue=catalogue),
            seen,
        )  # fmt: skip
        _, port = await agent.start("127.0.0.1", 0)
        served.append(agent)
        shown.append([port, seen.code])
    print(json.dumps({"hosts": shown}), flush=True)
    loop = asyncio.get_running_loop()
    eof = loop.run_in_executor(None, sys.stdin.buffer.read)
    ended = asyncio.ensure_future(asyncio.gather(*(a.wait() for a in served)))
    await asyncio.wait([eof, ended], return_when=asyncio.FIRST_COMPLETED)
    if not ended.done():
        for agent in served:
            await agent.stop("the benchmark is over")
        await asyncio.wait_for(ended, 30)
    return 0


class NoUI:
    """Nobody at the technician's side either: the fleet runner's hosts run unattended."""

    async def ask_code(self, *, again: bool = False) -> Secret:
        raise RuntimeError("the stand-in gives every code up front")

    def ticket_passphrase(self, *, confirm: bool = False) -> str:
        raise RuntimeError("the local ticket store needs no passphrase")

    def ticket_note(self, text: str) -> None:
        print(text, file=sys.stderr)  # already printable (SessionUI)

    def outbox_tried(self, synced: Sequence[Synced]) -> None:
        pass

    def connecting(self, place: str) -> None:
        pass

    def wrong_code(self, message: str) -> None:
        pass

    def consent_passed(self, host_key: str, granted: Sequence[str]) -> None:
        pass

    def attached(self, attached: Attached, principal: str) -> None:
        pass

    def attach_failed(self, error: ToolkitError) -> None:
        print(f"attach failed: {printable(error.message, None)}", file=sys.stderr)

    def finished(self, result: SessionResult) -> None:
        pass


async def run(hosts: list[list[Any]], fix: str, ticket: str, forks: int) -> dict[str, Any]:
    from toolkit.cli._fixes import technician_fix
    from toolkit.cli._identity import load_identity
    from toolkit.consent import Scope, parse_code
    from toolkit.session.fix_run import run_fix
    from toolkit.session.results import COMPLETED
    from toolkit.session.workflow import Place, SessionRequest, run_session
    from toolkit.transport._asyncssh import load

    load()
    identity = load_identity(None, None)
    mine = technician_fix(fix)
    if mine is None:
        raise SystemExit(f"no installed plugin of the technician's has the fix {fix}")
    gate = asyncio.Semaphore(forks)
    outcomes: dict[str, int] = {}

    async def one(port: int, code: str) -> None:
        request = SessionRequest(
            Place("127.0.0.1", port),
            identity,
            ticket,
            frozenset({Scope.DIAGNOSTICS}),
            parse_code(code),
        )

        async def work(session: TechnicianSession, tally: Tally) -> tuple[Any, str]:
            outcome = await run_fix(session, fix, mine, {}, check_only=True)
            for step in outcome.steps:
                tally.count(step.result)
            label = str(outcome.status)  # "ok": not needed
            outcomes[label] = outcomes.get(label, 0) + 1
            return outcome.exit_code, outcome.ended or COMPLETED

        async with gate:
            try:
                await run_session(request, NoUI(), work, ctrl_c_ends=False)
            except Exception as exc:  # one host failing never stops the others
                label = type(exc).__name__
                outcomes[label] = outcomes.get(label, 0) + 1
                print(f"127.0.0.1:{port}: {printable(str(exc), None)}", file=sys.stderr)

    await asyncio.gather(*(one(int(port), str(code)) for port, code in hosts))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_standin", description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("agents")
    a.add_argument("hosts", type=int)
    a.add_argument("policy", type=Path)
    r = sub.add_parser("run")
    r.add_argument("hosts_file", type=Path)
    r.add_argument("fix")
    r.add_argument("ticket")
    r.add_argument("--forks", type=int, default=50)
    args = p.parse_args(argv)
    if args.what == "agents":
        return asyncio.run(agents(args.hosts, args.policy))
    hosts = json.loads(args.hosts_file.read_text())["hosts"]
    outcomes = asyncio.run(run(hosts, args.fix, args.ticket, args.forks))
    print(json.dumps(outcomes), flush=True)
    return 0 if outcomes == {"ok": len(hosts)} else 1


if __name__ == "__main__":
    sys.exit(main())
