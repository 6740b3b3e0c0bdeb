"""An in-process agent and technician on loopback, for tests that drive the async core.

Subprocess tests (tests/integration/test_share_connect.py) run the real
commands; these helpers run the same classes inside the test's event loop so
that hostile clients, MITM proxies and refusals can be staged precisely.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from tests.helpers import EMAIL, new_signer
from toolkit.agent.operations import Question
from toolkit.agent.server import Agent, AgentSettings
from toolkit.consent import ApprovalRequest, Consent, Decision, OneTimeCode, Scope, parse_code
from toolkit.identity.store import Identity
from toolkit.plugins import Diagnostic, Fix
from toolkit.plugins.catalogue import Catalogue
from toolkit.policy import Policy
from toolkit.secrets import Secret
from toolkit.session.technician import TechnicianSession
from toolkit.transport.ssh import ConsentAsk, connect

MARKER = "toolkit-test-marker-7f3a"


@dataclass
class Collector:
    """The customer's screen, as a list."""

    codes: list[OneTimeCode] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    mirrored: bytearray = field(default_factory=bytearray)
    shells_ended: int = 0
    sizes: list[tuple[int, int]] = field(default_factory=list)

    def new_code(self, code: OneTimeCode) -> None:
        self.codes.append(code)

    def say(self, message: str) -> None:
        self.lines.append(message)

    def shell_size(self, width: int, height: int) -> None:
        self.sizes.append((width, height))

    def shell_output(self, data: bytes) -> None:
        self.mirrored += data

    def shell_ended(self) -> None:
        self.shells_ended += 1


@dataclass
class Customer:
    """Answers approvals like a customer would; records what was asked."""

    approve: bool = True
    approve_fixes: bool = True
    asked: list[ApprovalRequest] = field(default_factory=list)
    fixes: list[tuple[str, list[list[str]]]] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)

    def ask(self, request: ApprovalRequest) -> Decision:
        self.asked.append(request)
        return request.grant() if self.approve and request.grantable else request.decline()

    async def approve_fix(self, question: Question) -> bool:
        self.questions.append(question)
        self.fixes.append((question.name, [list(c) for c in question.commands]))
        return self.approve_fixes


def make_policy(root: Path) -> Policy:
    """Files under ``root/allowed`` readable, ``root/allowed/secret*`` denied; a few commands."""
    allowed = root.resolve() / "allowed"
    allowed.mkdir(parents=True, exist_ok=True)
    text = "\n".join(
        [
            "[files]",
            f"allow = {json.dumps([str(allowed), str(allowed) + '/**'])}",
            f"deny = {json.dumps([str(allowed) + '/secret*', '~/.ssh/**'])}",
            "max_bytes = 1048576",
            "[commands]",
            'diagnostics = [["echo", "{word}"], ["uptime"], ["head", "-c", "{n}", "/dev/zero"],'
            ' ["sleep", "{n}"], ["false"]]',
            'fixes = [["touch", "{word}"]]',
            "[placeholders]",
            'word = "^[A-Za-z0-9._/-]{1,200}$"',
            'n = "^[0-9]{1,10}$"',
        ]
    )
    return Policy.from_toml(text, source="test policy")


def make_catalogue() -> Catalogue:
    """Two diagnostics and a fix, installed on every platform."""
    return Catalogue(
        [
            Diagnostic("hello", "Say hello", run=[["echo", "hello"], ["uptime"]]),
            Diagnostic("broken", "Missing", run=[["no-such-command-xyz"]]),
            Fix("mark", "Leave a mark", apply=[["touch", "{home}/fixed"], ["echo", "done"]]),
        ]
    )


def identity(name: str = "Alice Tech", email: str = EMAIL) -> Identity:
    return Identity(name, email, new_signer(), "test")


async def start_agent(
    root: Path,
    *,
    customer: Customer | None = None,
    offered: Sequence[Scope] = (Scope.DIAGNOSTICS,),
    ttl: float = 600.0,
    policy: Policy | None = None,
    tunnel: Callable[[Agent], Any] | None = None,
) -> tuple[Agent, Collector, Customer]:
    """An agent on loopback, or behind ``tunnel(agent)`` (a relay's rendezvous)."""
    customer = customer or Customer()
    screen = Collector()
    agent = Agent(
        AgentSettings(
            policy=policy or make_policy(root),
            approver=customer,
            approve_fix=customer.approve_fix,
            offered=frozenset(offered),
            ttl=ttl,
            catalogue=make_catalogue(),
            transcripts=root / "customer-transcripts",
            hostname="customer-pc",
        ),
        screen,
    )
    if tunnel is None:
        await agent.start("127.0.0.1", 0)
    else:
        await agent.start(tunnel=tunnel(agent))
    return agent, screen, customer


def code_of(agent: Agent) -> Secret:
    return parse_code(agent.codes.current.display.reveal())


async def connect_to(
    agent: Agent,
    who: Identity | None = None,
    *,
    scopes: Sequence[Scope] = (Scope.DIAGNOSTICS,),
    code: Secret | None = None,
    ticket: str = "T-1",
    port: int | None = None,
) -> tuple[asyncssh.SSHClientConnection, Consent]:
    """Connect and pass consent (raises the consent error when the agent refuses)."""
    ask = ConsentAsk(who or identity(), ticket, frozenset(scopes), code or code_of(agent))
    return await connect("127.0.0.1", port or agent.address[1], ask)


async def open_session(
    agent: Agent,
    root: Path,
    who: Identity | None = None,
    *,
    scopes: Sequence[Scope] = (Scope.DIAGNOSTICS,),
) -> TechnicianSession:
    who = who or identity()
    ask = ConsentAsk(who, "T-1", frozenset(scopes), code_of(agent))
    conn, consent = await connect("127.0.0.1", agent.address[1], ask)
    return await TechnicianSession.start(
        conn, consent, who, f"127.0.0.1:{agent.address[1]}", path=root / "technician.cast"
    )
