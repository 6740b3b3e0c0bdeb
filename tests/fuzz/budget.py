"""How long the fuzz targets run: seconds in ``make test``, as long as asked in ``make fuzz``.

``make test`` runs every target with a small, fixed budget: derandomized, so a
run on someone else's change cannot fail by chance, and with no example
database. ``make fuzz`` (bench/fuzz.py) sets ``TOOLKIT_FUZZ_EXAMPLES``: then
each target draws that many random examples and keeps the failing ones in
``.hypothesis/`` (git-ignored), so the next run tries them first. A failure
found that way becomes an ``@example`` of its target, so ``make test`` keeps it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

#: Examples per target in ``make test``: about a second for the slowest target.
QUICK_EXAMPLES = 150
_LONG = os.environ.get("TOOLKIT_FUZZ_EXAMPLES", "")
LONG = bool(_LONG)


_COMMON = settings(
    # A loaded 2-core machine makes timings noisy: the targets bound their own
    # time (a hang fails through test_transcripts.within) instead of a deadline.
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
)


def budget(quick: int = QUICK_EXAMPLES) -> settings:
    """Settings for one target; ``quick`` is its number of examples in ``make test``."""
    if LONG:  # random, with the example database (.hypothesis/)
        return settings(_COMMON, max_examples=int(_LONG), derandomize=False)
    return settings(_COMMON, max_examples=quick, derandomize=True, database=None)
