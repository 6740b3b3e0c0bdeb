"""toolkit run names: a diagnostic or a near miss is said before the customer is asked."""

from __future__ import annotations

from pathlib import Path

from bench.sshd import free_port
from tests.integration.test_share_connect import make_technician


def test_a_diagnostics_name_is_a_usage_error_before_connecting(
    tmp_path: Path, identity: Path
) -> None:
    technician = make_technician(tmp_path / "technician", identity)
    done = technician.toolkit(
        "run", "system", f"127.0.0.1:{free_port()}", "--ticket", "T-1", "--code", "123-456-789"
    )
    assert done.returncode == 2, done.stderr
    assert "system is a diagnostic, not a fix: toolkit run runs fixes." in done.stderr
    assert "diag system" in done.stderr and "Connecting" not in done.stderr


def test_a_near_miss_of_your_fix_is_named_then_it_goes_on(tmp_path: Path, identity: Path) -> None:
    technician = make_technician(tmp_path / "technician", identity)
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens: the run ends unreachable
    done = technician.toolkit(
        "run", "clear-thumbnale", nobody, "--ticket", "T-1", "--code", "123-456-789"
    )
    first = done.stderr.splitlines()[0]
    assert first == (
        "warning: none of your plugins has a fix named clear-thumbnale "
        "(did you mean clear-thumbnails?); the customer's machine must have it."
    )
    assert done.returncode == 4, done.stderr  # the customer's machine might have had it


def test_a_share_offering_only_fixes_is_refused_with_what_run_needs(
    tmp_path: Path, identity: Path
) -> None:
    from tests.integration.share_process import sharing
    from tests.integration.test_share_connect import make_customer

    technician = make_technician(tmp_path / "technician", identity)
    customer = make_customer(tmp_path / "customer")
    with sharing(customer, "--scope", "fixes", logs=tmp_path) as share:
        done = technician.toolkit(
            "run", "clear-thumbnails", share.address, "--ticket", "T-1", "--code", share.code,
            "--check",
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "offers none of the scopes you asked for" in done.stderr
    assert (
        "toolkit run --check asks for diagnostics: ask the customer to run toolkit share "
        "--scope diagnostics" in " ".join(done.stderr.split())
    )
    assert "result=refused" in done.stderr.splitlines()[-1]  # nobody said no
