"""``toolkit share``: the customer lets a technician in, for one session.

New codes come only when the customer asks: a burned, expired or used code
stays so (the agent says why, and where failed tries came from) until the
customer types ``n`` and Enter, or a script writes the line ``new-code`` on
share's standard input. docs/consent.md says why and what that bounds.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._complete import complete_scope
from toolkit.cli._console import err, say, surely_not_a_terminal
from toolkit.cli._relay import (
    DEFAULT_RELAY_DIR,
    RelayDirOption,
    RelayOption,
    confirm_relay_host,
    relay_route,
    start_relayed,
)
from toolkit.cli._terminal import TerminalLines
from toolkit.errors import ExitCode, UsageError
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from toolkit.agent.operations import Answer, Question
    from toolkit.agent.server import Agent, CodeNotice
    from toolkit.agent.session import SessionEnd
    from toolkit.cli.live import LiveView
    from toolkit.consent import ApprovalRequest, Decision, OneTimeCode, TrustCheck
    from toolkit.grants.acceptance import GrantAcceptance

FIX_TIMEOUT = 120.0
#: The longest a code may stay valid: it is read out during a phone call, and a
#: relay keeps a rendezvous an hour by default (toolkit relay --max-ttl).
MAX_TTL = 3600.0
#: What an untrusted key means and what to do, in one line (it fits 80 columns).
UNTRUSTED = "NO: key not in your allowed_signers; check it with your provider"
#: What the customer types (or a script writes on stdin) for a new code.
NEW_CODE_WORDS = ("n", "new", "new-code")
#: After a decline: what ends share (an empty line is Enter).
END_WORDS = ("", "q", "quit", "end")
DECLINED_HINT = "Type n and Enter for a new code; Enter or q ends toolkit share."
#: Why no session started, by the reason share's JSON line gives.
DECLINED_WHY = {
    "declined": "you declined the technician",
    "no-answer": "no answer in time",
    "nobody-to-ask": "there was no terminal to ask you on",
    "nothing-offered": "nothing the technician asked for is offered",
}


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT``, ``HOST`` or ``:PORT``; UsageError otherwise."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "0"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # "::1:22" could be [::1]:22 or the address ::1:22 with no port
        raise UsageError(
            f"{text!r} is ambiguous: put an IPv6 address in brackets, like [::1]:PORT."
        )
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise UsageError(f"{text!r} is not HOST:PORT (the port must be 0-65535).")
    return host or default_host, int(port_text)


def _check_listen(text: str, host: str, port: int) -> None:
    """A host name that does not resolve is a mistake in --listen (exit 2), not a network error."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        detail = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise UsageError(
            f"--listen {text!r}: {host!r} is not a host name or address that resolves ({detail}).",
            hint="Give HOST:PORT, e.g. 127.0.0.1:0 (port 0 picks a free one).",
        ) from None


def _check_ttl(ttl: float) -> float:
    if not math.isfinite(ttl) or not 1 <= ttl <= MAX_TTL:
        raise UsageError(
            f"--ttl is the seconds a code stays valid, from 1 to {int(MAX_TTL)} (an hour); "
            "the customer can ask for a new code at any time."
        )
    return ttl


def _check_code_file(path: Path | None) -> None:
    """--code-file must name a file in a directory that exists: found before listening."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--code-file {printable(path)} is a directory, not a file.")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(
            f"--code-file {printable(path)}: the directory {printable(parent)} does not exist."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"--code-file {printable(path)}: the directory {printable(parent)} is not writable."
        )


def _reads_lines(fd: int) -> bool:
    """Whether ``fd`` can be read on the event loop: a terminal, a pipe or a socket."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return os.isatty(fd) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class _Keyboard:
    """The customer's lines on stdin, read by one task until a session starts.

    A line answers the question being asked (the approver's y or n), if one
    is; otherwise ``n`` (or ``new-code``) asks for a new code. One reader, so
    that a line never goes to two places.
    """

    def __init__(self, fd: int) -> None:
        self._lines = TerminalLines(fd)
        self._waiting: asyncio.Future[str] | None = None
        self.ended = False
        self.on_command: Callable[[str], None] = lambda line: None
        self.on_end: Callable[[], None] = lambda: None  # the end of input (not a cancel)

    async def run(self) -> None:
        """Read until the end of input (or cancelled, when the live view takes the keys)."""
        try:
            while True:
                line = await self._lines.line()
                waiting = self._waiting
                if waiting is not None and not waiting.done():
                    waiting.set_result(line)
                else:
                    self.on_command(line.strip().lower())
        except EOFError:
            self.ended = True
            self.on_end()
        finally:
            self.ended = True
            if self._waiting is not None and not self._waiting.done():
                self._waiting.set_exception(EOFError())

    async def answer(self) -> str:
        """The next line typed (EOFError once input has ended)."""
        import asyncio

        if self.ended:
            raise EOFError
        self._waiting = asyncio.get_running_loop().create_future()
        try:
            return await self._waiting
        finally:
            self._waiting = None


class _Screen:
    """What the customer sees: plain lines, then the live view while a session runs."""

    def __init__(self, as_json: bool, code_file: Path | None) -> None:
        self._json = as_json
        self._code_file = code_file
        self.agent: Agent | None = None
        self.live: LiveView | None = None
        self.keyboard: _Keyboard | None = None  # None: nobody can ask for a new code
        #: Ends share with no session (exit 3); set by share_command.
        self.end_declined: Callable[[str], None] = lambda why: None
        self._after_decline: str | None = None  # why, while "new code or end?" is asked

    @property
    def _asks(self) -> bool:
        return self.keyboard is not None and not self.keyboard.ended

    def code_unusable(self, notice: CodeNotice) -> None:
        """The code cannot be used any more: say how to get a new one (nothing happens alone).

        After a decline, share ends unless the customer asks for a new code there.
        """
        from toolkit.agent.server import DECLINES

        if notice.why in DECLINES:
            self._declined(notice.why)
            return
        asks = self._asks
        if self._json:
            line = {
                "event": "code-unusable",
                "reason": notice.why,
                "failed_tries": notice.failed,
                "ask": "new-code" if asks else None,
            }
            print(json.dumps(line), flush=True)
        elif asks:
            say("Type n and Enter for a new code (Ctrl-C ends toolkit share).", highlight=True)
        else:
            say("Start toolkit share again for a new code.", highlight=True)

    def _declined(self, reason: str) -> None:
        """The technician was not let in: end share, unless the customer asks for a new code."""
        why = DECLINED_WHY.get(reason, DECLINED_WHY["declined"])
        asks = self._asks
        if self._json:
            line = {"event": "declined", "reason": reason, "ask": "new-code" if asks else None}
            print(json.dumps(line), flush=True)
        if not asks:
            self.end_declined(why)
            return
        self._after_decline = why
        if not self._json:
            say(DECLINED_HINT, highlight=True)

    def input_ended(self) -> None:
        """Nobody can ask for a new code any more: if share was asking, it ends."""
        if self._after_decline is not None:
            why, self._after_decline = self._after_decline, None
            self.end_declined(f"{why}, and no new code was asked for")

    def command(self, line: str) -> None:
        """A line typed while nothing was asked."""
        if self._after_decline is not None and line not in NEW_CODE_WORDS:
            if line in END_WORDS:
                self.input_ended()
            else:
                say(DECLINED_HINT, highlight=True)
            return
        if not line:
            return
        if line in NEW_CODE_WORDS:
            self._after_decline = None
            assert self.agent is not None
            self.agent.fresh_code("you asked for a new code")
        else:
            say("Type n and Enter for a new code; Ctrl-C ends toolkit share.", highlight=True)

    def new_code(self, code: OneTimeCode) -> None:
        from toolkit import paths

        shown = code.display.reveal()
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=code.remaining())
        if self._code_file is not None:
            paths.atomic_write(self._code_file, shown.encode() + b"\n", 0o600)
        if self._json:
            assert self.agent is not None
            host, port = self.agent.address
            line = {
                "code": shown,
                "address": host,
                "port": port,
                "host_key": self.agent.host_key.fingerprint,
                "expires": expires.isoformat(timespec="seconds"),
            }
            print(json.dumps(line), flush=True)
            return
        local = expires.astimezone().strftime("%H:%M:%S")
        say(
            f"One-time code: {shown}   (read it to your technician; valid until {local})",
            stderr=False,
        )

    def say(self, message: str) -> None:
        if self.live is not None:
            self.live.say(message)
            return
        stamp = time.strftime("%H:%M:%S")
        say(f"[{stamp}] {printable(message)}")

    def shell_size(self, width: int, height: int) -> None:
        if self.live is not None:
            self.live.shell_size(width, height)

    def shell_output(self, data: bytes) -> None:
        if self.live is not None:
            self.live.shell_output(data)

    def shell_ended(self) -> None:
        if self.live is not None:
            self.live.shell_ended()


def _request_text(request: ApprovalRequest) -> str:
    from toolkit.consent import scope_names

    trusted = "yes (your allowed_signers vouches for it)" if request.trusted else UNTRUSTED
    return "\n".join(
        [
            "A technician asks to connect:",
            f"  name         {printable(request.name)}",
            f"  email        {printable(request.email)}",
            f"  key          {request.fingerprint}",
            f"  trusted      {trusted}",
            f"  ticket       {printable(request.ticket)}",
            f"  asks for     {', '.join(scope_names(request.requested))}",
            f"  you offer    {', '.join(scope_names(request.offered))}",
            f"  would grant  {', '.join(scope_names(request.grantable)) or '(nothing)'}",
        ]
    )


@dataclass(frozen=True)
class FixQuestion:
    """What the customer is asked about a fix, a brought procedure, or a command outside
    the diagnostics list, as lines for the screen."""

    title: str  # "The technician asks to run the fix flush-dns"
    lines: list[str]  # its summary (a procedure), then each exact command
    subject: str  # for the log, a whole phrase: "the fix flush-dns (Flush ...): 1 command"


def _count(commands: Sequence[Sequence[str]]) -> str:
    return f"{len(commands)} command{'s' if len(commands) != 1 else ''}"


def _fix_question(asked: Question) -> FixQuestion:
    """The agent's question as it asked it: the procedure's summary, then the exact
    commands it would run, each whole (and, when brought, every step, then the start
    of its description: it comes last, so that no text can push a command off)."""
    import shlex

    def shown(commands: Sequence[Sequence[str]]) -> list[str]:
        # Whole, never cut as messages are: the end of a long command could hide anything.
        return [f"  $ {printable(shlex.join(argv), None)}" for argv in commands]

    name = printable(asked.name)
    count = _count(asked.commands)
    if asked.summary is None:  # a `run` outside the diagnostics list
        return FixQuestion(
            f"The technician asks to run {name}",
            ["It runs exactly:", *shown(asked.commands)],
            f"running {name}: {count}",
        )
    summary = printable(asked.summary)
    outside = " (outside the approved scope)" if asked.out_of_scope else ""
    subject = f"the {asked.kind} {name} ({summary})"
    if asked.out_of_scope:
        subject += ", outside the approved scope"
    if asked.brought:
        lines = [
            summary,
            "",
            "It is not installed on this machine: the technician sent it, and toolkit",
            "cannot tell what its commands do. Approve only what you understand. Its steps:",
        ]
        for step, commands in asked.steps:
            lines += [f"{step} ({_count(commands)}):", *shown(commands)]
        lines += _description(asked.description)
        title = f"The technician brings the {asked.kind} {name}{outside}"
        return FixQuestion(title, lines, f"the brought {subject.removeprefix('the ')}: {count}")
    (step, commands), *later = asked.steps
    lines = [summary, "", f"It runs exactly ({_count(commands)}):", *shown(commands)]
    for other, undo in later:  # an apply's rollback: approved with it
        lines += [f"If it has to be undone, {other} runs ({_count(undo)}):", *shown(undo)]
    which = "" if step == "apply" else f" ({step})"
    title = f"The technician asks to run the {asked.kind} {name}{which}{outside}"
    return FixQuestion(title, lines, f"{subject}: {count}")


#: How much of a brought procedure's description the question shows (after its commands).
DESCRIPTION_LINES = 8
DESCRIPTION_CHARS = 600


def _description(text: str) -> list[str]:
    """The start of a brought procedure's description, saying how much is left out."""
    if not text.strip():
        return []
    lines = text.splitlines()
    kept: list[str] = []
    size = 0
    for line in lines[:DESCRIPTION_LINES]:
        if size + len(line) > DESCRIPTION_CHARS:
            break
        kept.append(printable(line))
        size += len(line)
    lines_left = len(lines) - len(kept)
    said = ["", "Its description, as the technician's plugin says it:", *kept]
    if lines_left:
        said.append(f"({lines_left} more lines not shown)")
    return said


class _Approver:
    """Asks at the terminal; ``--yes`` answers for the customer, with a warning each time."""

    def __init__(self, yes: bool) -> None:
        self._yes = yes
        self.keyboard: _Keyboard | None = None  # the lines typed, while no session runs
        self.live: LiveView | None = None  # asks in the live view while a session runs

    async def _line(self) -> str:
        if self.keyboard is None:
            raise EOFError  # stdin cannot be read on the loop
        return await self.keyboard.answer()

    async def _confirm(self, question: str) -> bool:
        """y or n at the terminal (no answer, or the end of input, is a no)."""
        while True:
            err().print(f"{question} [y/n] (n): ", end="", markup=False, highlight=False)
            try:
                answer = (await self._line()).strip().lower()
            except EOFError:
                say("", highlight=True)
                return False
            if answer in ("y", "yes"):
                return True
            if answer in ("", "n", "no"):
                return False
            say("Please answer y or n.", highlight=True)

    async def ask(self, request: ApprovalRequest) -> Decision:
        say(_request_text(request))
        if not request.grantable:
            say("Nothing asked for is offered: declined.", highlight=True)
            return request.decline("nothing-offered")
        if self._yes:
            say("WARNING: --yes approves without asking.", highlight=True)
            return request.grant()
        if not sys.stdin.isatty():
            say("No terminal to ask you on (use --yes in scripts): declined.", highlight=True)
            return request.decline("nobody-to-ask")
        ok = await self._confirm("Allow this technician in?")
        return request.grant() if ok else request.decline()

    async def approve_fix(self, question: Question) -> bool | Answer | None:
        """Yes or no from the customer; None when there is no one to ask."""
        import asyncio

        asked = _fix_question(question)
        if self._yes and question.brought:
            # --yes covers what the consent named; a brought procedure is commands the
            # technician wrote (a "diagnostic" may change anything): a person decides.
            answer = await self.ask_out_of_scope(question)
            if answer is None:
                # nosemgrep: toolkit-print-untrusted -- a FixQuestion is made of printable() text
                say(f"--yes never approves what a technician brings: refused {asked.subject}.")
            return answer
        if self.live is not None and not self._yes:
            return await self.live.ask(asked.title, asked.lines, FIX_TIMEOUT, asked.subject)
        # nosemgrep: toolkit-print-untrusted -- a FixQuestion is made of printable() text
        say("\n".join([asked.title, *asked.lines]))
        if self._yes:
            from toolkit.agent.operations import Answer

            say("WARNING: --yes approves without asking.", highlight=True)
            return Answer.YES_FLAG  # a yes, recorded as given by --yes, not by a person
        if not sys.stdin.isatty():
            say("No terminal to ask you on: refused.", highlight=True)
            return None
        try:
            return await asyncio.wait_for(self._confirm("Run it?"), FIX_TIMEOUT)
        except TimeoutError:
            from toolkit.agent.operations import Answer

            say("No answer in time: refused.", highlight=True)
            return Answer.NO_ANSWER

    async def ask_out_of_scope(self, question: Question) -> bool | Answer | None:
        """A fix outside the granted scope: only a person at the live view can allow it.

        None when there is nobody to ask: the transcript then says so, not "declined".
        """
        if self.live is None or not self.live.keys:
            return None  # --yes approves what the consent asked for, never more
        # Asked even under --yes: the person at the view decides, never the flag.
        asked = _fix_question(question)
        return await self.live.ask(asked.title, asked.lines, FIX_TIMEOUT, asked.subject)


ScopeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        metavar="SCOPE",
        help="What you offer at most: diagnostics, fixes, shell (repeatable) "
        "[default: diagnostics].",
        show_default=False,
        autocompletion=complete_scope,
    ),
]


def share_command(
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help="Where to listen; port 0 picks a free one. Non-loopback only when you say so.",
        ),
    ] = "127.0.0.1:0",
    ttl: Annotated[
        float,
        typer.Option(
            "--ttl", metavar="SECONDS", help=f"Seconds each code stays valid (1 to {int(MAX_TTL)})."
        ),
    ] = 600.0,
    code_file: Annotated[
        Path | None,
        typer.Option(
            "--code-file", metavar="FILE", help="Also write the code to this file (mode 0600)."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print each code and address as a JSON line (and a line when a code "
            "cannot be used; write new-code on stdin for a new one).",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Approve what is asked without asking (scripts, tests).")
    ] = False,
    scope: ScopeOption = None,
    policy_path: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            metavar="FILE",
            help="Policy TOML [default: config dir's agent.toml, else built-in].",
        ),
    ] = None,
    allowed_signers: Annotated[
        Path | None,
        typer.Option(
            "--allowed-signers",
            metavar="FILE",
            help="Which technician keys to show as trusted [default: as toolkit verify].",
            dir_okay=False,
        ),
    ] = None,
    relay: RelayOption = None,
    relay_dir: RelayDirOption = DEFAULT_RELAY_DIR,
    accept_grants_from: Annotated[
        Path | None,
        typer.Option(
            "--accept-grants-from",
            metavar="ALLOWED_SIGNERS",
            help="Also let in a technician who brings a grant signed by a key this file "
            "trusts for toolkit-grant, without asking you (the code works too).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Let a technician connect, for one session, after you approve it (or with a grant)."""
    from toolkit.consent import scopes
    from toolkit.policy import Policy

    host, port = parse_address(listen)
    _check_ttl(ttl)
    _check_code_file(code_file)
    route = relay_route(relay, relay_dir)
    _check_listen(listen, host, port)
    try:
        offered = scopes(scope or ["diagnostics"])
    except ValueError as exc:
        raise UsageError(f"--scope: {exc}") from None
    rules = Policy.resolve(policy_path)
    signers_path = allowed_signers
    if signers_path is None:
        from toolkit.cli.verify import default_allowed_signers

        signers_path = default_allowed_signers()
    trust = _trust(signers_path)
    grants = _grants(accept_grants_from)
    if route is not None:
        confirm_relay_host(route)  # before any code is made
    # Imported after the checks above, so that a usage error comes without the wait.
    from toolkit.agent.server import Agent, AgentSettings
    from toolkit.plugins.catalogue import Catalogue

    catalogue = Catalogue.installed()
    approver = _Approver(yes)
    screen = _Screen(as_json, code_file)
    settings = AgentSettings(
        catalogue=catalogue,
        policy=rules,
        approver=approver,
        approve_fix=approver.approve_fix,
        ask_out_of_scope=approver.ask_out_of_scope,
        offered=offered,
        trust=trust,
        ttl=ttl,
        code_unusable=screen.code_unusable,
        grants=grants,
    )

    agent = Agent(settings, screen)
    screen.agent = agent
    if route is None:
        agent.listen(host, port)  # shows the code; asyncio and the SSH server load after
        # Until the event loop takes over (main), SIGTERM ends it at once, as Ctrl-C does.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    import asyncio

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stopped: list[asyncio.Task[None]] = []  # by a signal: Ctrl-C or SIGTERM (exit 130)

        def stop(why: str) -> None:
            stopped.append(loop.create_task(agent.stop(why)))

        def quit_on_purpose(why: str) -> None:  # q in the live view: ended on purpose, exit 0
            ending.append(loop.create_task(agent.stop(why)))

        ending: list[asyncio.Task[None]] = []
        declined: list[str] = []  # why share ends with no session (exit 3)

        def end_declined(why: str) -> None:
            if not declined:
                declined.append(why)
                ending.append(loop.create_task(agent.stop(f"no session: {why}")))

        screen.end_declined = end_declined
        loop.add_signal_handler(signal.SIGINT, stop, "the customer ended the session (Ctrl-C)")
        loop.add_signal_handler(signal.SIGTERM, stop, "the agent was stopped (SIGTERM)")
        if route is not None:
            bound = await start_relayed(agent, route, screen.say)
        else:
            bound = _bound_text(*await agent.start(host, port))
        if not as_json:
            # Whose key: this share's own (the technician's screen shows it), never the relay's.
            relayed = "" if route is None else ", not the relay's"
            say(
                f"Listening on {bound}, this share's own host key "
                f"{agent.host_key.fingerprint}{relayed}. "
                "Ctrl-C ends it at once.",
            )
        ended = asyncio.ensure_future(agent.wait())
        keys = _listen_for_keys(screen, approver)
        try:
            await _live_view(agent, ended, screen, approver, quit_on_purpose, keys)
        finally:
            if keys is not None:
                keys.cancel()
        end = await ended
        if end.failure is not None:
            say(printable_lines(end.failure.diagnostics()), highlight=True)
        elif end.transcript is not None:
            copy = printable(str(end.transcript), None)  # its name holds the ticket
            trust = printable(f"{end.transcript}.allowed_signers", None)
            say(f"Your copy of the transcript: {copy}")
            say(f"Check it: toolkit verify --allowed-signers {trust} {copy}")
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if end.failure is not None:
            return int(end.failure.exit_code)
        if stopped:
            return int(ExitCode.INTERRUPTED)
        if declined and end.transcript is None:
            say(f"No session ran: {declined[0]}. toolkit share ends.", highlight=True)
            return int(ExitCode.REFUSED)
        return int(ExitCode.OK)

    code = asyncio.run(main())
    if code:
        raise typer.Exit(code)


def _grants(path: Path | None) -> GrantAcceptance | None:
    """The grants share takes (--accept-grants-from): issued by whom that file trusts."""
    if path is None:
        return None
    from toolkit.grants.acceptance import GrantAcceptance
    from toolkit.grants.ledger import Ledger

    return GrantAcceptance.from_file(path, Ledger.default())


def _trust(signers: Path | None) -> TrustCheck:
    """Whose keys to show as trusted: what ``signers`` vouches for, for sealing transcripts."""
    from toolkit.consent import trust_from_allowed_signers, untrusted
    from toolkit.identity.allowed_signers import AllowedSigners

    if not signers:
        return untrusted
    allowed = AllowedSigners.from_file(signers)  # read now: a bad file is an error before the code

    def check(key: bytes, email: str) -> bool:
        # Looked up when a technician asks: the transcript package is not loaded before.
        from toolkit.transcript.models import NAMESPACE_SEAL

        return trust_from_allowed_signers(allowed, NAMESPACE_SEAL)(key, email)

    return check


def _listen_for_keys(screen: _Screen, approver: _Approver) -> asyncio.Task[None] | None:
    """Read the customer's lines (answers, new-code requests) until a session starts."""
    import asyncio

    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    if fd < 0 or not _reads_lines(fd):
        return None  # nobody can ask for a new code: the customer is told to start again
    keyboard = _Keyboard(fd)
    keyboard.on_command = screen.command
    keyboard.on_end = screen.input_ended
    screen.keyboard = approver.keyboard = keyboard
    return asyncio.ensure_future(keyboard.run())


async def _live_view(
    agent: Agent,
    ended: asyncio.Future[SessionEnd],
    screen: _Screen,
    approver: _Approver,
    stop: Callable[[str], None],
    keyboard: asyncio.Task[None] | None = None,
) -> None:
    """Once a session starts, the live view until it ends (with a terminal to show or ask on).

    ``keyboard`` reads the customer's lines until then; it stops before the view reads keys.
    """
    import asyncio

    started = asyncio.ensure_future(agent.session_started.wait())
    waiting: set[asyncio.Future[Any]] = {started, ended}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        started.cancel()
    if keyboard is not None:  # the live view reads the keys from here on
        keyboard.cancel()
        await asyncio.gather(keyboard, return_exceptions=True)
    keys = sys.stdin.isatty()
    if ended.done() or (not keys and surely_not_a_terminal(sys.stderr)):
        return  # without a Console: the session runs meanwhile
    console = err()
    if not (keys or console.is_terminal):
        return
    from toolkit.cli.live import LiveView

    live = LiveView(agent, console, keys=keys)
    live.on_quit = lambda: stop("the customer ended the session (q)")
    screen.live = approver.live = live
    try:
        await live.run(ended)  # then the whole log, into the scrollback
    finally:
        screen.live = approver.live = None


def _bound_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["parse_address", "share_command"]
