"""Snapshots: an aggregate's state at a version, so loading replays only later events.

State is ``vars(aggregate)`` turned into JSON values by msgspec. Attributes whose type
is not a JSON type (UUID, datetime, Decimal, set, tuple, int-keyed dicts, Structs)
restore faithfully only when annotated on the aggregate class (``balance: Decimal``);
unannotated attributes come back as their JSON form. Bump the class attribute
``snapshot_version`` when the state's shape changes: older snapshots are then ignored.

The state of an aggregate that holds personal data is stored *sealed* (encrypted, see
``kes.shredding``): it can be read only while every one of its data subjects has a key,
so forgetting any of them makes the snapshot unreadable and it is removed.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, ClassVar, TypeVar, get_origin, get_type_hints

import msgspec

from kes.domain import Aggregate
from kes.envelope import Position
from kes.errors import InvalidInputError, SerializationError

__all__ = [
    "KeyShare",
    "MemorySnapshotStore",
    "SealedState",
    "Snapshot",
    "SnapshotStore",
    "restore",
    "take_snapshot",
]

A = TypeVar("A", bound=Aggregate)


class KeyShare(msgspec.Struct, frozen=True, rename="camel"):
    """One subject's share of a sealed snapshot's key, encrypted with its data key."""

    subject: str
    key_id: str
    data: bytes


class SealedState(msgspec.Struct, frozen=True):
    """A snapshot state encrypted with a key split into one share per data subject
    (XOR): every subject's data key is needed to read it."""

    shares: list[KeyShare]
    data: bytes


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """An aggregate's state after ``version`` events.

    ``timestamp`` is the latest event timestamp among those events, so a snapshot can
    serve a load "as of time t" only when ``timestamp <= t``. ``sealed`` holds the state
    of an aggregate with personal data, encrypted (``state`` is then empty until opened).
    """

    aggregate_type: str
    aggregate_id: str
    version: int
    state: dict[str, Any]
    class_version: int = 1
    timestamp: datetime | None = None
    position: Position | None = None  # where the last event it covers lies in Kafka
    sealed: SealedState | msgspec.UnsetType = msgspec.UNSET

    @property
    def subjects(self) -> list[str]:
        """The data subjects whose keys a sealed snapshot needs."""
        return [s.subject for s in self.sealed.shares] if self.sealed else []


class SnapshotStore(ABC):
    """Keeps the latest snapshot per aggregate (a compacted topic keyed by id on Kafka)."""

    @abstractmethod
    def get(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        """The latest snapshot, or None."""

    @abstractmethod
    def put(self, snapshot: Snapshot) -> None:
        """Store ``snapshot``, replacing an older one of the same aggregate."""

    @abstractmethod
    def delete(self, aggregate_type: str, aggregate_id: str) -> None:
        """Forget the aggregate's snapshot (a tombstone on Kafka)."""

    def delete_holding(self, subject: str) -> int:
        """Delete every snapshot sealed with ``subject``'s key; returns how many.

        A store that cannot find them returns 0: such a snapshot cannot be opened once
        the subject is forgotten, and the repository deletes it when it meets it.
        """
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads (nothing to release by default)."""


class MemorySnapshotStore(SnapshotStore):
    """Holds encoded snapshots in a dict: what is read back went through JSON, as on Kafka."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], bytes] = {}
        self.puts = 0

    def get(self, aggregate_type: str, aggregate_id: str) -> Snapshot | None:
        with self._lock:
            raw = self._data.get((aggregate_type, aggregate_id))
        return None if raw is None else _decoder.decode(raw)

    def put(self, snapshot: Snapshot) -> None:
        raw = _encoder.encode(snapshot)
        key = (snapshot.aggregate_type, snapshot.aggregate_id)
        with self._lock:
            old = self._data.get(key)
            if old is None or _decoder.decode(old).version <= snapshot.version:
                self._data[key] = raw
                self.puts += 1

    def delete(self, aggregate_type: str, aggregate_id: str) -> None:
        with self._lock:
            self._data.pop((aggregate_type, aggregate_id), None)

    def delete_holding(self, subject: str) -> int:
        with self._lock:
            keys = [k for k, raw in self._data.items() if subject in _decoder.decode(raw).subjects]
            for key in keys:
                del self._data[key]
        return len(keys)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Snapshot)


def take_snapshot(aggregate: Aggregate, position: Position | None = None) -> Snapshot:
    """Snapshot an aggregate's saved state (``position``: its last event's place in Kafka).

    Raises InvalidInputError if events are still pending.
    """
    if aggregate.pending_events:
        raise InvalidInputError(
            f"{type(aggregate).__name__} {aggregate.id!r} has unsaved events; snapshot an "
            "aggregate only after its pending events are saved."
        )
    cls = type(aggregate)
    try:
        state = msgspec.to_builtins(vars(aggregate), str_keys=True)
    except TypeError as exc:
        raise SerializationError(
            f"{cls.__name__} {aggregate.id!r} state cannot be snapshotted: {exc}. Keep state "
            "in JSON values, UUID, datetime, Decimal, sets, tuples or msgspec Structs."
        ) from exc
    return Snapshot(
        aggregate_type=cls.aggregate_type,
        aggregate_id=aggregate.id,
        version=aggregate.version,
        state=state,
        class_version=cls.snapshot_version,
        timestamp=aggregate._kes_timestamp,
        position=position,
    )


def restore(cls: type[A], snapshot: Snapshot) -> A | None:
    """The aggregate a snapshot holds, or None if it was taken for another class version."""
    if snapshot.class_version != cls.snapshot_version:
        return None
    if snapshot.sealed and not snapshot.state:
        raise InvalidInputError(
            f"the snapshot of {snapshot.aggregate_type} {snapshot.aggregate_id!r} is sealed "
            "(it holds personal data); open it with the key ring first (KeyRing.open_snapshot)."
        )
    types = _state_types(cls)
    state: dict[str, Any] = {}
    for key, value in snapshot.state.items():
        hint = types.get(key)
        state[key] = value if hint is None else msgspec.convert(value, hint, str_keys=True)
    return cls._kes_restore(
        snapshot.aggregate_id, snapshot.version, state, snapshot.timestamp, snapshot.subjects
    )


_hints: dict[type[Aggregate], dict[str, Any]] = {}


def _state_types(cls: type[Aggregate]) -> dict[str, Any]:
    """Annotated instance attributes of an aggregate class (ClassVars excluded), cached."""
    found = _hints.get(cls)
    if found is None:
        hints = get_type_hints(cls)
        base = get_type_hints(Aggregate)
        found = {
            k: v
            for k, v in hints.items()
            if k not in base and get_origin(v) is not ClassVar and v is not ClassVar
        }
        _hints[cls] = found
    return found
