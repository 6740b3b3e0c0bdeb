"""An entry point whose object is not a toolkit.plugins.Plugin."""

plugin = {"name": "not-a-plugin", "procedures": []}
