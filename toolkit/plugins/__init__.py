"""The public plugin API: diagnostics, fixes and ticket backends that plug into toolkit.

A plugin is a :class:`Plugin` behind an entry point in the ``toolkit.plugins``
group (docs/plugins.md); :func:`toolkit.plugins.loader.installed` finds them
(kept out of this package so that a plugin's import does not load
``importlib.metadata``). First-party plugins (plugins/) use exactly these
names and nothing else of toolkit's::

    from toolkit.plugins import Fix, Parameter, Plugin

    plugin = Plugin(
        name="example",
        version="1.0",
        procedures=(
            Fix(
                name="restart-unit",
                summary="Restart a systemd unit that is not running",
                parameters=(Parameter("unit", pattern=r"[A-Za-z0-9@._-]+\\.service"),),
                check=[["systemctl", "is-active", "--quiet", "{unit}"]],
                apply=[["systemctl", "restart", "{unit}"]],
                verify=[["systemctl", "is-active", "--quiet", "{unit}"]],
            ),
        ),
    )
"""

from toolkit.plugins.declaration import (
    Decision,
    DeclarationError,
    Diagnostic,
    Finding,
    Fix,
    Kind,
    Parameter,
    ParameterError,
    ParameterType,
    Procedure,
    Step,
    StepOutput,
    current_platform,
)
from toolkit.plugins.plugin import GROUP, Plugin
from toolkit.tickets.base import BackendConfig, TicketPlugin

__all__ = [
    "GROUP",
    "BackendConfig",
    "Decision",
    "DeclarationError",
    "Diagnostic",
    "Finding",
    "Fix",
    "Kind",
    "Parameter",
    "ParameterError",
    "ParameterType",
    "Plugin",
    "Procedure",
    "Step",
    "StepOutput",
    "TicketPlugin",
    "current_platform",
]
