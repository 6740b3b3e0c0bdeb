"""A long-running relay gives back the memory that ended sessions freed."""

from __future__ import annotations

import time

import pytest

from toolkit.relay import server
from toolkit.relay._log import EventLog


def test_the_sweep_gives_memory_back_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    trims: list[float] = []
    monkeypatch.setattr(time, "monotonic", lambda: now[0])

    def release() -> bool:
        trims.append(now[0])
        return True

    monkeypatch.setattr(server, "release_memory", release)
    relay = server.Relay(server.RelayOptions(), EventLog(None))
    for _ in range(30):  # 30 sweeps, 5 s apart: 150 s
        now[0] += server.SWEEP_INTERVAL
        relay.sweep()
    assert trims == [1060.0, 1120.0]
