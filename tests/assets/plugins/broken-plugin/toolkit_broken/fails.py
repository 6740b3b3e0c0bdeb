"""A plugin whose import fails: it needs a module that is not installed."""

import toolkit_broken_missing_dependency  # type: ignore[import-not-found]  # noqa: F401

plugin = None
