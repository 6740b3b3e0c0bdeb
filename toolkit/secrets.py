"""Secret values that cannot leak into text by accident.

The consent code, passphrases and tokens are held as :class:`Secret`. It is
not a ``str`` or ``bytes``: formatting, ``str()``, JSON encoding and pickling
all refuse or redact, so passing one to a log line or a transcript fails
loudly instead of writing it. The one way out is ``reveal()``, which is easy
to find in a review.
"""

from __future__ import annotations

from typing import NoReturn


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"

    def __str__(self) -> NoReturn:
        raise TypeError("A Secret cannot be turned into text; call reveal() deliberately.")

    def __format__(self, spec: str) -> NoReturn:
        raise TypeError("A Secret cannot be formatted; call reveal() deliberately.")

    def __reduce__(self) -> NoReturn:
        raise TypeError("A Secret cannot be pickled.")

    def __eq__(self, other: object) -> bool:
        import hmac

        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return id(self)


__all__ = ["Secret"]
