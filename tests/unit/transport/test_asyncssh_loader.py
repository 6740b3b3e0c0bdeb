"""asyncssh loads without compiling a probe for liboqs, and ctypes is left as it was."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import ctypes.util, sys
probes = []
gcc = ctypes.util._findLib_gcc
ctypes.util._findLib_gcc = lambda name: probes.append(name) or gcc(name)
find = ctypes.util.find_library
from toolkit.transport._asyncssh import load
module = load()
import asyncssh
print(probes, ctypes.util.find_library is find, module is asyncssh, load() is asyncssh)
"""


def test_asyncssh_loads_without_the_compiler_probe() -> None:
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    probes, rest = done.stdout.strip().splitlines()[-1].split("] ")
    assert rest == "True True True"
    if sys.platform.startswith("linux"):
        assert probes == "["  # asyncssh asked for liboqs, the ldconfig cache answered
