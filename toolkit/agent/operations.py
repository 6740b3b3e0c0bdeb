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
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from toolkit import policy as pol
from toolkit.errors import PolicyRefused, ToolkitError
from toolkit.plugins.catalogue import Catalogue, Kind, Procedure
from toolkit.policy.commands import show_argv
from toolkit.protocol import (
    CONTENT,
    MAX_APPROVAL_COMMANDS,
    MAX_APPROVAL_STEPS,
    MAX_NOTICE_TEXT,
    STDERR,
    STDOUT,
    Request,
    Response,
    commands_sha256,
    data_frames,
    lines_asked,
    notice_frame,
)

Send = Callable[[bytes], Awaitable[None]]


class Answer(enum.Enum):
    """What came of asking the customer, when it was not the customer's own yes or no."""

    NOBODY = "nobody"  # no one at the screen, or --yes for something it does not cover
    NO_ANSWER = "no answer"  # asked, and no answer came in time
    YES_FLAG = "--yes"  # a yes given beforehand by `toolkit share --yes`: nobody was asked


#: Asks the customer to approve a fix showing its exact commands: True is a yes, False a
#: no, an :class:`Answer` (or None, for NOBODY) that neither came, or a yes from --yes.
#: The transcript says which.
ApproveFix = Callable[[str, Sequence[Sequence[str]]], Awaitable[bool | Answer | None]]
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
    record = {**record, "ok": False, "error": code, "message": exc.message}
    # Policy refusals already start with "refused:"; say it once on the customer's screen.
    summary = exc.message if exc.message.startswith(f"{code}:") else f"{code}: {exc.message}"
    return Outcome(
        Response(request.id, False, error=code, message=exc.message, result={}),
        record,
        summary,
    )


class Operations:
    """Performs one session's requests for the granted ``scopes``."""

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
    ) -> None:
        self._ask_out_of_scope = ask_out_of_scope  # None: outside the scope is refused
        self._on_approval = on_approval
        self._approvals: dict[int, dict[str, Any]] = {}  # by request id, until answered
        self._policy = policy
        self._scopes = scopes
        self._catalogue = catalogue
        self._approve_fix = approve_fix
        self._send = send
        self._info = info

    async def perform(self, request: Request) -> Outcome:
        record: dict[str, Any] = {"id": request.id, "op": request.op, **request.args}
        try:
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
        shown: str,
        commands: Sequence[Sequence[str]],
        *,
        procedure: Procedure | None,
        outside: bool,
        asking: str,
    ) -> bool | Answer | None:
        """Ask, and record the answer as an approval event in both copies.

        Notices tell the technician the customer is being asked (``asking`` names
        what), and when the answer came (docs/protocol.md, "Notices").
        """
        await self._send(notice_frame(request.id, {"asking": asking[:MAX_NOTICE_TEXT]}))
        answer = await ask(shown, commands)
        await self._send(notice_frame(request.id, {"answered": True}))
        fields = approval(
            answer,
            request=request.id,
            asked_for=request.op,
            procedure=procedure,
            commands=commands,
            out_of_scope=outside,
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
            outside = "" if granted else " (outside the approved scope)"
            answer = await self._ask(
                ask,
                request,
                shown,
                [argv],
                procedure=None,
                outside=not granted,
                asking=f"run {shown}{outside}",
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

    async def _procedure(
        self, request: Request, record: dict[str, Any], procedure: Procedure
    ) -> Outcome:
        commands = procedure.resolved(self._policy.home)
        record["commands"] = [list(c) for c in commands]
        if procedure.kind is Kind.FIX and record.get("out_of_scope"):
            pass  # the customer approved these very commands outside the scope
        elif procedure.kind is Kind.FIX:
            answer = await self._ask(
                self._approve_fix,
                request,
                procedure.name,
                commands,
                procedure=procedure,
                outside=False,
                asking=f"fix {procedure.name}",
            )
            declined = f"refused: the customer declined the fix {procedure.name}"
            _decided(answer, f"the fix {procedure.name}", outside=False, declined=declined)
            record["approved"] = True
        results = []
        for argv in commands:
            result = await self._execute(request.id, list(argv))
            results.append({"argv": list(argv), **result})
            # A fix stops at its first failing step; a diagnostic gathers everything.
            if procedure.kind is Kind.FIX and result["exit_status"] != 0:
                break
        status = next((r["exit_status"] for r in results if r["exit_status"] != 0), 0)
        summary = {"name": procedure.name, "exit_status": status, "steps": results}
        record.update(summary)
        return Outcome(
            Response(request.id, True, summary),
            record,
            f"{procedure.kind.value} {procedure.name} -> exit {status}",
        )

    async def _op_diag(self, request: Request, record: dict[str, Any]) -> Outcome:
        name: str = request.args["name"]
        self._need("diagnostics", f"diag {name[:64]!r}")
        return await self._procedure(request, record, self._catalogue.get(Kind.DIAGNOSTIC, name))

    async def _op_fix(self, request: Request, record: dict[str, Any]) -> Outcome:
        name: str = request.args["name"]
        ask = self._ask_out_of_scope
        if "fixes" not in self._scopes and ask is not None:
            # Outside the approved scope: the customer may still allow this one fix,
            # seeing exactly what it runs.
            procedure = self._catalogue.get(Kind.FIX, name)
            answer = await self._ask(
                ask,
                request,
                f"{procedure.name} (outside the approved scope)",
                procedure.resolved(self._policy.home),
                procedure=procedure,
                outside=True,
                asking=f"fix {procedure.name} (outside the approved scope)",
            )
            declined = (
                f"refused: the customer declined the fix {procedure.name}, "
                "which is outside the approved scope"
            )
            _decided(answer, f"the fix {procedure.name}", outside=True, declined=declined)
            record.update(approved=True, out_of_scope=True)
            return await self._procedure(request, record, procedure)
        self._need("fixes", f"fix {name[:64]!r}")
        return await self._procedure(request, record, self._catalogue.get(Kind.FIX, name))

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
                env=pol.run_environment(),
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
    "Send",
    "approval",
]
