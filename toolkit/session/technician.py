"""The technician's session: commands in, results out, everything into the signed transcript.

:class:`TechnicianSession` sits between the CLI (which reads commands and
shows results) and :class:`~toolkit.session.client.SessionClient` (which
speaks the protocol). It records the consent, every command with its
outcome, and the end; :meth:`end` seals the transcript. Tests drive it
directly, without the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncssh

from toolkit import paths
from toolkit.consent import Consent, scope_names
from toolkit.errors import ConsentRefused, TranscriptWriteError, TransportError, UsageError
from toolkit.identity.store import Identity
from toolkit.protocol import (
    APPROVAL_FIELDS,
    CONTENT,
    MAX_APPROVAL_STEPS,
    MAX_ARG,
    MAX_ARGV,
    STDERR,
    STDOUT,
    Op,
    commands_sha256,
)
from toolkit.session.client import OnData, Reply, SessionClient
from toolkit.session.commands import Command, help_text
from toolkit.session.results import OperationResult, Status
from toolkit.text import printable
from toolkit.transcript.recorder import Recorder, keep_checkpointing, new_header

if TYPE_CHECKING:
    from toolkit.session.shell import ShellClient

END_TIMEOUT = 5.0
OnOutput = Callable[[bytes], None]


def transcript_path(ticket: str, session_id: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"{stamp}-{paths.name_part(ticket)}-{session_id[:8]}.cast"
    return paths.data_dir() / "transcripts" / name


class TechnicianSession:
    """A running session. Build it with :meth:`start`; finish with :meth:`end`."""

    def __init__(
        self,
        conn: asyncssh.SSHClientConnection,
        client: SessionClient,
        recorder: Recorder,
        consent: Consent,
        info: dict[str, Any],
    ) -> None:
        self.conn = conn
        self.client = client
        self.recorder = recorder
        self.consent = consent
        self.info = info
        self.path = recorder.path
        self.shell: ShellClient | None = None  # the open shell, if any
        self._ticker = asyncio.get_running_loop().create_task(keep_checkpointing(recorder))
        recorder.on_failure = self._unrecordable

    def _unrecordable(self, failure: TranscriptWriteError) -> None:
        """The transcript failed (a full disk), from whichever write: nothing goes on
        unrecorded. Requests in flight and the prompt hear why, an open shell closes."""
        self.client.fail(failure)
        if self.shell is not None:
            self.shell.unrecordable()

    @classmethod
    async def start(
        cls,
        conn: asyncssh.SSHClientConnection,
        consent: Consent,
        identity: Identity,
        address: str,
        *,
        path: Path | None = None,
    ) -> TechnicianSession:
        """Open the session channel, greet the agent, start the transcript."""
        header = new_header(
            identity.name,
            identity.email,
            identity.signer,
            consent.ticket,
            scope=scope_names(consent.granted),
            agent_host_key=consent.host_key_fingerprint,
        )
        client = await SessionClient.open(conn)
        reply = await client.request(Op.HELLO, session=header.session_id)
        if not reply.response.ok:
            await client.close()
            raise TransportError(
                f"The agent refused to start the session: {reply.response.message}"
            )
        info = reply.response.result
        host = info.get("host")
        header = dataclasses.replace(header, customer_host=str(host)[:255] if host else None)
        recorder = Recorder.create(
            path or transcript_path(consent.ticket, header.session_id), header, identity.signer
        )
        recorder.event("consent", **consent.as_event())
        recorder.event(
            "session_start",
            agent=address,
            agent_session=str(info.get("session", ""))[:64],
            agent_version=str(info.get("agent", ""))[:64],
            granted=scope_names(consent.granted),
        )
        return cls(conn, client, recorder, consent, info)

    @property
    def ended(self) -> Exception | None:
        return self.client.ended

    async def execute(self, command: Command, on_data: OnData | None = None) -> OperationResult:
        """Run one command; ``on_data`` streams run/read output instead of collecting it.

        Raises SessionEnded or ConnectionLost when the session is gone.
        """
        if command.name == "help":
            try:
                text = help_text(command.words[0] if command.words else None, self.info)
            except UsageError as exc:  # `help NOSUCH` at the prompt: say so, go on
                return OperationResult(
                    command.text, command.name, Status.FAILED, error="usage", message=exc.message
                )
            return OperationResult(
                command.text, command.name, Status.OK, stdout=text.encode() + b"\n"
            )
        assert command.op is not None
        rec = self.recorder
        rec.output(f"$ {command.text}\r\n".encode())
        content = hashlib.sha256()

        def sink(stream: int, data: bytes) -> None:
            if stream == CONTENT:
                content.update(data)
            else:  # pipes' bare LFs, written as CRLF so that players draw lines
                rec.command_output(data)
            if streaming:
                assert on_data is not None
                on_data(stream, data)
            else:
                collected.setdefault(stream, bytearray()).extend(data)

        streaming = on_data is not None and command.op in (Op.RUN, Op.READ)
        collected: dict[int, bytearray] = {}
        reply: Reply = await self.client.request(command.op, on_data=sink, **command.args)
        response = reply.response
        fields: dict[str, Any] = {"command": command.text, "op": command.op, **command.args}
        reported: dict[str, Any] = {}  # what the agent says it did, recorded beside ours
        status, error, message = Status.OK, None, None
        result = dict(response.result)
        output = bytes(collected.get(CONTENT, b""))
        approval = None
        if response.approval is not None:  # the customer was asked: before the outcome
            approval = self._record_approval(command, response.id, response.approval)
        if not response.ok:
            status = Status.REFUSED if response.error == "refused" else Status.FAILED
            error, message = response.error, response.message
            fields.update(ok=False, error=response.error, message=response.message)
            # Shown on playback too, where the technician saw it.
            shown = response.message or response.error or "failed"
            rec.output(shown.encode("utf-8", "replace") + b"\r\n")
        else:
            fields["ok"] = True
            reported = _recordable(command.op, response.result)
            exit_status = result.get("exit_status")
            if command.op is Op.READ and content.hexdigest() != response.result.get("sha256"):
                status, error = Status.FAILED, "integrity"
                message = "the file's content does not match the sha256 the agent sent"
                fields.update(ok=False, error="integrity")
            elif command.op is Op.LIST:
                result["entries"] = _entries(output)
                output = b""
            elif isinstance(exit_status, int) and exit_status != 0:
                status = Status.FAILED
        self._record("refusal" if status is Status.REFUSED else "operation", fields, reported)
        done = OperationResult(
            command.text,
            command.name,
            status,
            result=result,
            error=error,
            message=message,
            stdout=bytes(collected.get(STDOUT, b"")),
            stderr=bytes(collected.get(STDERR, b"")),
            content=output,
            approval=approval,
        )
        if command.op is Op.DIAG:
            # The technician's plugin reads what it declared (never recorded: derived).
            from toolkit.session.procedures import findings_for

            done = dataclasses.replace(done, findings=findings_for(done))
        return done

    def _record(self, kind: str, fields: dict[str, Any], reported: dict[str, Any]) -> None:
        """One operation's event: our fields, beside what the agent reported it did."""
        try:
            # The agent's result may say more than we asked (the real path); _OURS stay ours.
            self.recorder.event(kind, **{**fields, **reported})
        except (TypeError, ValueError) as exc:  # a field name the recorder refuses (a secret's)
            unrecorded = f"the agent's result was not recorded: {exc}"
            self.recorder.event(kind, **fields, unrecorded=unrecorded)

    def _record_approval(
        self, command: Command, request_id: int, raw: Any
    ) -> dict[str, Any] | None:
        """The agent's report of the customer's answer, checked, as an ``approval`` event;
        the checked report (None when it is not one)."""
        fields: dict[str, Any] = {"reported_by": "agent", "command": command.text}
        checked = None
        try:
            checked = checked_approval(raw, request_id, command.op or "")
            fields.update(checked)
        except ValueError as exc:
            fields["unrecorded"] = f"the agent's approval report was not recorded: {exc}"
        self.recorder.event("approval", **fields)
        return checked

    async def cancel_running(self) -> int:
        """Cancel every operation in flight (Ctrl-C at the prompt); how many the agent stopped."""
        stopped = 0
        for request_id in self.client.in_flight(*_CANCELLABLE):
            with contextlib.suppress(TransportError, ConsentRefused):
                stopped += await self.client.cancel(request_id)
        return stopped

    async def list_names(self, directory: str) -> list[dict[str, Any]]:
        """Entries of ``directory`` for tab completion, as far as the agent's policy lists them.

        Each listing is an operation like any other in both transcripts (op ``list``,
        ``purpose: completion``), but prints nothing and adds no output lines.
        """
        # Marked for the customer's screen, which folds these; the agent's policy is the same.
        reply = await self.client.request(Op.LIST, path=directory, purpose="completion")
        response = reply.response
        fields: dict[str, Any] = {"op": Op.LIST, "path": directory, "purpose": "completion"}
        if not response.ok:
            fields.update(ok=False, error=response.error, message=response.message)
            self._record("refusal" if response.error == "refused" else "operation", fields, {})
            return []
        fields["ok"] = True
        self._record("operation", fields, _recordable(Op.LIST, response.result))
        return _entries(reply.content)

    async def open_shell(
        self, term: str, width: int, height: int, on_output: OnOutput | None = None
    ) -> ShellClient:
        """The granted shell (PolicyRefused without the shell scope); see toolkit.session.shell."""
        from toolkit.session.shell import ShellClient

        self.shell = await ShellClient.open(
            self, term=term, width=width, height=height, on_output=on_output
        )
        return self.shell

    async def end(self, reason: str) -> Path:
        """Tell the agent (when it is still there), seal the transcript; returns its path."""
        if self.client.ended is None or self.recorder.failure is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.request(Op.END, reason=reason), END_TIMEOUT)
        await self.client.close()
        self.conn.close()
        self._ticker.cancel()
        if not self.recorder.closed:
            self.recorder.close(reason)
        return self.path


#: Each answer, and who may have given it (docs/transcript-format.md, "Approvals").
_ANSWERED_BY: dict[str, tuple[str | None, ...]] = {
    "approved": ("customer", "--yes", "grant"),
    "declined": ("customer",),
    "no answer": (None,),
    "nobody to ask": (None,),
}
#: An approval the grant gave carries these beside APPROVAL_FIELDS.
_GRANT_FIELDS = frozenset({"decided_by", "grant"})
_GRANT_ID = re.compile(r"g-[a-z2-7]{26}")
_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _is_grant_id(value: Any) -> bool:
    return isinstance(value, str) and _GRANT_ID.fullmatch(value) is not None


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _short(value: Any, limit: int) -> bool:
    return value is None or (isinstance(value, str) and len(value) <= limit)


def checked_approval(raw: Any, request_id: int, op: str) -> dict[str, Any]:
    """The agent's approval report when it has exactly the documented shape; ValueError
    saying what is wrong otherwise. Its commands, when sent, must match their digest."""
    # A grant's approval names it (toolkit.agent.operations.by_grant): nobody was asked.
    by_grant = isinstance(raw, dict) and raw.get("by") == "grant"
    expected = APPROVAL_FIELDS | _GRANT_FIELDS if by_grant else APPROVAL_FIELDS
    if not isinstance(raw, dict) or set(raw) != expected:
        raise ValueError("its fields are not an approval's")
    if by_grant and (raw["decided_by"] != "grant" or not _is_grant_id(raw["grant"])):
        raise ValueError("it names no grant")
    answer, by = raw["answer"], raw["by"]
    if not isinstance(answer, str) or answer not in _ANSWERED_BY:
        raise ValueError("its answer is not one of " + ", ".join(_ANSWERED_BY))
    if not _short(by, 16) or by not in _ANSWERED_BY[answer]:
        raise ValueError(f"{answer!r} cannot come from {printable(str(by), 20)!r}")
    if not isinstance(raw["at"], str) or not _AT.fullmatch(raw["at"]):
        raise ValueError("its time is not a UTC time like 2026-01-31T12:00:00Z")
    if raw["request"] != request_id or isinstance(raw["request"], bool):
        raise ValueError("it names another request")
    if raw["asked_for"] != op or op not in (Op.FIX, Op.RUN, Op.DIAG):  # diag: a brought one
        raise ValueError("it is for another operation")
    if not _short(raw["procedure"], 64) or not _short(raw["summary"], 200):
        raise ValueError("its procedure or summary is not a short string")
    if (raw["procedure"] is None) != (op == Op.RUN):
        raise ValueError("a diag or fix names its procedure, a run none")
    if not isinstance(raw["commands_sha256"], str) or not _SHA256.fullmatch(raw["commands_sha256"]):
        raise ValueError("its commands_sha256 is not a SHA-256")
    commands = raw["commands"]
    if commands is not None:
        if isinstance(commands, list) and len(commands) > MAX_APPROVAL_STEPS:
            raise ValueError(
                f"it sends more than {MAX_APPROVAL_STEPS} commands (it sends none then)"
            )
        if not (
            isinstance(commands, list)
            and commands
            and all(
                isinstance(argv, list)
                and 1 <= len(argv) <= MAX_ARGV
                and all(_short(arg, MAX_ARG) and arg is not None for arg in argv)
                for argv in commands
            )
        ):
            raise ValueError("its commands are not lists of strings")
        if commands_sha256(commands) != raw["commands_sha256"]:
            raise ValueError("its commands do not match their commands_sha256")
    if not isinstance(raw["out_of_scope"], bool):
        raise ValueError("out_of_scope is not true or false")
    return dict(raw)


def _recordable(op: str, result: dict[str, Any]) -> dict[str, Any]:
    """The agent's result fields worth keeping in the transcript (not the hello catalogue)."""
    if op == Op.HELLO:
        return {}
    return {k: v for k, v in result.items() if k not in _OURS}


#: Operations that Ctrl-C at the prompt cancels (not hello, end, or a cancel).
_CANCELLABLE = (Op.RUN, Op.READ, Op.LIST, Op.STAT, Op.DIAG, Op.FIX, Op.SHELL)
#: Fields of a recorded operation that the technician's side writes, never the agent.
_OURS = frozenset({"type", "ok", "op", "command", "error", "message"})


def _entries(data: bytes) -> list[dict[str, Any]]:
    entries = []
    for line in data.splitlines():
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict) and isinstance(value.get("name"), str):
                entries.append(value)
    return entries


__all__ = ["OnOutput", "TechnicianSession", "checked_approval", "transcript_path"]
