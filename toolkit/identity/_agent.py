"""A minimal synchronous ssh-agent client: list identities and sign.

The transcript recorder signs checkpoints from synchronous code, so this talks
the agent protocol (draft-miller-ssh-agent) directly over the Unix socket
instead of through an event loop.
"""

from __future__ import annotations

import os
import socket
import struct

from toolkit.errors import IdentityError
from toolkit.identity._wire import Reader, string, uint32

_REQUEST_IDENTITIES = 11
_IDENTITIES_ANSWER = 12
_SIGN_REQUEST = 13
_SIGN_RESPONSE = 14
_FAILURE = 5
_RSA_SHA2_512 = 4
_MAX_MESSAGE = 256 * 1024


class AgentClient:
    def __init__(self, path: str | None = None) -> None:
        path = path or os.environ.get("SSH_AUTH_SOCK")
        if not path:
            raise IdentityError(
                "No ssh-agent is running (SSH_AUTH_SOCK is not set).",
                hint="Start one with `eval $(ssh-agent)` and `ssh-add`, or use --key PATH.",
            )
        self.path = path

    def _call(self, message: bytes) -> Reader:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(30)
                sock.connect(self.path)
                sock.sendall(string(message))
                header = self._recv(sock, 4)
                (length,) = struct.unpack(">I", header)
                if length > _MAX_MESSAGE:
                    raise IdentityError("ssh-agent sent an oversized reply.")
                return Reader(self._recv(sock, length), "ssh-agent reply")
        except OSError as exc:
            raise IdentityError(
                f"Could not talk to ssh-agent at {self.path} ({exc.strerror or exc}).",
                hint="Check SSH_AUTH_SOCK, or use --key PATH instead of --agent.",
            ) from None

    @staticmethod
    def _recv(sock: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise IdentityError("ssh-agent closed the connection mid-reply.")
            buf += chunk
        return buf

    def identities(self) -> list[tuple[bytes, str]]:
        """(key blob, comment) for every key the agent holds."""
        r = self._call(bytes([_REQUEST_IDENTITIES]))
        if r.byte() != _IDENTITIES_ANSWER:
            raise IdentityError("ssh-agent refused to list its keys.")
        return [(r.string(), r.text()) for _ in range(r.uint32())]

    def sign(self, key_blob: bytes, data: bytes) -> bytes:
        flags = _RSA_SHA2_512 if Reader(key_blob, "key").text().startswith("ssh-rsa") else 0
        r = self._call(bytes([_SIGN_REQUEST]) + string(key_blob) + string(data) + uint32(flags))
        code = r.byte()
        if code == _FAILURE:
            raise IdentityError(
                "ssh-agent refused to sign (the key may have been removed or need confirmation).",
                hint="Check `ssh-add -l`, or use --key PATH.",
            )
        if code != _SIGN_RESPONSE:
            raise IdentityError("ssh-agent sent an unexpected reply to a sign request.")
        return r.string()
