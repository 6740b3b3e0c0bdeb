"""The two output streams: data on stdout, everything else on stderr.

Consoles are made on first use and read ``sys.stdout``/``sys.stderr`` at print
time, so tests that capture those streams see everything. rich honours
NO_COLOR and drops styling when a stream is not a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

_state: dict[str, bool] = {"verbose": False}


def out() -> Console:
    from rich.console import Console

    return Console(soft_wrap=True)


def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def set_verbose(value: bool) -> None:
    _state["verbose"] = value


def verbose() -> bool:
    return _state["verbose"]
