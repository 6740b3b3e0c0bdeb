"""The technician's renderer names a listing's kinds with the agent's own words."""

from __future__ import annotations

import stat

from toolkit.cli.render import DIRECTORY, SYMLINK
from toolkit.policy.rules import kind_of


def test_the_renderer_s_words_are_the_agent_s() -> None:
    # They drifted once ("dir"): directories then lost their "/" in completion and colour.
    assert kind_of(stat.S_IFDIR | 0o755) == DIRECTORY
    assert kind_of(stat.S_IFLNK | 0o777) == SYMLINK
