"""The sshd_config block that makes a stock OpenSSH server a relay (docs/relay.md).

docs/relay.md shows :func:`bastion_config` for the default user and
directory, and the tests start a real sshd with exactly this block.
"""

from __future__ import annotations

from toolkit.relay._wire import DEFAULT_SOCKET_DIR

DEFAULT_USER = "toolkit-relay"


def bastion_config(user: str = DEFAULT_USER, socket_dir: str = DEFAULT_SOCKET_DIR) -> str:
    """The ``Match User`` block for the relay's dedicated user."""
    return f"""\
# toolkit relay: the dedicated user may only forward Unix sockets.
Match User {user}
    AuthenticationMethods publickey
    # OpenSSH lets socket forwarding through only where TCP forwarding is allowed too;
    # PermitListen none still refuses every TCP listener (socket listeners are not
    # TCP), and the firewall rule in docs/relay.md stops outgoing TCP.
    AllowTcpForwarding yes
    PermitListen none
    AllowStreamLocalForwarding yes
    # A name whose agent went away leaves its socket file behind: bind over it.
    # Agents check that nobody listens on a name before they take it.
    StreamLocalBindUnlink yes
    StreamLocalBindMask 0177
    ForceCommand /bin/false
    PermitTTY no
    AllowAgentForwarding no
    X11Forwarding no
    PermitTunnel no
    PermitUserRC no
    GatewayPorts no
    # Rendezvous sockets live in {socket_dir} (owned by {user}, mode 0700).
"""


__all__ = ["DEFAULT_USER", "bastion_config"]
