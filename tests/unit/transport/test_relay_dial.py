"""Which ~/.ssh/config settings keep the relay connection on asyncssh's own connect path."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from toolkit.transport.relay import _plain_tcp


@pytest.mark.parametrize(
    ("config", "plain"),
    [
        ("", True),
        ("Host relay.example\n  Port 2222\n  User relay\n  HostName 192.0.2.7\n", True),
        ("Host relay.example\n  ProxyJump jump.example\n", False),
        ("Host relay.example\n  ProxyCommand nc %h %p\n", False),
        ("Host relay.example\n  BindAddress 127.0.0.2\n", False),
        ("Host relay.example\n  AddressFamily inet\n", False),
        ("Host relay.example\n  CanonicalizeHostname yes\n", False),
        ("Match final host relay.example\n  ProxyJump jump.example\n", False),
        ("Host other.example\n  ProxyJump jump.example\n", True),
    ],
)
def test_toolkit_tcp_only_where_the_config_asks_for_nothing_else(
    tmp_path: Path, config: str, plain: bool
) -> None:
    path = tmp_path / "config"
    path.write_text(config)
    options = asyncssh.SSHClientConnectionOptions(
        host="relay.example", client_keys=None, config=[str(path)]
    )
    assert _plain_tcp(options) is plain
