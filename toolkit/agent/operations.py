"""What the agent does for each request, under the policy and the granted scopes.

Nothing here knows SSH: :class:`Operations` gets a parsed request and a
``send`` coroutine for data frames, and returns an :class:`Outcome`: the
response for the technician, the fields for the customer's transcript, and
one line for the customer's screen. The decisions are the policy's
(toolkit.policy) and the catalogue's (toolkit.plugins.catalogue); this module
only applies them and runs the processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from toolkit import policy as pol
from toolkit.errors import PolicyRefused, ToolkitError
from toolkit.grants.model import format_time
from toolkit.plugins.catalogue import Catalogue, Chosen
from toolkit.plugins.declaration import (
    MAX_VALUE,
    DeclarationError,
    Kind,
    ParameterError,
    ParameterType,
    Procedure,
    Step,
)
from toolkit.policy.commands import show_argv
from toolkit.protocol import (
    CONTENT,
    MAX_APPROVAL_COMMANDS,
    MAX_APPROVAL_STEPS,
    MAX_NOTICE_TEXT,
    STDERR,
    STDOUT,
    Op,
    Request,
    Response,
    commands_sha256,
    data_frames,
    lines_asked,
    notice_frame,
)

if TYPE_CHECKING:
    from toolkit.grants import Grant

Send = Callable[[bytes], Awaitable[None]]


class Answer(enum.Enum):
    """What came of asking the customer, when it was not the customer's own yes or no."""

    NOBODY = "nobody"  # no one at the screen, or --yes for something it does not cover
    NO_ANSWER = "no answer"  # asked, and no answer came in time
    YES_FLAG = "--yes"  # a yes given beforehand by `toolkit share --yes`: nobody was asked


Commands = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Question:
    """What the customer is asked to approve, whole: the asker shows it and derives nothing.

    ``steps`` are the exact commands the approval covers, by step: a fix's apply
    (with its rollback, which the same yes covers later), a rollback, every step of
    a brought procedure, or ``("run", (argv,))`` for a command outside the
    diagnostics list.
    """

    name: str  # the procedure's name, or the command line of a `run`
    steps: tuple[tuple[str, Commands], ...]
    summary: str | None = None  # a procedure's one line; None for a `run`
    description: str = ""  # a brought procedure's, shown whole
    brought: bool = False  # sent by the technician: not installed on this machine
    out_of_scope: bool = False  # a change the granted scopes do not cover
    kind: str = "fix"  # diagnostic or fix (a `run` outside the list counts as a fix)

    @property
    def commands(self) -> Commands:
        """Every command asked about, in order: what the approval event records."""
        return tuple(argv for _, commands in self.steps for argv in commands)


#: Asks the customer to approve a :class:`Question`: True is a yes, False a no, an
#: :class:`Answer` (or None, for NOBODY) that neither came, or a yes from --yes.
#: The transcript says which.
ApproveFix = Callable[[Question], Awaitable[bool | Answer | None]]
#: The same question for a fix outside the granted scope.
AskOutOfScope = ApproveFix
#: Records one approval event in the customer's copy, when the answer comes.
OnApproval = Callable[[dict[str, Any]], None]
PIPE_CHUNK = 256 * 1024
#: Starts the customer's line for a look-up the technician's Tab completion made.
COMPLETION = "completion: "


@dataclass(frozen=True)
class Outcome:
    response: Response
    record: dict[str, Any] = field(default_factory=dict)  # the customer's transcript event
    summary: str = ""  # one line for the customer's screen


@dataclass
class _Streams:
    """Bytes counted and hashed as they are forwarded, per stream."""

    sizes: dict[int, int] = field(default_factory=lambda: {STDOUT: 0, STDERR: 0})
    hashes: dict[int, Any] = field(
        default_factory=lambda: {STDOUT: hashlib.sha256(), STDERR: hashlib.sha256()}
    )


def approval(
    answer: bool | Answer | None,
    *,
    request: int,
    asked_for: str,
    procedure: Procedure | None,
    commands: Sequence[Sequence[str]],
    out_of_scope: bool,
) -> dict[str, Any]:
    """The approval event's fields (docs/transcript-format.md): who answered what, when."""
    if answer is True or answer is Answer.YES_FLAG:
        said = "approved"
    elif answer is False:
        said = "declined"
    elif answer is Answer.NO_ANSWER:
        said = "no answer"
    else:
        said = "nobody to ask"
    by = "customer" if isinstance(answer, bool) else "--yes" if answer is Answer.YES_FLAG else None
    listed = [list(c) for c in commands]
    return {
        "answer": said,
        "by": by,
        "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "request": request,
        "asked_for": asked_for,
        "procedure": procedure.name if procedure is not None else None,
        "summary": procedure.summary if procedure is not None else None,
        "commands": listed,
        "commands_sha256": commands_sha256(listed),
        "out_of_scope": out_of_scope,
    }


def _for_the_technician(fields: dict[str, Any]) -> dict[str, Any]:
    """The approval as sent with the response: its commands only while they are small."""
    commands = fields["commands"]
    size = len(json.dumps(commands, separators=(",", ":")))
    small = len(commands) <= MAX_APPROVAL_STEPS and size <= MAX_APPROVAL_COMMANDS
    return fields if small else {**fields, "commands": None}


def _decided(answer: bool | Answer | None, what: str, *, outside: bool, declined: str) -> None:
    """Return on a yes; else refuse saying what happened, never "declined" for silence."""
    if answer is True or answer is Answer.YES_FLAG:
        return
    why = "is outside the approved scope" if outside else "needs the customer's approval"
    if answer is None or answer is Answer.NOBODY:
        raise PolicyRefused(
            f"refused: {what} {why}, and no one was at the customer's screen to ask"
        )
    if answer is Answer.NO_ANSWER:
        raise PolicyRefused(f"refused: {what} {why}, and the customer did not answer in time")
    raise PolicyRefused(declined)


def _refusal(request: Request, exc: ToolkitError, record: dict[str, Any]) -> Outcome:
    code = "refused" if isinstance(exc, PolicyRefused) else "failed"
    if isinstance(exc, DeclarationError):
        code = "malformed"  # a brought declaration that does not parse
    record = {**record, "ok": False, "error": code, "message": exc.message}
    # Policy refusals already start with "refused:"; say it once on the customer's screen.
    summary = exc.message if exc.message.startswith(f"{code}:") else f"{code}: {exc.message}"
    return Outcome(
        Response(request.id, False, error=code, message=exc.message, result={}),
        record,
        summary,
    )


def by_grant(fields: dict[str, Any], grant: Grant) -> dict[str, Any]:
    """An approval event's fields when a grant answered: nobody was asked, the grant decided."""
    return {**fields, "answer": "approved", "by": "grant", "decided_by": "grant", "grant": grant.id}


class Operations:
    """Performs one session's requests for the granted ``scopes``.

    With a ``grant`` (consent by a grant, toolkit.consent._grant), only what it
    names runs, within the policy: a procedure's step only if the grant names
    it with the digest of the declaration that would run, or its scopes cover
    that kind; run, read, list and stat only with its diagnostics scope. A
    question the customer would be asked is answered by the grant instead, and
    recorded as such (``"by": "grant"``); nobody is asked anything.
    """

    def __init__(
        self,
        *,
        policy: pol.Policy,
        scopes: frozenset[str],
        catalogue: Catalogue,
        approve_fix: ApproveFix,
        send: Send,
        info: dict[str, Any],
        ask_out_of_scope: AskOutOfScope | None = None,
        on_approval: OnApproval | None = None,
        grant: Grant | None = None,
        revoked: Callable[[str], datetime | None] | None = None,
    ) -> None:
        self._grant = grant
        #: When the grant was revoked on this host (toolkit.grants.ledger.Ledger.revoked).
        self._revoked = revoked
        # With a grant nobody is asked: what it does not name is refused.
        self._ask_out_of_scope = ask_out_of_scope if grant is None else None
        self._on_approval = on_approval
        self._approvals: dict[int, dict[str, Any]] = {}  # by request id, until answered
        self._policy = policy
        self._scopes = scopes
        self._catalogue = catalogue
        #: (sha256, params) of brought procedures the customer approved this session.
        self._brought: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        #: (sha256, params) of fixes whose apply was approved: their rollback is too.
        self._rollback_approved: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        #: Digests of (pattern, value) lists a child process matched in time.
        self._patterns_ok: set[str] = set()
        self._approve_fix = approve_fix
        self._send = send
        self._info = info

    async def perform(self, request: Request) -> Outcome:
        record: dict[str, Any] = {"id": request.id, "op": request.op, **request.args}
        try:
            if request.op not in (Op.HELLO, Op.END):
                self._grant_in_force()
            outcome: Outcome = await getattr(self, f"_op_{request.op}")(request, record)
        except ToolkitError as exc:
            outcome = _refusal(request, exc, record)
        finally:
            asked = self._approvals.pop(request.id, None)
        if asked is not None:  # the technician hears what the customer answered
            response = replace(outcome.response, approval=_for_the_technician(asked))
            outcome = replace(outcome, response=response)
        if request.args.get("purpose") == "completion":  # a mark for the customer's screen
            outcome = replace(outcome, summary=f"{COMPLETION}{outcome.summary}")
        return outcome

    async def _ask(
        self,
        ask: ApproveFix,
        request: Request,
        question: Question,
        *,
        procedure: Procedure | None,
        asking: str,
    ) -> bool | Answer | None:
        """Ask, and record the answer as an approval event in both copies.

        Notices tell the technician the customer is being asked (``asking`` names
        what), and when the answer came (docs/protocol.md, "Notices").
        """
        await self._send(notice_frame(request.id, {"asking": asking[:MAX_NOTICE_TEXT]}))
        answer = await ask(question)
        await self._send(notice_frame(request.id, {"answered": True}))
        fields = approval(
            answer,
            request=request.id,
            asked_for=request.op,
            procedure=procedure,
            commands=question.commands,
            out_of_scope=question.out_of_scope,
        )
        self._approvals[request.id] = fields
        if self._on_approval is not None:
            self._on_approval(fields)
        return answer

    # -- scope -----------------------------------------------------------------

    def _need(self, scope: str, what: str) -> None:
        if scope not in self._scopes:
            raise PolicyRefused(
                f"refused: {what} needs the {scope} scope, which the customer did not grant"
            )
        grant = self._grant
        if grant is not None and scope not in grant.scopes:
            raise PolicyRefused(
                f"refused: {what} needs the {scope} scope, which the grant {grant.id} does not give"
            )

    def _grant_in_force(self) -> None:
        """Refuse every operation of a grant's session once the grant expired or was revoked.

        Consent checked both when the session began; a session held open past the
        grant's window, or past its revocation, may do nothing more.
        """
        grant = self._grant
        if grant is None:
            return
        if datetime.now(UTC) > grant.not_after:
            raise PolicyRefused(
                f"refused: the grant {grant.id} expired at {format_time(grant.not_after)}; "
                "this session may do nothing more"
            )
        revoked = self._revoked(grant.id) if self._revoked is not None else None
        if revoked is not None:
            raise PolicyRefused(
                f"refused: the grant {grant.id} was revoked on this host at "
                f"{format_time(revoked)}; this session may do nothing more"
            )

    def _granted(self, kind: Kind, name: str, sha256: str, *, brought: bool) -> None:
        """Refuse a procedure the grant does not name with this declaration, nor cover.

        A grant's scope covers the procedures installed here only: one the technician
        brings runs only when the grant names its digest (its commands are whatever the
        technician wrote, so a scope alone would make the grant a shell).
        """
        grant = self._grant
        assert grant is not None
        named = grant.names(kind.value, name)
        if named is not None:
            if named.sha256 != sha256:
                raise PolicyRefused(
                    f"refused: the grant {grant.id} names {name} with another declaration "
                    f"(sha256 {named.sha256}, not {sha256})"
                )
            return
        if brought:
            raise PolicyRefused(
                f"refused: the {kind.value} {name} is brought, and the grant {grant.id} does "
                "not name it with its digest (a grant's scope covers installed ones only)"
            )
        if ("fixes" if kind is Kind.FIX else "diagnostics") in grant.scopes:
            return
        raise PolicyRefused(f"refused: the grant {grant.id} does not name the {kind.value} {name}")

    def _answer_by_grant(
        self, request: Request, question: Question, procedure: Procedure | None
    ) -> None:
        """The grant answers what the customer would be asked: an approval event in both copies."""
        assert self._grant is not None
        fields = by_grant(
            approval(
                True,
                request=request.id,
                asked_for=request.op,
                procedure=procedure,
                commands=question.commands,
                out_of_scope=False,
            ),
            self._grant,
        )
        self._approvals[request.id] = fields
        if self._on_approval is not None:
            self._on_approval(fields)

    # -- operations ------------------------------------------------------------

    async def _op_hello(self, request: Request, record: dict[str, Any]) -> Outcome:
        return Outcome(Response(request.id, True, self._info), record, "session started")

    async def _op_end(self, request: Request, record: dict[str, Any]) -> Outcome:
        return Outcome(Response(request.id, True), record, "the technician ended the session")

    async def _op_run(self, request: Request, record: dict[str, Any]) -> Outcome:
        argv: list[str] = request.args["argv"]
        shown = show_argv(argv)
        self._need("diagnostics", f"run {shown!r}")
        try:
            pol.match_command(argv, self._policy, "diagnostics")
        except PolicyRefused as refused:
            granted = "fixes" in self._scopes
            ask = self._approve_fix if granted else self._ask_out_of_scope
            if ask is None or not self._policy.commands.get("fixes"):
                raise
            try:
                pol.match_command(argv, self._policy, "fixes")
            except PolicyRefused:
                raise refused from None
            question = Question(shown, (("run", (tuple(argv),)),), out_of_scope=not granted)
            if self._grant is not None:  # a change only with the grant's fixes scope
                self._need("fixes", f"run {shown!r}")
                self._answer_by_grant(request, question, None)
                record["approved"] = True
                result = await self._execute(request.id, argv)
                record.update(result)
                return Outcome(
                    Response(request.id, True, result),
                    record,
                    f"run {shown} -> exit {result['exit_status']} (grant {self._grant.id})",
                )
            outside = "" if granted else " (outside the approved scope)"
            answer = await self._ask(
                ask, request, question, procedure=None, asking=f"run {shown}{outside}"
            )
            declined = f"refused: the customer declined to run {shown!r}"
            try:
                _decided(answer, f"running {shown!r}", outside=not granted, declined=declined)
            except PolicyRefused as why:
                raise why from None
            record["approved"] = True
            if not granted:
                record["out_of_scope"] = True
        result = await self._execute(request.id, argv)
        record.update(result)
        return Outcome(
            Response(request.id, True, result),
            record,
            f"run {shown} -> exit {result['exit_status']}",
        )

    async def _op_diag(self, request: Request, record: dict[str, Any]) -> Outcome:
        return await self._procedure(request, record, Kind.DIAGNOSTIC)

    async def _op_fix(self, request: Request, record: dict[str, Any]) -> Outcome:
        return await self._procedure(request, record, Kind.FIX)

    async def _procedure(self, request: Request, record: dict[str, Any], kind: Kind) -> Outcome:
        """One step of a diagnostic or fix, installed or brought (docs/protocol.md, "diag, fix").

        In order, before anything runs: the scope, the procedure (policy, platform,
        a brought one's declaration), its parameters, the files it names; then
        the customer's approvals; then its commands, a fix's up to the first failing.
        """
        args = request.args
        name: str = args["name"]
        default = Step.RUN if kind is Kind.DIAGNOSTIC else Step.APPLY
        step = Step(args.get("step", default))
        record.pop("declaration", None)  # the transcript names it by its sha256
        record["step"] = step.value
        outside = False
        if self._grant is not None:
            # The grant decides below, once the declaration that would run is known.
            if not step.read_only and "fixes" not in self._scopes:
                raise PolicyRefused(
                    f"refused: {request.op} {name[:64]!r} changes the system, and this "
                    "session was not granted the fixes scope"
                )
        elif step.read_only:
            self._need("diagnostics", f"{request.op} {name[:64]!r}")
        elif "fixes" not in self._scopes:
            if self._ask_out_of_scope is None:
                self._need("fixes", f"{request.op} {name[:64]!r}")
            outside = True  # the customer may still allow this one change
        if args.get("declaration") is not None:
            # What the policy refuses by name is refused before any work on a declaration.
            rules = self._policy.procedures
            rules.check(kind.value, name)
            if self._catalogue.find(kind, name) is None:
                rules.check_brought(kind.value, name)
            await self._patterns_in_time(args["declaration"], args.get("params", {}))
        chosen = self._choose(kind, name, args.get("declaration"))
        procedure = chosen.procedure
        record["procedure"] = chosen.about()
        if self._grant is not None:
            self._granted(kind, name, procedure.sha256, brought=chosen.source == "brought")
        if step not in procedure.steps:
            raise PolicyRefused(f"refused: the {kind.value} {name} has no {step.value} step")
        try:
            values = procedure.bind(args.get("params", {}))
        except ParameterError as exc:
            raise PolicyRefused(f"refused: {exc.message}") from None
        record["params"] = values
        await off_the_loop(self._check_files, procedure, values)
        commands = procedure.resolve(step, values, self._policy.home)
        record["commands"] = [list(c) for c in commands]
        await self._approve(request, record, chosen, step, values, outside=outside)
        results = []
        for argv in commands:
            result = await self._execute(request.id, list(argv))
            results.append({"argv": list(argv), **result})
            # A fix's step stops at its first failing command; a diagnostic gathers everything.
            if kind is Kind.FIX and result["exit_status"] != 0:
                break
        status = next((r["exit_status"] for r in results if r["exit_status"] != 0), 0)
        summary = {
            "name": procedure.name,
            "step": step.value,
            "exit_status": status,
            "steps": results,
            "procedure": chosen.about(),
            "params": values,
        }
        record.update(summary)
        which = f" ({step.value})" if "step" in args else ""  # as asked: run names each
        by = f" (grant {self._grant.id})" if self._grant is not None else ""
        return Outcome(
            Response(request.id, True, summary),
            record,
            f"{kind.value} {procedure.name}{which} -> exit {status}{by}",
        )

    async def _patterns_in_time(self, declaration: Any, params: Any) -> None:
        """Refuse a brought declaration whose patterns take too long on its values.

        Parsing and binding it match each parameter's pattern against its default
        and the value given, with Python's backtracking ``re``, which holds the GIL:
        a pattern like ``([a-z]+)+`` backtracks for hours on 30 characters and would
        freeze the agent, the customer's Ctrl-C with it. So the same matches run
        first in a child process with a time limit; past it, the request is refused.
        """
        pairs = _pattern_values(declaration, params)
        if not pairs:
            return
        key = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()
        if key in self._patterns_ok:
            return
        why = await _match_elsewhere(pairs)
        if why is not None:
            raise PolicyRefused(
                f"refused: the parameter patterns of the declaration sent {why}; nothing ran",
                hint="Write each pattern without nested repeats, such as ([a-z]+)+.",
            )
        self._patterns_ok.add(key)

    def _choose(self, kind: Kind, name: str, declaration: Any) -> Chosen:
        try:
            return self._catalogue.choose(kind, name, self._policy.procedures, declaration)
        except DeclarationError as exc:
            raise DeclarationError(f"the declaration sent is malformed: {exc.message}") from None
        except (TypeError, ValueError):  # a shape from_dict's checks did not foresee
            raise DeclarationError("the declaration sent is malformed.") from None

    def _check_files(self, procedure: Procedure, values: dict[str, str]) -> None:
        """Every file it reads as a ``read`` would be, every path parameter as a ``stat``."""
        for path in procedure.resolved_reads(values, self._policy.home):
            try:
                pol.open_for_read(path, self._policy).close()
            except PolicyRefused as exc:
                raise _about(exc, f"{procedure.name} reads", path) from None
        for parameter in procedure.parameters:
            if parameter.type is not ParameterType.PATH:
                continue
            path = values[parameter.name]
            try:
                pol.stat_path(path, self._policy)
            except PolicyRefused as exc:
                raise _about(exc, f"-p {parameter.name} names", path) from None

    async def _approve(
        self,
        request: Request,
        record: dict[str, Any],
        chosen: Chosen,
        step: Step,
        values: dict[str, str],
        *,
        outside: bool,
    ) -> None:
        """Ask the customer what this step needs asked, once; return on a yes, refuse else.

        A brought procedure is shown whole, once per session per (digest, values);
        asked with an apply or a rollback, that one question covers it too, since it
        shows every command. An apply is shown with its rollback, and a yes to it
        covers that rollback later in the session.
        """
        procedure = chosen.procedure
        home = self._policy.home
        key = (procedure.sha256, tuple(sorted(values.items())))
        brought = chosen.source == "brought"
        ask_brought = brought and key not in self._brought
        changes = not step.read_only
        ask_change = changes and not (step is Step.ROLLBACK and key in self._rollback_approved)
        if not (ask_brought or ask_change):
            return
        shown = [step] if not ask_brought else list(procedure.steps)
        if step is Step.APPLY and not ask_brought and Step.ROLLBACK in procedure.steps:
            shown.append(Step.ROLLBACK)
        question = Question(
            procedure.name,
            tuple((s.value, procedure.resolve(s, values, home)) for s in shown),
            summary=procedure.summary,
            description=procedure.description if brought else "",
            brought=brought,
            out_of_scope=outside and changes,
            kind=procedure.kind.value,
        )
        if self._grant is not None:  # the grant named this declaration: it is the approval
            self._answer_by_grant(request, question, procedure)
            record["approved"] = True
            if ask_brought:
                self._brought.add(key)
            if step is Step.APPLY:
                self._rollback_approved.add(key)
            return
        ask = self._ask_out_of_scope if question.out_of_scope else self._approve_fix
        assert ask is not None  # outside is set only when there is someone to ask
        what = f"the {procedure.kind.value} {procedure.name}"
        if step is Step.ROLLBACK and not ask_brought:
            what = f"the rollback of {what}"
        elif step.read_only and ask_brought:
            what = f"the brought {procedure.kind.value} {procedure.name}"
        note = " (outside the approved scope)" if question.out_of_scope else ""
        answer = await self._ask(
            ask, request, question, procedure=procedure, asking=f"{what[4:]}{note}"
        )
        declined = f"refused: the customer declined {what}"
        if question.out_of_scope:
            declined += ", which is outside the approved scope"
        _decided(answer, what, outside=question.out_of_scope, declined=declined)
        record["approved"] = True
        if question.out_of_scope:
            record["out_of_scope"] = True
        if ask_brought:
            self._brought.add(key)
        if step is Step.APPLY:
            self._rollback_approved.add(key)

    async def _op_read(self, request: Request, record: dict[str, Any]) -> Outcome:
        self._need("diagnostics", "read")
        digest = hashlib.sha256()
        size = 0
        opened = await off_the_loop(pol.open_for_read, request.args["path"], self._policy)
        # The same checked open as a whole read; then only the lines asked are read and sent.
        head, tail = request.args.get("head"), request.args.get("tail")
        asked = lines_asked(request.args)
        if head is not None:
            chunks = opened.head(head)
        elif tail is not None:
            chunks = opened.tail(tail)
        else:
            chunks = opened.chunks(PIPE_CHUNK)
        reading = False
        try:
            while True:
                # Given up mid-read (cancelled), the descriptor is closed only once the read
                # has returned: closed sooner, its number could be reused under the read.
                reading = True
                try:
                    chunk = await off_the_loop(next, chunks, b"", abandoned=opened.close)
                except asyncio.CancelledError:
                    raise  # the read goes on; `abandoned` closes the file once it is over
                except BaseException:
                    reading = False  # it is over, and failed (a file past its cap)
                    raise
                reading = False
                if not chunk:
                    break
                digest.update(chunk)
                size += len(chunk)
                for frame in data_frames(request.id, CONTENT, chunk):
                    await self._send(frame)
        finally:
            if not reading:
                opened.close()
        real = opened.real_path
        result: dict[str, Any] = {"path": real, "size": size, "sha256": digest.hexdigest()}
        if asked:  # the range asked is in the request's fields; say what the file was
            result["file_size"] = opened.size
        record.update(result)
        return Outcome(
            Response(request.id, True, result), record, f"read {real} ({asked}{size} bytes)"
        )

    async def _op_stat(self, request: Request, record: dict[str, Any]) -> Outcome:
        self._need("diagnostics", "stat")
        st = await off_the_loop(pol.stat_path, request.args["path"], self._policy)
        result = {"name": st.name, "path": st.path, **_stat_fields(st.kind, st.stat)}
        record.update(result)
        return Outcome(Response(request.id, True, result), record, f"stat {st.path}")

    async def _op_list(self, request: Request, record: dict[str, Any]) -> Outcome:
        self._need("diagnostics", "list")
        path = request.args["path"]
        entries = await off_the_loop(pol.list_dir, path, self._policy)
        # A listing can outgrow one message: it travels as JSON lines of content.
        lines = b"".join(
            json.dumps({"name": e.name, **_stat_fields(e.kind, e.stat)}).encode() + b"\n"
            for e in entries
        )
        for frame in data_frames(request.id, CONTENT, lines):
            await self._send(frame)
        result: dict[str, Any] = {"path": entries.path, "entries": len(entries)}
        if entries.truncated:
            result["truncated"] = True  # more names than a listing looks at
        record.update(result)
        return Outcome(
            Response(request.id, True, result), record, f"list {result['path']} ({len(entries)})"
        )

    # -- processes -------------------------------------------------------------

    async def _execute(self, request_id: int, argv: Sequence[str]) -> dict[str, Any]:
        """Run ``argv`` (no shell, fixed environment), forwarding its output as data frames."""
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=pol.run_environment(self._policy.search_path),
                cwd=self._policy.home,
                start_new_session=True,  # its own process group, killed as one
            )
        except OSError as exc:
            message = f"{argv[0]}: {exc.strerror or 'cannot be started'}"
            said = message.encode() + b"\n"
            for frame in data_frames(request_id, STDERR, said):
                await self._send(frame)
            # Counted like a process's stderr, so the technician can show it by its step.
            return {
                "exit_status": 127,
                "error": message,
                "stdout_bytes": 0,
                "stderr_bytes": len(said),
                "stdout_sha256": hashlib.sha256(b"").hexdigest(),
                "stderr_sha256": hashlib.sha256(said).hexdigest(),
            }
        streams = _Streams()
        try:
            assert process.stdout is not None and process.stderr is not None
            await asyncio.gather(
                self._pump(request_id, STDOUT, process.stdout, streams),
                self._pump(request_id, STDERR, process.stderr, streams),
            )
            status = await process.wait()
        except BaseException:
            _kill_group(process.pid)
            with contextlib.suppress(BaseException):
                # Read its pipes to their end too: a pipe paused mid-output would keep its
                # transport past the event loop's end.
                drained = asyncio.gather(
                    _drain(process.stdout), _drain(process.stderr), process.wait()
                )
                await asyncio.shield(asyncio.wait_for(drained, 1.0))
            raise
        # Whatever it left running in its group (a child sent to the background with
        # its output elsewhere) would outlive the session: nothing else tracks it.
        _kill_group(process.pid)
        result: dict[str, Any] = {
            "exit_status": status if status >= 0 else 128 - status,
            "stdout_bytes": streams.sizes[STDOUT],
            "stderr_bytes": streams.sizes[STDERR],
            "stdout_sha256": streams.hashes[STDOUT].hexdigest(),
            "stderr_sha256": streams.hashes[STDERR].hexdigest(),
            "seconds": round(time.monotonic() - started, 3),
        }
        if status < 0:
            result["signal"] = signal.Signals(-status).name
        return result

    async def _pump(
        self, request_id: int, stream: int, reader: asyncio.StreamReader, streams: _Streams
    ) -> None:
        while chunk := await reader.read(PIPE_CHUNK):
            streams.sizes[stream] += len(chunk)
            streams.hashes[stream].update(chunk)
            for frame in data_frames(request_id, stream, chunk):
                await self._send(frame)


#: How long a brought declaration's patterns may take on their values, in a child.
PATTERN_SECONDS = 2.0
#: The child: compile each pattern and match its value, as Parameter.check does.
_MATCH = (
    "import json,re,sys\n"
    "for p,v in json.load(sys.stdin):\n"
    " try:c=re.compile(p)\n"
    " except Exception:continue\n"
    " c.fullmatch(v)\n"
)


def _pattern_values(declaration: Any, params: Any) -> list[tuple[str, str]]:
    """The (pattern, value) pairs parsing and binding ``declaration`` would match."""
    raw = declaration.get("parameters") if isinstance(declaration, dict) else None
    if not isinstance(raw, list):
        return []
    given = params if isinstance(params, dict) else {}
    pairs = []
    for parameter in raw:  # each is built, its default checked, before their count is
        if not isinstance(parameter, dict):
            continue
        pattern, name = parameter.get("pattern"), parameter.get("name")
        if not isinstance(pattern, str) or len(pattern) > 512:
            continue
        value = given.get(name) if isinstance(name, str) else None
        for candidate in (parameter.get("default"), value):
            if isinstance(candidate, str) and len(candidate) <= MAX_VALUE:
                pairs.append((pattern, candidate))
    return pairs


async def _match_elsewhere(pairs: list[tuple[str, str]]) -> str | None:
    """None once a child process matched every pair within PATTERN_SECONDS; else why not."""
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            "-c",
            _MATCH,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={},
        )
    except OSError:
        return "could not be checked (no Python to check them in)"  # nor safely here
    try:
        await asyncio.wait_for(child.communicate(json.dumps(pairs).encode()), PATTERN_SECONDS)
    except TimeoutError:
        return f"take too long to check (over {PATTERN_SECONDS:g} s)"
    finally:
        if child.returncode is None:  # over time, or the request was cancelled
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await asyncio.shield(child.wait())
    return None if child.returncode == 0 else "could not be checked (the check failed)"


T = TypeVar("T")


async def off_the_loop(
    call: Callable[..., T], *args: Any, abandoned: Callable[[], None] | None = None
) -> T:
    """``call(*args)`` in a thread of its own, so that the event loop goes on meanwhile.

    A file operation may block: a directory of a million names, a hung NFS or
    FUSE mount. The loop must still hear the customer's Ctrl-C and end the
    session at once, and the process must still exit: so a daemon thread, not
    the default executor, whose threads the interpreter waits for at exit.
    If the wait is given up (cancelled), what the call returns is closed when
    it comes, and ``abandoned`` is called then, once the call is over.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(outcome: T | BaseException, failed: bool) -> None:
        if done.done():  # given up: close what it opened, if anything
            close = getattr(outcome, "close", None)
            if not failed and callable(close):
                close()
            if abandoned is not None:
                abandoned()
        elif failed:
            assert isinstance(outcome, BaseException)
            done.set_exception(outcome)
        else:
            done.set_result(outcome)  # type: ignore[arg-type]

    def work() -> None:
        try:
            outcome: Any = call(*args)
            failed = False
        except BaseException as exc:
            outcome, failed = exc, True
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle, outcome, failed)

    threading.Thread(target=work, daemon=True, name="toolkit-file").start()
    return await done


async def _drain(reader: asyncio.StreamReader | None) -> None:
    if reader is not None:
        while await reader.read(PIPE_CHUNK):
            pass


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _about(exc: PolicyRefused, what: str, path: str) -> PolicyRefused:
    """``exc`` saying what wanted ``path`` (the file policy's text names the path, not why)."""
    why = exc.message.removeprefix("refused: ")
    if path not in why:
        why = f"{path}: {why}"
    return PolicyRefused(f"refused: {what} {why}", hint=exc.hint)


def _stat_fields(kind: str, st: os.stat_result) -> dict[str, Any]:
    return {
        "kind": kind,
        "size": st.st_size,
        "mtime": int(st.st_mtime),
        "mode": st.st_mode & 0o7777,
    }


__all__ = [
    "Answer",
    "ApproveFix",
    "AskOutOfScope",
    "OnApproval",
    "Operations",
    "Outcome",
    "Question",
    "Send",
    "approval",
    "by_grant",
]
