"""The SSH wire encoding (RFC 4251 section 5), just what SSHSIG and the agent need."""

from __future__ import annotations

import struct

from toolkit.errors import SignatureError


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def uint32(value: int) -> bytes:
    return struct.pack(">I", value)


class Reader:
    """Reads SSH wire fields from a buffer; any short read raises."""

    def __init__(self, data: bytes, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise SignatureError(f"The {self._what} is truncated or malformed.")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def raw(self, n: int) -> bytes:
        return self._take(n)

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def byte(self) -> int:
        return self._take(1)[0]

    def string(self) -> bytes:
        return self._take(self.uint32())

    def text(self) -> str:
        try:
            return self.string().decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureError(f"The {self._what} holds text that is not UTF-8.") from None

    def rest(self) -> bytes:
        return self._take(len(self._data) - self._pos)

    def done(self) -> None:
        if self._pos != len(self._data):
            raise SignatureError(f"The {self._what} has unexpected trailing data.")
