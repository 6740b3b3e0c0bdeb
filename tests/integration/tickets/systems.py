"""Redmine and Request Tracker 5 for real, on 127.0.0.1, through scripts/ticket-systems.sh."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "ticket-systems.sh"
#: Exit status of the script when the packages cannot be installed here.
CANNOT_INSTALL = 77


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class System:
    name: str
    state: Path
    port: int
    url: str = ""
    credential: str = ""
    started_in: float = 0.0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=900
        )

    def start(self) -> None:
        import time

        began = time.monotonic()
        done = self._run("start", self.name, str(self.state), str(self.port))
        if done.returncode == CANNOT_INSTALL:
            pytest.skip(f"{self.name} cannot be installed here: {done.stderr.strip()}")
        if done.returncode != 0:
            log = (self.state / "server.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"{self.name} did not start: {done.stderr}\n{log}")
        self.started_in = time.monotonic() - began
        self.url = (self.state / "url").read_text().strip()
        self.credential = (self.state / "credential").read_text().strip()

    def stop(self) -> None:
        self._run("stop", self.name, str(self.state))

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the system's own API, as its administrator (for set-up and checks)."""
        if self.name == "redmine":
            url, headers = f"{self.url}/{path}", {"X-Redmine-API-Key": self.credential}
        else:
            url = f"{self.url}/REST/2.0/{path}"
            headers = {"Authorization": f"token {self.credential}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else None

    def attachment_names(self, ticket: str) -> list[str]:
        if self.name == "redmine":
            issue = self.api("GET", f"issues/{ticket}.json?include=attachments")["issue"]
            return sorted(a["filename"] for a in issue["attachments"])
        items = self.api("GET", f"ticket/{ticket}/attachments?fields=Filename&per_page=100")
        return sorted(i["Filename"] for i in items["items"] if i.get("Filename"))


def start_system(name: str, root: Path) -> System:
    system = System(name, root / name, free_port())
    system.start()
    if name == "redmine":
        system.api(
            "POST", "projects.json", {"project": {"name": "Support", "identifier": "support"}}
        )
    return system
