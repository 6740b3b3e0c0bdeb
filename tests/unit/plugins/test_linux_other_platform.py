"""A plugin for another platform (tests/assets/plugins/macos-plugin) does not run on Linux.

Its declarations are valid and travel as any other; they only say that they
run on macOS, which is what the loader and the agent refuse them by. The
agent's refusal is tested where the agent loads plugins; here, the
declaration side: nothing in the API assumes Linux.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from toolkit.plugins import Plugin, Procedure, current_platform

ASSET = Path(__file__).resolve().parents[2] / "assets" / "plugins" / "macos-plugin"


def _load() -> ModuleType:
    """The asset's package, from its directory (it is not installed in the venv)."""
    init = ASSET / "toolkit_macos_example" / "__init__.py"
    spec = importlib.util.spec_from_file_location("toolkit_macos_example", init)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_macos_plugin_declares_procedures_that_do_not_run_here() -> None:
    plugin = _load().plugin
    assert isinstance(plugin, Plugin)
    assert current_platform() == "linux"
    for procedure in plugin.procedures:
        assert procedure.platforms == ("macos",)
        assert not procedure.runs_here()
        assert procedure.runs_here("macos")
        # Sent whole, it stays a macOS procedure: the agent sees the platform it refuses.
        sent = Procedure.from_dict(json.loads(procedure.canonical()))
        assert sent.platforms == ("macos",) and sent.sha256 == procedure.sha256


def test_the_asset_registers_like_any_plugin() -> None:
    text = (ASSET / "pyproject.toml").read_text()
    assert '[project.entry-points."toolkit.plugins"]' in text
    assert 'macos-example = "toolkit_macos_example:plugin"' in text
