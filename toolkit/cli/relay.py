"""``toolkit relay``: a rendezvous point for agents behind NAT (docs/relay.md)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from toolkit.cli._console import err
from toolkit.cli.share import parse_address
from toolkit.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from toolkit.relay.server import Relay

STATS_INTERVAL = 60.0


def relay_command(
    listen: Annotated[
        str,
        typer.Option("--listen", metavar="HOST:PORT", help="Where to accept SSH connections."),
    ],
    host_key: Annotated[
        Path | None,
        typer.Option(
            "--host-key",
            metavar="FILE",
            help="The relay's SSH host key [default: made once in the data dir].",
            dir_okay=False,
        ),
    ] = None,
    technicians: Annotated[
        Path | None,
        typer.Option(
            "--technicians",
            metavar="FILE",
            help="Only these keys (allowed_signers or authorized_keys) may reach a rendezvous.",
            dir_okay=False,
        ),
    ] = None,
    agents: Annotated[
        Path | None,
        typer.Option(
            "--agents",
            metavar="FILE",
            help="Stable names for services (toolkit serve --relay --name): an "
            "allowed_signers file of NAME and the host key that may hold it.",
            dir_okay=False,
        ),
    ] = None,
    max_ttl: Annotated[
        float,
        typer.Option(
            "--max-ttl", metavar="SECONDS", min=1, help="Longest life of a rendezvous, in seconds."
        ),
    ] = 3600.0,
    lookup_rate: Annotated[
        float,
        typer.Option(
            "--lookup-rate",
            metavar="PER_SECOND",
            min=0.001,
            help="Lookups per second per source address.",
        ),
    ] = 1.0,
    lookup_burst: Annotated[
        int,
        typer.Option(
            "--lookup-burst", metavar="COUNT", min=1, help="Lookups at once per source address."
        ),
    ] = 20,
    names_per_address: Annotated[
        int,
        typer.Option(
            "--names-per-address",
            metavar="COUNT",
            min=1,
            help="Rendezvous one source address (an IPv6 /64) may hold at once.",
        ),
    ] = 32,
    names_per_key: Annotated[
        int,
        typer.Option(
            "--names-per-key",
            metavar="COUNT",
            min=1,
            help="Rendezvous one agent key may hold at once.",
        ),
    ] = 16,
    register_rate: Annotated[
        float,
        typer.Option(
            "--register-rate",
            metavar="PER_SECOND",
            min=0.001,
            help="New rendezvous per second per source address, and per key.",
        ),
    ] = 0.2,
    register_burst: Annotated[
        int,
        typer.Option(
            "--register-burst",
            metavar="COUNT",
            min=1,
            help="New rendezvous at once per source address, and per key.",
        ),
    ] = 16,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            metavar="FILE",
            help="Append the JSON-lines log here [default: stdout].",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Run a relay: agents register a rendezvous, technicians reach it; nothing else."""
    import asyncio

    host, port = parse_address(listen, default_host="0.0.0.0")  # noqa: S104 (a server)
    if port == 0 and not listen.rstrip().endswith(":0"):
        raise UsageError(f"--listen {listen!r} needs a port, e.g. 0.0.0.0:2222.")
    from toolkit.relay._log import EventLog
    from toolkit.relay.server import Relay, RelayOptions, read_agents, read_technicians

    options = RelayOptions(
        host=host,
        port=port,
        host_key=host_key,
        technicians=read_technicians(technicians) if technicians else None,
        agents=read_agents(agents) if agents else None,
        max_ttl=max_ttl,
        lookup_rate=lookup_rate,
        lookup_burst=lookup_burst,
        names_per_address=names_per_address,
        names_per_key=names_per_key,
        register_rate=register_rate,
        register_burst=register_burst,
    )
    stream: TextIO = log.open("a", encoding="utf-8") if log else sys.stdout
    try:
        code = asyncio.run(_serve(Relay(options, EventLog(stream)), log is None))
    finally:
        if log:
            stream.close()
    if code:
        raise typer.Exit(code)


async def _serve(relay: Relay, logs_on_stdout: bool) -> int:
    import asyncio

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    why: list[int] = []

    def stopping(code: int) -> None:
        if code == ExitCode.INTERRUPTED and sys.stderr.isatty():
            # After the terminal's ^C, so that the log's last line starts a line of its own.
            print(file=sys.stderr, flush=True)
        why.append(code)
        stop.set()

    loop.add_signal_handler(signal.SIGINT, stopping, int(ExitCode.INTERRUPTED))
    loop.add_signal_handler(signal.SIGTERM, stopping, int(ExitCode.OK))
    host, port = await relay.start()
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    err().print(
        f"Relay listening on {shown}, host key {relay.host_key_fingerprint}."
        + ("" if logs_on_stdout else " Logging to the --log file."),
        markup=False,
        highlight=False,
    )
    ticker = loop.create_task(_stats(relay))
    try:
        await stop.wait()
    finally:
        ticker.cancel()
        await relay.close()
    return why[0] if why else 0


async def _stats(relay: Relay) -> None:
    import asyncio

    while True:
        await asyncio.sleep(STATS_INTERVAL)
        relay.log.emit("stats", **relay.stats())


__all__ = ["relay_command"]
