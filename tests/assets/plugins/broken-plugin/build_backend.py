"""A PEP 517 backend of the standard library only: builds the wheel of this test distribution.

Only what ``pip install --no-build-isolation --no-index`` calls: no sdist, no editable.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path

HERE = Path(__file__).parent


def _record(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(
    wheel_directory: str,
    config_settings: object = None,
    metadata_directory: object = None,
) -> str:
    project = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]
    name, version = project["name"].replace("-", "_"), project["version"]
    info = f"{name}-{version}.dist-info"
    points = project["entry-points"]["toolkit.plugins"]
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: build_backend\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{info}/entry_points.txt": "[toolkit.plugins]\n"
        + "".join(f"{k} = {v}\n" for k, v in points.items()),
    }
    for source in sorted((HERE / "toolkit_broken").glob("*.py")):
        files[f"toolkit_broken/{source.name}"] = source.read_text()
    wheel = f"{name}-{version}-py3-none-any.whl"
    records = [_record(path, text.encode()) for path, text in files.items()]
    records.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(records) + "\n"
    with zipfile.ZipFile(Path(wheel_directory) / wheel, "w") as out:
        for path, text in files.items():
            out.writestr(path, text)
    return wheel
