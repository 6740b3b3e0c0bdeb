"""Where toolkit keeps things, through platformdirs.

On Linux this honours XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_STATE_HOME, which
is how tests and scripts isolate runs from each other.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs

APP = "toolkit"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP, appauthor=False))


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if missing and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


__all__ = ["config_dir", "data_dir", "ensure_private_dir", "state_dir"]
