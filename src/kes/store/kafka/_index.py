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
from typing import TypeAlias

import msgspec

log = logging.getLogger("kes.index")

_FORMAT = 2


class _Saved(msgspec.Struct):
    """On disk: the ids in one list, their event counts and all offsets in two arrays."""

    format: int
    topic: str
    partition: int
    next_offset: int
    ids: list[str]
    counts: bytes  # array('q'): events per id
    offsets: bytes  # array('q'): every id's offsets, one id after the other
    topic_id: str = ""


# A stream of one event (the most common case) is stored as its bare offset: an int
# takes a fraction of an array's memory. Longer streams hold an array('q') of offsets.
_Offsets: TypeAlias = "int | array[int]"


def _as_list(entry: _Offsets) -> list[int]:
    return [entry] if isinstance(entry, int) else entry.tolist()


class PartitionIndex:
    """Versions and event offsets of every aggregate in one partition."""

    def __init__(self, topic: str, partition: int, topic_id: str = "") -> None:
        self.topic = topic
        self.topic_id = topic_id
        self.partition = partition
        self.next_offset = 0
        self._lock = threading.Lock()
        self._streams: dict[str, _Offsets] = {}
        self.events_since_save = 0

    def __len__(self) -> int:
        return len(self._streams)

    def version(self, aggregate_id: str) -> int:
        """The aggregate's current version (0: no events). A dict read: safe without the
        lock, and the one lookup on the append path."""
        entry = self._streams.get(aggregate_id)
        if entry is None:
            return 0
        return 1 if isinstance(entry, int) else len(entry)

    def lookup(
        self, aggregate_id: str, from_version: int, to_version: int | None
    ) -> tuple[int, list[int]]:
        """(current version, offsets of versions ``from_version..to_version``), together."""
        with self._lock:
            entry = self._streams.get(aggregate_id)
            if entry is None:
                return 0, []
            offsets = _as_list(entry)
        end = len(offsets) if to_version is None else min(to_version, len(offsets))
        return len(offsets), offsets[from_version - 1 : end]

    def offsets(self, aggregate_id: str, from_version: int, to_version: int | None) -> list[int]:
        return self.lookup(aggregate_id, from_version, to_version)[1]

    def record(self, aggregate_id: str, version: int, offset: int) -> None:
        """Add one event read from or written to the log."""
        with self._lock:
            self._record(aggregate_id, version, offset)

    def record_many(self, events: list[tuple[str, int, int]]) -> None:
        """Add ``(aggregate id, version, offset)`` events in log order, under one lock."""
        with self._lock:
            for aggregate_id, version, offset in events:
                self._record(aggregate_id, version, offset)

    def _record(self, aggregate_id: str, version: int, offset: int) -> None:
        entry = self._streams.get(aggregate_id)
        have = 0 if entry is None else (1 if isinstance(entry, int) else len(entry))
        if version == have + 1:
            if entry is None:
                self._streams[aggregate_id] = offset
            elif isinstance(entry, int):
                self._streams[aggregate_id] = array("q", (entry, offset))
            else:
                entry.append(offset)
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
            filled = array("q", [] if entry is None else _as_list(entry))
            filled.extend([offset] * (version - have))
            self._streams[aggregate_id] = filled
        # version <= have: already indexed (a re-read after restart); nothing to do.
        if offset >= self.next_offset:
            self.next_offset = offset + 1

    def advance(self, next_offset: int) -> None:
        """The log was read up to ``next_offset`` (markers and foreign records included)."""
        with self._lock:
            if next_offset > self.next_offset:
                self.next_offset = next_offset

    # ---- persistence ----------------------------------------------------------

    def save(self, path: Path) -> None:
        ids: list[str] = []
        counts = array("q")
        offsets = array("q")
        with self._lock:
            for key, entry in self._streams.items():
                ids.append(key)
                if isinstance(entry, int):
                    counts.append(1)
                    offsets.append(entry)
                else:
                    counts.append(len(entry))
                    offsets.extend(entry)
            saved = _Saved(
                _FORMAT,
                self.topic,
                self.partition,
                self.next_offset,
                ids,
                counts.tobytes(),
                offsets.tobytes(),
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
        counts = array("q")
        counts.frombytes(saved.counts)
        offsets = array("q")
        offsets.frombytes(saved.offsets)
        if len(counts) != len(saved.ids) or sum(counts) != len(offsets):
            log.warning("ignoring inconsistent index %s; rebuilding from the log", path)
            return index
        streams = index._streams
        at = 0
        for key, n in zip(saved.ids, counts, strict=True):
            streams[key] = offsets[at] if n == 1 else offsets[at : at + n]
            at += n
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
