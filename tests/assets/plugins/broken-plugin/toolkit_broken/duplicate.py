"""A plugin that gives a diagnostic named as one of the plugin 'good': refused in both."""

from toolkit.plugins import Diagnostic, Plugin

plugin = Plugin(
    name="duplicate",
    version="1",
    procedures=(
        Diagnostic(name="greeting", summary="Say hello, differently", run=[["echo", "hi"]]),
        Diagnostic(name="uptime-only", summary="Uptime", run=[["uptime"]]),
    ),
)
