"""The inventory file and --limit patterns: what is taken, and every refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolkit.errors import UsageError
from toolkit.fleet import inventory
from toolkit.fleet.inventory import Host, load, select
from toolkit.inputs import SMALL

FP = "SHA256:" + "A" * 43

GOOD = f"""
[defaults]
relay = "ops@relay.example:2222"
ticket = "OPS-{{host}}"
params = {{ unit = "nginx", mode = "fast" }}

[hosts.web-01]
address = "10.0.0.5:7022"
host_key = "{FP}"
groups = ["web", "eu"]
params = {{ unit = "apache2" }}

[hosts.web-02]
address = "[::1]:7022"
groups = ["web", "us"]
ticket = "OPS-1"

[hosts.db-01]
name = "db-one"
groups = ["db", "eu"]

[hosts.cache]
relay = "relay2.example"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return path


@pytest.fixture
def inv(tmp_path: Path) -> inventory.Inventory:
    return load(write(tmp_path, GOOD))


def test_hosts_with_defaults_applied(inv: inventory.Inventory) -> None:
    web1, web2, db, cache = inv.hosts
    assert web1 == Host(
        "web-01",
        address=("10.0.0.5", 7022),
        host_key=FP,
        groups=("web", "eu"),
        params={"unit": "apache2", "mode": "fast"},
        ticket="OPS-web-01",
    )
    assert web2.address == ("::1", 7022) and web2.ticket == "OPS-1" and web2.relay is None
    assert (db.relay, db.relay_name, db.address) == ("ops@relay.example:2222", "db-one", None)
    assert (cache.relay, cache.relay_name) == ("relay2.example", "cache")
    assert web2.where == "[::1]:7022"
    assert db.where == "db-one at the relay ops@relay.example:2222"
    assert inv.groups == {"web", "eu", "us", "db"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[hosts.a]\naddress = "h:1"\nport = 2\n', "[hosts.a]: unknown key 'port'"),
        ('[defaults]\nforks = 3\n[hosts.a]\naddress = "h:1"\n', "[defaults]: unknown key 'forks'"),
        ('[extra]\n[hosts.a]\naddress = "h:1"\n', "unknown key 'extra'"),
        ('[hosts."a b"]\naddress = "h:1"\n', "the host name 'a b'"),
        ('[hosts.a]\naddress = "h"\n', "[hosts.a] address: 'h' is not HOST:PORT"),
        ('[hosts.a]\naddress = "h:0"\n', "is not HOST:PORT"),
        ('[hosts.a]\naddress = "h:1"\nrelay = "r"\n', "not both"),
        ("[hosts.a]\n", "no address, and no relay"),
        ('[hosts.a]\naddress = "h:1"\nhost_key = "MD5:aa"\n', "host_key: 'MD5:aa' is not"),
        ('[hosts.a]\naddress = "h:1"\ngroups = "web"\n', "[hosts.a] groups"),
        ('[hosts.a]\naddress = "h:1"\ngroups = ["w b"]\n', "'w b' is not 1-64"),
        ('[hosts.a]\naddress = "h:1"\ngroups = ["a"]\n', "has the name of a host"),
        ('[hosts.a]\naddress = "h:1"\nparams = { port = 80 }\n', "port must be a string"),
        ('[hosts.a]\naddress = "h:1"\nparams = { "X-Y" = "1" }\n', "'X-Y' is not a parameter"),
        ('[hosts.a]\naddress = "h:1"\nticket = "T\\u001b[2J"\n', "control or invisible"),
        ('[hosts.a]\nrelay = "@@"\n', "[hosts.a] relay"),
        ("[defaults]\n", "lists no hosts"),
        ("hosts = 3\n", "[hosts] must be a table"),
        ("[hosts.a\n", "is not valid TOML"),
        ("x = " + "[" * 2000 + "]" * 2000 + "\n", "nested too deeply"),
    ],
)
def test_refusals_name_the_host_and_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(UsageError) as caught:
        load(write(tmp_path, text))
    assert named in caught.value.message
    assert "\x1b" not in caught.value.message


def test_bad_files_are_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="FIFO"):
        load(fifo)
    with pytest.raises(UsageError, match="directory"):
        load(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        load(tmp_path / "missing.toml")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (SMALL + 1))
    with pytest.raises(UsageError, match="larger than 4 MiB"):
        load(big)
    with pytest.raises(UsageError, match="not UTF-8"):
        load(_bytes(tmp_path, b"\xff\xfe"))


def _bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bin.toml"
    path.write_bytes(data)
    return path


def names(hosts: list[Host]) -> list[str]:
    return [h.name for h in hosts]


@pytest.mark.parametrize(
    ("limit", "chosen"),
    [
        (None, ["web-01", "web-02", "db-01", "cache"]),
        ("all", ["web-01", "web-02", "db-01", "cache"]),
        ("web", ["web-01", "web-02"]),
        ("db-01,cache", ["db-01", "cache"]),
        ("cache:web-01", ["web-01", "cache"]),  # inventory order, not the pattern's
        ("web*", ["web-01", "web-02"]),
        ("e?", ["web-01", "db-01"]),  # a glob over groups too
        ("web:!web-02", ["web-01"]),
        ("!web", ["db-01", "cache"]),
        ("web:&eu", ["web-01"]),
        ("&eu", ["web-01", "db-01"]),
        ("all:!eu:!us", ["cache"]),
        (" web , db ", ["web-01", "web-02", "db-01"]),
    ],
)
def test_limit_patterns(inv: inventory.Inventory, limit: str | None, chosen: list[str]) -> None:
    assert names(select(inv, limit)) == chosen


@pytest.mark.parametrize(
    ("limit", "why"),
    [
        ("web:!web-3", "'web-3' matches no host or group"),  # a typo never spares nothing
        ("nope", "matches no host"),
        ("web:&db", "leaves no host"),
        ("web,,db", "empty pattern"),
        ("!", "names nothing"),
    ],
)
def test_limit_refusals(inv: inventory.Inventory, limit: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        select(inv, limit)


def test_limit_from_a_retry_file(tmp_path: Path, inv: inventory.Inventory) -> None:
    retry = tmp_path / "dir:with:colons" / "hosts.toml.retry"
    retry.parent.mkdir()
    retry.write_text("# hosts to run again\ncache\n\nweb-02\n")
    assert names(select(inv, f"@{retry}")) == ["web-02", "cache"]
    assert names(select(inv, f"web,!@{retry}")) == ["web-01"]
    retry.write_text("cache\nweb-09\n")
    with pytest.raises(UsageError, match=r"names 'web-09', which .* does not list"):
        select(inv, f"@{retry}")
    retry.write_text("# nothing\n")
    with pytest.raises(UsageError, match="names no host"):
        select(inv, f"@{retry}")
    retry.write_text("ca che\n")
    with pytest.raises(UsageError, match="line 1: 'ca che' is not a host name"):
        select(inv, f"@{retry}")
    with pytest.raises(UsageError, match="no such file"):
        select(inv, f"@{tmp_path}/missing")
