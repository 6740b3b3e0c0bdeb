"""Blocking prompts from async code, on daemon threads.

``asyncio.to_thread`` would do, except that a prompt nobody answers keeps
its worker thread in ``input()`` and ``asyncio.run`` then waits for it at
exit; a daemon thread lets Ctrl-C or the end of the session leave at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_thread(fn: Callable[[], T]) -> T:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting task, not lost
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, value, None)

    threading.Thread(target=work, daemon=True, name="toolkit-prompt").start()
    return await future


def printable(text: str, limit: int = 500) -> str:
    """A peer's text made safe for a terminal: control characters escaped, length capped."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")


__all__ = ["in_thread", "printable"]
