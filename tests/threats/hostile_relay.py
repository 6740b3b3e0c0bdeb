"""A hostile relay, run as a process: it says it is ``toolkit relay`` and answers with escapes.

``python hostile_relay.py HOST_KEY`` prints its port, then serves until killed:

- a login as ``evil`` is disconnected, the reason carrying escape sequences;
- every registration is refused, after a debug message carrying them;
- every lookup is refused, the reason carrying them.

What the customer and the technician are shown of it must not carry them raw
(tests/threats/test_relay.py).
"""

from __future__ import annotations

import asyncio
import sys

import asyncssh

#: Clear the screen, retitle the window (OSC ... BEL), then something plausible.
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m"


class Hostile(asyncssh.SSHServer):
    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        if username == "evil":
            loop = asyncio.get_running_loop()
            loop.call_soon(self._conn.disconnect, asyncssh.DISC_BY_APPLICATION, ESCAPES + "go away")
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return True

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        self._conn.send_debug(ESCAPES + "too many rendezvous")
        return False

    def unix_connection_requested(self, dest_path: str) -> bool:
        raise asyncssh.ChannelOpenError(
            asyncssh.OPEN_CONNECT_FAILED, ESCAPES + "no such rendezvous"
        )


async def main(key_path: str) -> None:
    server = await asyncssh.create_server(
        Hostile,
        "127.0.0.1",
        0,
        server_host_keys=[key_path],
        server_version="toolkit-relay_1",
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
