"""The writer's version index: aggregate id -> offsets of its events in one partition.

It is a cache of the log. ``version == len(offsets)`` because versions are gapless
from 1. It is persisted with the offset it covers up to (``next_offset``), so that a
restart reads only what was written since; it can always be rebuilt from offset 0.
"""

from __future__ import annotations

import logging
import os
import threading
from array import array
from collections import OrderedDict
from pathlib import Path

import msgspec

log = logging.getLogger("kes.index")

_FORMAT = 1


class _Saved(msgspec.Struct):
    format: int
    topic: str
    partition: int
    next_offset: int
    streams: dict[str, bytes]
    topic_id: str = ""


class PartitionIndex:
    """Versions and event offsets of every aggregate in one partition."""

    def __init__(self, topic: str, partition: int, topic_id: str = "") -> None:
        self.topic = topic
        self.topic_id = topic_id
        self.partition = partition
        self.next_offset = 0
        self.lock = threading.Lock()
        self._streams: dict[str, array[int]] = {}
        self.events_since_save = 0

    def __len__(self) -> int:
        return len(self._streams)

    def version(self, aggregate_id: str) -> int:
        offsets = self._streams.get(aggregate_id)
        return 0 if offsets is None else len(offsets)

    def offsets(self, aggregate_id: str, from_version: int, to_version: int | None) -> list[int]:
        with self.lock:
            offsets = self._streams.get(aggregate_id)
            if offsets is None:
                return []
            end = len(offsets) if to_version is None else min(to_version, len(offsets))
            return offsets[from_version - 1 : end].tolist()

    def record(self, aggregate_id: str, version: int, offset: int) -> None:
        """Add one event read from or written to the log (caller holds ``lock``)."""
        offsets = self._streams.get(aggregate_id)
        if offsets is None:
            offsets = self._streams[aggregate_id] = array("q")
        have = len(offsets)
        if version == have + 1:
            offsets.append(offset)
            self.events_since_save += 1
        elif version > have + 1:
            # Only a writer outside kes can leave a gap; keep the log's order and say so.
            log.warning(
                "%s[%d]: %r jumps from version %d to %d at offset %d (written outside kes?)",
                self.topic,
                self.partition,
                aggregate_id,
                have,
                version,
                offset,
            )
            offsets.extend([offset] * (version - have))
        # version <= have: already indexed (a re-read after restart); nothing to do.
        if offset >= self.next_offset:
            self.next_offset = offset + 1

    def advance(self, next_offset: int) -> None:
        if next_offset > self.next_offset:
            self.next_offset = next_offset

    # ---- persistence ----------------------------------------------------------

    def save(self, path: Path) -> None:
        with self.lock:
            saved = _Saved(
                _FORMAT,
                self.topic,
                self.partition,
                self.next_offset,
                {k: v.tobytes() for k, v in self._streams.items()},
                self.topic_id,
            )
            self.events_since_save = 0
        data = msgspec.msgpack.encode(saved)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, topic: str, partition: int, topic_id: str = "") -> PartitionIndex:
        """The saved index, or an empty one when missing, unreadable or for another topic
        (another name, or the same name re-created: another topic id)."""
        index = cls(topic, partition, topic_id)
        if not path.exists():
            return index
        try:
            saved = msgspec.msgpack.decode(path.read_bytes(), type=_Saved)
        except (msgspec.DecodeError, msgspec.ValidationError, OSError) as exc:
            log.warning("ignoring unreadable index %s (%s); rebuilding from the log", path, exc)
            return index
        if saved.format != _FORMAT or saved.topic != topic or saved.partition != partition:
            return index
        if topic_id and saved.topic_id and saved.topic_id != topic_id:
            log.warning("%s was saved for an earlier topic %s; rebuilding", path, topic)
            return index
        for key, raw in saved.streams.items():
            offsets = array("q")
            offsets.frombytes(raw)
            index._streams[key] = offsets
        index.next_offset = saved.next_offset
        return index


def index_path(index_dir: str, topic: str, partition: int) -> Path:
    return Path(index_dir) / topic / f"{partition}.idx"


class RecentIds:
    """The ids of a partition's latest events: event id -> (aggregate id, version, offset).

    Makes a repeated append (a caller's retry, or a forwarded request delivered again
    after its owner died) a no-op even with ``expected_version=ANY``. It is filled by the
    catch-up read, so it also knows what the previous owner wrote last.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, tuple[str, int, int]] = OrderedDict()

    def add(self, event_id: str, aggregate_id: str, version: int, offset: int) -> None:
        self._ids[event_id] = (aggregate_id, version, offset)
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def get(self, event_id: str) -> tuple[str, int, int] | None:
        return self._ids.get(event_id)
