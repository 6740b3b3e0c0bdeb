"""`toolkit connect` on first use (issue 15): the code asked again, JSON lines, batch manners.

Real `toolkit share` and `toolkit connect` processes, each person in a HOME of
their own; the code prompt is driven in tmux, as a technician types it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.sshd import free_port
from tests.integration.share_process import Person, Share, sharing
from tests.integration.terminal import Tmux
from tests.integration.test_share_connect import (
    connect,
    events,
    json_lines,
    make_customer,
    make_technician,
    technician_transcript,
    wrong,
)
from tests.relay_support import host_key, relay_process, trust

#: The keys every result line has, whatever happened.
RESULT_KEYS = {
    "type",
    "line",
    "command",
    "name",
    "status",
    "exit_status",
    "error",
    "result",
    "findings",
    "stdout",
    "stdout_base64",
    "stderr",
    "stderr_base64",
    "content",
    "content_base64",
}
SUMMARY_KEYS = {
    "type",
    "session",
    "ticket",
    "transcript",
    "verdict",
    "ended",
    "ok",
    "failed",
    "refused",
    "exit_code",
}
BATCH = """\
# one of each: ok, failed, refused
run true

run false
read ~/.ssh/id_rsa
read ~/notes.txt
"""


@pytest.fixture
def technician(tmp_path: Path, identity: Path) -> Person:
    return make_technician(tmp_path / "technician", identity)


@pytest.fixture
def customer(tmp_path: Path) -> Person:
    return make_customer(tmp_path / "customer")


@pytest.fixture
def share(customer: Person, tmp_path: Path) -> Iterator[Share]:
    with sharing(customer, "--policy", customer.root / "policy.toml", logs=tmp_path) as running:
        yield running


def digits(code: str) -> str:
    return code.replace("-", "")


# -- JSON -------------------------------------------------------------------------------


def test_json_results_have_the_same_keys_their_line_and_a_summary(
    technician: Person, share: Share
) -> None:
    done = connect(technician, share, BATCH, "--json")
    assert done.returncode == 3, done.stderr
    *results, summary = json_lines(done.stdout)
    for result in results:
        assert result.keys() == RESULT_KEYS, result
        assert result["type"] == "result"
    assert [(r["line"], r["command"], r["status"]) for r in results] == [
        (2, "run true", "ok"),
        (4, "run false", "failed"),
        (5, "read ~/.ssh/id_rsa", "refused"),
        (6, "read ~/notes.txt", "ok"),
    ]
    ok, failed, refused, read = results
    assert ok["error"] is None and ok["stdout"] is None and ok["exit_status"] == 0
    assert failed["error"] == {"code": "exit-status", "message": "exit status 1"}
    assert refused["error"]["code"] == "refused" and refused["error"]["message"]
    assert refused["result"] is None and refused["content"] is None
    assert read["content"].startswith("hello") and read["content_base64"] is None
    assert summary.keys() == SUMMARY_KEYS
    transcript = technician_transcript(technician)
    assert summary["type"] == "summary"
    assert summary["ticket"] == "T-1"
    assert Path(summary["transcript"]).read_bytes() == transcript.read_bytes()
    assert summary["session"] in transcript.read_text().splitlines()[0]
    assert summary["verdict"] == "SEALED"
    assert summary["ended"] == "completed"
    assert (summary["ok"], summary["failed"], summary["refused"]) == (2, 1, 1)
    assert summary["exit_code"] == 3


def test_json_error_before_connecting_is_one_line_on_stdout(technician: Person) -> None:
    port = free_port()  # nothing listens there
    done = technician.toolkit(
        "connect", f"127.0.0.1:{port}", "--ticket", "T-1", "--code", "123-456-789",
        "--batch", "-", "--json", stdin="run true\n",
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    (line,) = json_lines(done.stdout)
    assert line["type"] == "error" and line["exit_code"] == 4
    assert line["error"]["code"] == "network"
    assert "Cannot reach the agent" in line["error"]["message"]
    assert "Cannot reach the agent" in done.stderr  # people still read it on stderr


def test_json_error_for_a_wrong_code_names_it_and_the_tries_left(
    technician: Person, share: Share
) -> None:
    done = connect(technician, share, "run true\n", "--json", code=wrong(share.code))
    assert done.returncode == 3, done.stderr  # --code: not asked again, as before
    (line,) = json_lines(done.stdout)
    assert line["error"]["code"] == "wrong-code"
    assert line["error"]["tries_left"] == 2
    assert line["exit_code"] == 3


def test_json_error_for_a_bad_batch_line(technician: Person) -> None:
    done = technician.toolkit(
        "connect", "127.0.0.1:9", "--ticket", "T-1", "--code", "123-456-789",
        "--batch", "-", "--json", stdin="run true\nfrobnicate\n",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = json_lines(done.stdout)
    assert line["error"]["code"] == "usage"
    assert line["error"]["message"].startswith("stdin, line 2: Unknown command 'frobnicate'")


# -- the batch, checked before connecting ------------------------------------------------


def test_shell_in_a_batch_is_refused_before_connecting(technician: Person) -> None:
    port = free_port()  # nothing listens: connecting would exit 4
    batch = technician.root / "commands.txt"
    batch.write_text("run true\n\nshell\n")
    done = technician.toolkit(
        "connect", f"127.0.0.1:{port}", "--ticket", "T-1", "--code", "123-456-789",
        "--scope", "shell", "--batch", batch,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{batch}, line 3: `shell` cannot run in a batch" in done.stderr
    assert "Connecting" not in done.stderr


def test_a_fix_without_the_fixes_scope_warns_before_connecting(
    technician: Person, share: Share
) -> None:
    done = connect(technician, share, "run true\nfix flush-dns\n")
    warning, connecting = done.stderr.splitlines()[:2]
    assert warning.startswith("warning: stdin, line 2: fix needs --scope fixes"), done.stderr
    assert connecting.startswith("Connecting to")
    assert "== run true (stdin, line 1)" in done.stderr  # the session still ran
    assert share.wait(10) == 0


def test_no_warning_when_the_fixes_scope_is_asked(technician: Person) -> None:
    done = technician.toolkit(
        "connect", "127.0.0.1:9", "--ticket", "T-1", "--code", "1", "--scope", "fixes",
        "--batch", "-", stdin="fix flush-dns\n",
    )  # fmt: skip
    assert done.returncode == 2  # the code is not one; but nothing was said about fixes
    assert "warning" not in done.stderr


# -- human batch output ------------------------------------------------------------------


def test_human_batch_output_has_headers_refusals_by_line_and_a_recap(
    technician: Person, share: Share
) -> None:
    done = connect(technician, share, BATCH)
    assert done.returncode == 3, done.stderr
    said = done.stderr.splitlines()
    headers = [line for line in said if line.startswith("== ")]
    assert headers == [
        "== run true (stdin, line 2)",
        "== run false (stdin, line 4)",
        "== read ~/.ssh/id_rsa (stdin, line 5)",
        "== read ~/notes.txt (stdin, line 6)",
    ]
    refusal = said[said.index(headers[2]) + 1]
    assert refusal.startswith("stdin, line 5: refused:"), refusal
    assert said[-1] == "recap: ok=2 failed=1 refused=1 (exit 3: a command was refused)"
    assert done.stdout.startswith("hello")  # stdout: the data alone, as before


# -- -v after the subcommand --------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after", "nowhere"])
def test_verbose_after_the_subcommand_works_as_before_it(
    technician: Person, share: Share, where: str
) -> None:
    """A transcript that cannot be created: its cause shows with -v, wherever -v stands."""
    (technician.data / "transcripts").write_text("not a directory")
    args = ["connect", share.address, "--ticket", "T-1", "--code", share.code, "--batch", "-"]
    if where == "before":
        args.insert(0, "-v")
    elif where == "after":
        args.insert(1, "-v")
    done = technician.toolkit(*args, stdin="run true\n")
    assert done.returncode == 1, done.stderr
    assert "Cannot create the transcript" in done.stderr
    assert ("cause: " in done.stderr) is (where != "nowhere"), done.stderr


@pytest.mark.parametrize("argv", [["keys", "show", "-v"], ["keys", "show", "--verbose"]])
def test_verbose_after_other_subcommands_is_accepted(technician: Person, argv: list[str]) -> None:
    done = technician.toolkit(*argv)
    assert done.returncode == 0, done.stderr
    assert "No such option" not in done.stderr


# -- completion --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["connect", "share"])
def test_scope_values_complete_in_the_shell(technician: Person, command: str) -> None:
    env = {"_TOOLKIT_COMPLETE": "complete_bash", "COMP_CWORD": "3"}
    found = {}
    for typed in ("", "f", "s"):
        words = f"toolkit {command} --scope {typed}"
        done = technician_completes(technician, {**env, "COMP_WORDS": words})
        found[typed] = done.split()
    assert found == {"": ["diagnostics", "fixes", "shell"], "f": ["fixes"], "s": ["shell"]}


def technician_completes(person: Person, env: dict[str, str]) -> str:
    import subprocess

    from tests.integration.share_process import TOOLKIT

    done = subprocess.run(
        TOOLKIT, env={**person.env(), **env}, capture_output=True, text=True, check=True
    )
    return done.stdout


# -- the code, asked again in place ------------------------------------------------------


def test_a_wrong_code_is_asked_again_in_place_and_the_session_runs(
    technician: Person, share: Share, tmux: Tmux
) -> None:
    tmux.start("tech", technician, "connect", share.address, "--ticket", "T-1", width=100)
    tmux.wait_for("tech", "One-time code from the customer:")
    tmux.type("tech", digits(wrong(share.code)))
    screen = tmux.wait_for("tech", "Type the code again:")
    assert wrong(share.code) in screen  # shown as typed, grouped as the customer reads it
    assert "did not accept the code (2 tries left)" in screen
    tmux.type("tech", digits(share.code))
    screen = tmux.wait_for("tech", "toolkit>")
    assert share.code in screen and "Consent passed." in screen
    tmux.type("tech", "run true")
    tmux.wait_for("tech", "toolkit>", count=2)
    tmux.type("tech", "exit")
    screen = tmux.wait_for("tech", "[exit ")
    assert "[exit 0]" in screen, screen
    assert share.wait(10) == 0
    ops = [e.get("op") for e in events(technician_transcript(technician))]
    assert "run" in ops


def test_a_code_not_well_formed_is_asked_again_without_a_try(
    technician: Person, share: Share, tmux: Tmux
) -> None:
    tmux.start("tech", technician, "connect", share.address, "--ticket", "T-1")
    tmux.wait_for("tech", "One-time code from the customer:")
    tmux.type("tech", "12345")
    assert "Connecting" not in tmux.wait_for("tech", "Not a code: 9 digits")
    tmux.keys("tech", "C-u")
    tmux.type("tech", digits(share.code))
    tmux.wait_for("tech", "toolkit>")
    tmux.type("tech", "exit")
    assert "[exit 0]" in tmux.wait_for("tech", "[exit ")


def test_a_burned_code_stops_with_its_reason(technician: Person, share: Share, tmux: Tmux) -> None:
    tmux.start("tech", technician, "connect", share.address, "--ticket", "T-1")
    tmux.wait_for("tech", "One-time code from the customer:")
    for n in range(1, 4):
        tmux.type("tech", digits(wrong(share.code, by=n)))
        if n < 3:
            tmux.wait_for("tech", "Type the code again:", count=n)
    screen = tmux.wait_for("tech", "[exit ")
    assert "[exit 3]" in screen, screen
    assert "the code is now burned" in screen
    assert screen.count("Type the code again:") == 2


def test_a_wrong_code_is_asked_again_through_a_relay(
    technician: Person, customer: Person, tmux: Tmux, tmp_path: Path
) -> None:
    operator = Person.make(tmp_path / "operator")
    key = host_key(operator.root / "host_key")
    with relay_process(operator, key) as relay:
        trust(relay.port, key, customer.home)
        trust(relay.port, key, technician.home)
        policy = customer.root / "policy.toml"
        via = f"127.0.0.1:{relay.port}"
        with sharing(customer, "--policy", policy, "--relay", via, logs=tmp_path) as share:
            code = share.code
            # The same rendezvous (first group), a wrong secret part.
            first, secret = code.split("-", 1)
            other = f"{(int(secret.replace('-', '')) + 1) % 10**6:06d}"
            bad = f"{first}-{other[:3]}-{other[3:]}"
            tmux.start("tech", technician, "connect", "--relay", via, "--ticket", "T-1")
            tmux.wait_for("tech", "One-time code from the customer:")
            tmux.type("tech", digits(bad))
            tmux.wait_for("tech", "Type the code again:")
            tmux.type("tech", digits(code))
            tmux.wait_for("tech", "toolkit>")
            tmux.type("tech", "exit")
            assert "[exit 0]" in tmux.wait_for("tech", "[exit ")
            assert share.wait(10) == 0


def test_connect_help_says_the_code_is_shown_and_asked_again(technician: Person) -> None:
    done = technician.toolkit("connect", "--help")
    assert "hidden" not in done.stdout
    assert "again after a wrong code" in " ".join(done.stdout.split())
