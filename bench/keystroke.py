"""Keystroke echo latency in the granted shell, against ``ssh -tt`` to a local sshd, in one run.

A key is written to the terminal channel and the clock runs until its echo
comes back to the client: for toolkit, the technician's library (a real
``toolkit share`` process serving the PTY, the technician's side in this
process, recording both ways into a signed transcript); for OpenSSH, an
``ssh -tt`` process to a throwaway sshd on loopback (bench.sshd), its stdin
and stdout pipes. Both remote ends are the same login shell (bash with
readline: it echoes each key itself), each with an empty HOME (the
customer's in bench.session's Share, bench.sshd's for its sessions), so
neither reads a start-up file of the user's. Keys alternate ``x`` and DEL (DEL's
echo is a backspace), so the line never grows. Keys go in rounds, toolkit and
ssh alternating, so that load on the machine hits both alike.

The goal is what toolkit adds to a key's echo: median toolkit minus median
``ssh -tt``, at most 0.25 ms on loopback. The ratio is printed too; it sets
asyncssh's packet path in Python against OpenSSH's in C, not anything a
person typing can feel.

    .venv/bin/python -m bench.keystroke [--keys 1000] [--rounds 10] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import environment, median, save, say, scratch_dir, summary, table, verdict
from bench.session import POLICY, Share
from bench.sshd import available, local_sshd

#: What toolkit adds to a keystroke's echo: median toolkit - median ``ssh -tt``, at most.
GOAL_ADDED = 0.25e-3  # seconds
KEYS = (b"x", b"\x7f")
ECHOES = (b"x", b"\x08")
SETTLE = 0.5
TIMEOUT = 5.0


class Terminal:
    """Output of one remote terminal, with a wait for bytes to appear in it."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._changed = asyncio.Event()

    def feed(self, data: bytes) -> None:
        self.data += data
        self._changed.set()

    async def wait_for(self, needle: bytes, start: int, timeout: float = TIMEOUT) -> int:
        """Until ``needle`` shows at or after ``start``; returns where it ends."""
        deadline = time.monotonic() + timeout
        while (found := self.data.find(needle, start)) < 0:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"no echo {needle!r} within {timeout} s: {bytes(self.data[-200:])!r}"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue
        return found + len(needle)

    async def quiet(self, seconds: float = SETTLE) -> None:
        """Until nothing arrives for ``seconds`` (the prompt has been drawn)."""
        while True:
            size = len(self.data)
            await asyncio.sleep(seconds)
            if len(self.data) == size:
                return


async def keystrokes(send: Callable[[bytes], None], screen: Terminal, count: int) -> list[float]:
    """``count`` keys, one at a time; each one's echo latency in seconds."""
    latencies = []
    for i in range(count):
        mark = len(screen.data)
        start = time.perf_counter()
        send(KEYS[i % 2])
        await screen.wait_for(ECHOES[i % 2], mark)
        latencies.append(time.perf_counter() - start)
    await screen.quiet(0.05)  # a DEL's echo may come in two writes
    return latencies


class ToolkitShell:
    """``toolkit share`` with the shell scope, and the technician's shell open on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.screen = Terminal()
        policy = root / "policy.toml"
        policy.write_text(POLICY)
        self.share = Share(root, policy, "--scope", "diagnostics", "--scope", "shell")

    async def open(self) -> Callable[[bytes], None]:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        from toolkit.consent import Scope, parse_code
        from toolkit.identity.signer import KeySigner
        from toolkit.identity.store import Identity
        from toolkit.session.technician import TechnicianSession
        from toolkit.transport.ssh import ConsentAsk, connect

        who = Identity(
            "Bench Tech",
            "bench@example.com",
            KeySigner(ed25519.Ed25519PrivateKey.generate()),
            "bench",
        )
        scopes = frozenset({Scope.DIAGNOSTICS, Scope.SHELL})
        ask = ConsentAsk(who, "BENCH-2", scopes, parse_code(self.share.code))
        conn, consent = await connect("127.0.0.1", self.share.port, ask)
        cast = self.root / "technician.cast"
        self.session = await TechnicianSession.start(conn, consent, who, "bench", path=cast)
        self.shell = await self.session.open_shell("xterm-256color", 80, 24, self.screen.feed)
        await self.screen.quiet()
        return self.shell.write

    async def close(self) -> int:
        await self.shell.close()
        await self.session.end("bench done")
        self.share.wait()
        return self.session.path.stat().st_size


class SshShell:
    """``ssh -tt`` to the local sshd: a PTY and a login shell, over pipes."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.screen = Terminal()

    async def open(self) -> Callable[[bytes], None]:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        stdout, stdin = self.proc.stdout, self.proc.stdin

        async def pump() -> None:
            while chunk := await stdout.read(65536):
                self.screen.feed(chunk)

        self._pump = asyncio.ensure_future(pump())
        await self.screen.quiet(1.0)

        def send(key: bytes) -> None:
            stdin.write(key)

        return send

    async def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\rexit\r")
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._pump.cancel()


async def measure(root: Path, keys: int, rounds: int) -> dict[str, Any]:
    per_round = max(2, keys // rounds // 2 * 2)
    with local_sshd(root / "sshd") as sshd:
        if sshd.note is not None:
            say(f"NOTE: {sshd.note}")
        ssh = SshShell(sshd.ssh_argv(options=["-tt"]))
        ours = ToolkitShell(root)
        send_ssh = await ssh.open()
        send_ours = await ours.open()
        for send, screen in ((send_ours, ours.screen), (send_ssh, ssh.screen)):
            await keystrokes(send, screen, 20)  # warm-up, not counted
        toolkit: list[float] = []
        openssh: list[float] = []
        for _ in range(rounds):
            toolkit += await keystrokes(send_ours, ours.screen, per_round)
            openssh += await keystrokes(send_ssh, ssh.screen, per_round)
        cast_bytes = await ours.close()
        await ssh.close()
    return {"toolkit": toolkit, "ssh": openssh, "transcript_bytes": cast_bytes}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run(keys: int, rounds: int) -> dict[str, Any]:
    why = available()
    if why is not None:
        raise SystemExit(f"cannot compare with OpenSSH: {why}")
    with scratch_dir("keystroke") as root:
        measured = asyncio.run(measure(root, keys, rounds))
    ours, ssh = measured["toolkit"], measured["ssh"]
    ms = 1000.0
    added = median(ours) - median(ssh)
    added99 = p99(ours) - p99(ssh)
    rows = [
        ["toolkit shell (recorded, both sides)", len(ours), median(ours) * ms, p99(ours) * ms,
         min(ours) * ms, max(ours) * ms],
        ["ssh -tt (OpenSSH, local sshd)", len(ssh), median(ssh) * ms, p99(ssh) * ms,
         min(ssh) * ms, max(ssh) * ms],
    ]  # fmt: skip
    say(table(["client", "keys", "median ms", "p99 ms", "min ms", "max ms"], [
        *([r[0], r[1], *(f"{v:.3f}" for v in r[2:])] for r in rows),
        ["added by toolkit", "", f"{added * ms:+.3f}", f"{added99 * ms:+.3f}", "", ""],
    ]))  # fmt: skip
    ratio = median(ours) / median(ssh)
    ratio99 = p99(ours) / p99(ssh)
    say(f"added latency: median {added * ms:+.3f} ms, p99 {added99 * ms:+.3f} ms "
        f"(goal: median <= {GOAL_ADDED * ms:.2f} ms): {verdict(added <= GOAL_ADDED)}")  # fmt: skip
    say(f"ratio to OpenSSH: median {ratio:.2f}x, p99 {ratio99:.2f}x")
    return {
        "keys": keys,
        "rounds": rounds,
        "toolkit_seconds": {**summary(ours), "p99": p99(ours)},
        "ssh_seconds": {**summary(ssh), "p99": p99(ssh)},
        "added_median": added,
        "added_p99": added99,
        "ratio_median": ratio,
        "ratio_p99": ratio99,
        "goal_added": GOAL_ADDED,
        "transcript_bytes": measured["transcript_bytes"],
        "toolkit_all": ours,
        "ssh_all": ssh,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.keystroke", description=__doc__.split("\n")[0]
    )
    p.add_argument("--keys", type=int, default=1000, help="keystrokes per client (default 1000)")
    p.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    p.add_argument("--quick", action="store_true", help="100 keys in 2 rounds")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    keys, rounds = (100, 2) if a.quick else (a.keys, a.rounds)
    env = environment()
    say(f"toolkit {env['toolkit']} ({env['commit']}), Python {env['python']}, "
        f"{env['cpus']} CPUs, {env['openssh']}; load average {env['loadavg'][0]:.2f}")  # fmt: skip
    result = run(keys, rounds)
    say(f"-> {save('keystroke', {'benchmark': 'keystroke', 'environment': env, **result})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
