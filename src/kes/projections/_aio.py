"""``async def`` handlers in projections: the runner's thread drives them on an event loop
of its own, to completion, one at a time and in order, exactly where a plain handler
would have run. So an async handler has the same guarantee as a plain one (nothing is
committed before it finished), and may await any asyncio library inside (asyncpg, httpx,
psycopg's async connections)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

__all__ = ["is_async", "resolve", "run"]

T = TypeVar("T")
_local = threading.local()


def loop() -> asyncio.AbstractEventLoop:
    """This thread's event loop for handlers (made on first use, kept for the thread)."""
    current: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if current is None or current.is_closed():
        current = _local.loop = asyncio.new_event_loop()
    return current


def run(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion on this thread's loop."""
    return loop().run_until_complete(awaitable)


def resolve(result: Any) -> Any:
    """What a handler returned, awaited first when it is awaitable."""
    if result is not None and inspect.isawaitable(result):
        return run(result)
    return result


def is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn)
