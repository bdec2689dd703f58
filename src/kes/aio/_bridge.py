"""Handing work between kes's threads and one asyncio event loop, one wake-up per batch.

* :class:`Completions`: the writer thread finishes appends; their futures are resolved on
  the loop. A wake-up (``call_soon_threadsafe``, a write to the loop's self-pipe) is sent
  only when the batch of finished appends goes from empty to non-empty, so a transaction
  of 1,000 appends costs the loop one wake-up, not 1,000.
* :func:`iterate_in_thread`: a blocking iterator (a Kafka scan, a subscription) runs on a
  thread of its own and its items reach the loop in batches, at most ``limit`` buffered:
  a slow consumer slows the reading thread, never grows memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from kes.errors import KesError

if TYPE_CHECKING:
    from kes.store.kafka._admission import AppendRequest
    from kes.store.kafka._partition import OwnedPartition
    from kes.store.kafka._writer import Writer

__all__ = ["Completions", "InFlight", "iterate_in_thread", "wake"]

T = TypeVar("T")


def wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class InFlight:
    """One append handed to the writer: its request and the future the loop awaits.

    Passed as the request's ``on_done``; the outcome itself is read from the request.
    """

    __slots__ = ("completions", "future", "request")

    def __init__(self, completions: Completions) -> None:
        self.completions = completions
        self.future: asyncio.Future[None] = completions.loop.create_future()
        self.request: AppendRequest | None = None

    def __call__(self, request: AppendRequest) -> None:  # on the writer's thread
        self.completions.push(self)


class Completions:
    """One event loop's traffic with the writer, both ways in batches.

    * Out: appends submitted during one turn of the loop reach the writer together at
      the end of the turn (one lock, one wake-up of the commit loop; the writer then
      takes them in one transaction instead of waking for the first and competing with
      the loop for the GIL while the rest arrive).
    * Back: appends finished on the writer's thread are resolved on the loop in batches.
    * A watch wakes, about once a second, the waiters whose answer is overdue (one timer
      per loop instead of one per append).
    """

    SWEEP_S = 1.0

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: Writer) -> None:
        self.loop = loop
        self.writer = writer
        self._outbox: list[tuple[OwnedPartition, AppendRequest]] = []
        self._lock = threading.Lock()
        self._done: list[InFlight] = []
        # (time.monotonic() after which to wake it, flight), about in that order: the
        # timeouts of one store differ little, so a later entry rarely expires sooner.
        self._watched: deque[tuple[float, InFlight]] = deque()
        self._sweeping = False

    def submit(self, owned: OwnedPartition, request: AppendRequest) -> None:
        """Hand ``request`` to the writer at the end of this turn of the loop."""
        self._outbox.append((owned, request))
        if len(self._outbox) == 1:
            self.loop.call_soon(self._send)

    def _send(self) -> None:
        outbox, self._outbox = self._outbox, []
        try:
            self.writer.submit_many(outbox)
        except KesError as exc:  # the store is closed
            for _, request in outbox:
                request.fail(exc)

    def withdraw(self, request: AppendRequest) -> bool:
        """Take ``request`` back if the writer does not have it yet (True: it will never
        be written)."""
        for i, (_, queued) in enumerate(self._outbox):
            if queued is request:
                del self._outbox[i]
                return True
        return self.writer.withdraw(request)

    def push(self, flight: InFlight) -> None:
        with self._lock:
            self._done.append(flight)
            first = len(self._done) == 1
        if first:
            # RuntimeError: the loop is closed; nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for flight in done:
            wake(flight.future)

    def watch(self, flight: InFlight, timeout: float) -> None:
        """Wake ``flight``'s waiter after ``timeout`` seconds if no answer came (on the
        loop; give or take a sweep)."""
        self._watched.append((time.monotonic() + timeout, flight))
        if not self._sweeping:
            self._sweeping = True
            self.loop.call_later(self.SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        watched = self._watched
        while watched:
            expires, flight = watched[0]
            if flight.future.done():
                watched.popleft()
            elif expires <= now:
                watched.popleft()
                wake(flight.future)
            else:
                break
        if watched:
            self.loop.call_later(self.SWEEP_S, self._sweep)
        else:
            self._sweeping = False


class _Feed(Generic[T]):
    """Items from a producing thread to the loop; the loop is woken only while it waits."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.limit = limit
        self.stop = threading.Event()
        self._cv = threading.Condition()
        self._items: list[T] = []
        self._finished = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    # ---- the producing thread ----------------------------------------------------------

    def put(self, item: T) -> bool:
        """Buffer ``item`` (waits while ``limit`` items are buffered); False once stopped."""
        with self._cv:
            while len(self._items) >= self.limit and not self.stop.is_set():
                self._cv.wait(0.1)
            if self.stop.is_set():
                return False
            self._items.append(item)
            self._wake()
        return True

    def finish(self, error: BaseException | None = None) -> None:
        with self._cv:
            self._finished = True
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                self.loop.call_soon_threadsafe(wake, waiter)
            except RuntimeError:
                self.stop.set()

    # ---- the loop ------------------------------------------------------------------------

    async def take(self) -> list[T] | None:
        """Every buffered item; None once the iterator ended (raises what it raised)."""
        while True:
            with self._cv:
                if self._items:
                    items, self._items = self._items, []
                    self._cv.notify_all()
                    return items
                if self._finished:
                    if self._error is not None:
                        raise self._error
                    return None
                waiter = self._waiter = self.loop.create_future()
            await waiter

    def close(self) -> None:
        self.stop.set()
        with self._cv:
            self._cv.notify_all()


async def iterate_in_thread(
    make: Callable[[threading.Event], Iterator[T]], name: str, limit: int = 2_000
) -> AsyncGenerator[T, None]:
    """Iterate ``make(stop)`` on a new thread; ``stop`` is set when this iterator is
    closed (leave an ``async for`` with ``contextlib.aclosing`` to stop it at once)."""
    feed: _Feed[T] = _Feed(asyncio.get_running_loop(), limit)

    def run() -> None:
        try:
            items = make(feed.stop)
            try:
                for item in items:
                    if not feed.put(item):
                        break
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            feed.finish(exc)
            return
        feed.finish()

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while (items := await feed.take()) is not None:
            for item in items:
                yield item
    finally:
        feed.close()
