"""The live end of each aggregate type, read once and shared by all its subscribers.

One thread per followed type reads the event topic (``read_committed``) from the offsets
it had when the first subscriber came, and appends each event, already encoded as an SSE
``data:`` line, to a ring bounded in events and bytes. Subscribers keep only an index
into the ring, so a thousand subscribers cost one Kafka consumer and one copy of each
event. A subscriber that falls behind the ring's start (evicted) reads the gap from
Kafka itself (:meth:`Gateway.catch_up`) and comes back: nothing is missed, and memory
stays bounded whatever the subscribers do.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from kes.envelope import RecordedEvent
from kes.serve.gateway import Gateway

__all__ = ["Entry", "Tail", "Tails", "encode_event", "to_entry"]

log = logging.getLogger("kes.serve")

_encoder = msgspec.json.Encoder()


def encode_event(event: RecordedEvent) -> bytes:
    """The HTTP form of an event: its envelope (docs/wire-format.md) with ``position``."""
    pos = event.position
    envelope = _encoder.encode(event.envelope)
    head = _encoder.encode({"topic": pos.topic, "partition": pos.partition, "offset": pos.offset})
    return b'{"position":' + head + b"," + envelope[1:]


@dataclass(frozen=True, slots=True)
class Entry:
    """One event ready to send: where it lies, and its SSE ``data:`` line(s)."""

    partition: int
    offset: int
    event_type: str
    data: bytes  # b"data: {...}\n\n"


def to_entry(event: RecordedEvent) -> Entry:
    return Entry(
        event.position.partition,
        event.position.offset,
        event.event_type,
        b"data: " + encode_event(event) + b"\n\n",
    )


class Tail:
    """The recent events of one aggregate type, in the order Kafka delivered them."""

    def __init__(
        self, gateway: Gateway, aggregate_type: str, max_events: int, max_bytes: int
    ) -> None:
        self.gateway = gateway
        self.aggregate_type = aggregate_type
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.entries: deque[Entry] = deque()
        self.base_seq = 0  # sequence number of entries[0]
        self.bytes = 0
        self.floor: dict[int, int] = {}  # per partition: every event from here is held
        self.head: dict[int, int] = {}  # per partition: next offset after the newest
        self.failed: BaseException | None = None
        self.users = 0
        self._changed = asyncio.Event()
        self._pending: list[Entry] = []
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def next_seq(self) -> int:
        return self.base_seq + len(self.entries)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.floor = await self.gateway.end_offsets(self.aggregate_type)
        self.head = dict(self.floor)
        self._thread = threading.Thread(
            target=self._follow, name=f"kes-serve-tail-{self.aggregate_type}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _follow(self) -> None:
        assert self._loop is not None
        try:
            for event in self.gateway.follow(self.aggregate_type, self.floor, self._stop):
                entry = to_entry(event)
                with self._pending_lock:
                    first = not self._pending
                    self._pending.append(entry)
                if first:  # one wake-up per burst: the loop takes all that is pending
                    self._loop.call_soon_threadsafe(self._flush)
        except BaseException as exc:  # Kafka went away: tell the subscribers, then end
            if not self._stop.is_set():
                log.error("following %s failed: %s", self.aggregate_type, exc)
                self._loop.call_soon_threadsafe(self._fail, exc)

    def _fail(self, exc: BaseException) -> None:
        self.failed = exc
        self._notify()

    def _flush(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
        for entry in batch:
            self.entries.append(entry)
            self.bytes += len(entry.data)
            self.head[entry.partition] = entry.offset + 1
        while self.entries and (len(self.entries) > self.max_events or self.bytes > self.max_bytes):
            old = self.entries.popleft()
            self.base_seq += 1
            self.bytes -= len(old.data)
            self.floor[old.partition] = old.offset + 1
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def covers(self, positions: Mapping[int, int]) -> bool:
        """Whether the ring holds every event at or after ``positions``."""
        return all(positions.get(p, 0) >= floor for p, floor in self.floor.items())

    def start_seq(self, positions: Mapping[int, int]) -> int:
        """The first sequence number a subscriber at ``positions`` still needs."""
        if all(positions.get(p, 0) >= head for p, head in self.head.items()):
            return self.next_seq
        for i, entry in enumerate(self.entries):
            if entry.offset >= positions.get(entry.partition, 0):
                return self.base_seq + i
        return self.next_seq

    def read(self, seq: int, max_bytes: int) -> list[Entry]:
        """Entries from ``seq`` on, up to about ``max_bytes``; ``seq`` must be held."""
        out: list[Entry] = []
        size = 0
        start = seq - self.base_seq
        for i in range(start, len(self.entries)):
            entry = self.entries[i]
            out.append(entry)
            size += len(entry.data)
            if size >= max_bytes:
                break
        return out

    async def wait(self, seq: int, timeout: float) -> bool:
        """Wait until something past ``seq`` arrives (True) or ``timeout`` passes."""
        if seq < self.next_seq or self.failed is not None:
            return True
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Tails:
    """One :class:`Tail` per followed aggregate type, started by its first subscriber and
    stopped ``linger_s`` after its last one left."""

    def __init__(
        self, gateway: Gateway, max_events: int, max_bytes: int, linger_s: float = 30.0
    ) -> None:
        self.gateway = gateway
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.linger_s = linger_s
        self._tails: dict[str, Tail] = {}
        self._starting: dict[str, asyncio.Future[Tail]] = {}

    async def acquire(self, aggregate_type: str) -> Tail:
        tail = self._tails.get(aggregate_type)
        if tail is None or tail.failed is not None:
            starting = self._starting.get(aggregate_type)
            if starting is None:
                starting = asyncio.get_running_loop().create_future()
                self._starting[aggregate_type] = starting
                try:
                    tail = Tail(self.gateway, aggregate_type, self.max_events, self.max_bytes)
                    await tail.start()
                    self._tails[aggregate_type] = tail
                    starting.set_result(tail)
                except BaseException as exc:
                    starting.set_exception(exc)
                    starting.exception()  # retrieved: no "never retrieved" warning
                    raise
                finally:
                    del self._starting[aggregate_type]
            else:
                tail = await asyncio.shield(starting)
        tail.users += 1
        return tail

    def release(self, tail: Tail) -> None:
        tail.users -= 1
        if tail.users == 0:
            asyncio.get_running_loop().call_later(self.linger_s, self._maybe_stop, tail)

    def _maybe_stop(self, tail: Tail) -> None:
        if tail.users == 0 and self._tails.get(tail.aggregate_type) is tail:
            del self._tails[tail.aggregate_type]
            tail.stop()

    def stats(self) -> dict[str, tuple[int, int, int]]:
        """Per type: (subscribers, events held, bytes held)."""
        return {t: (x.users, len(x.entries), x.bytes) for t, x in self._tails.items()}

    def close(self) -> None:
        for tail in self._tails.values():
            tail.stop()
        self._tails.clear()
