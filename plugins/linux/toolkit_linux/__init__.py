"""toolkit's first-party Linux diagnostics and fixes, as a plugin like anyone's.

The ``linux`` entry point in the ``toolkit.plugins`` group names :data:`plugin`.
It uses toolkit's public plugin API (:mod:`toolkit.plugins`) and nothing
else of toolkit's. docs: plugins/README.md and docs/plugins.md.
"""

from toolkit.plugins import Plugin
from toolkit_linux._diagnostics import DIAGNOSTICS
from toolkit_linux._fixes import FIXES

__version__ = "0.1.0"

plugin = Plugin(
    name="linux",
    version=__version__,
    summary="Diagnostics and fixes for Linux machines (systemd, apt, CUPS)",
    procedures=(*DIAGNOSTICS, *FIXES),
)

__all__ = ["DIAGNOSTICS", "FIXES", "plugin"]
