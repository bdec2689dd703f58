"""kes event topics as Quix Streams sources: the envelope decoded, upcast and timed.

A record of an aggregate topic becomes a :class:`StreamEvent` (a plain dict, so
Quix's column access, ``group_by`` and JSON state work on it) whose payload has
been brought up to the aggregate class's current schema version, exactly as the
store does when it loads an aggregate, after its personal fields were decrypted (their
placeholders once the subject is forgotten). Its Quix timestamp is the envelope's
``timestamp`` (event time), not the time Kafka appended the record.

A record that cannot be decoded never raises inside the consumer: it becomes a
:class:`BadRecord` carrying the reason and the raw bytes, which the pipeline
parks in its dead-letter topic inside the same Kafka transaction. So does an event
whose time the cluster would refuse as a record timestamp (:class:`TimeBounds`): a
pipeline stamps what it writes (repartitions, outputs) with event time, and one such
record would otherwise abort every transaction that carries it, run after run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypedDict

import msgspec
from quixstreams.models import Deserializer, SerializationContext, Serializer

from kes.domain import Aggregate
from kes.envelope import decode
from kes.errors import KesError, StoreUnavailableError
from kes.shredding.errors import (
    DataKeyUnavailableError,
    KeyEncryptionKeyError,
    PersonalDataError,
)

if TYPE_CHECKING:
    from kes.shredding.keyring import KeyRing

# A key problem is the deployment's, not the record's: it stops the pipeline, never parks.
_KEY_PROBLEMS = (KeyEncryptionKeyError, DataKeyUnavailableError, StoreUnavailableError)


class StreamEvent(TypedDict):
    """One event as a pipeline sees it: the envelope, with an upcast payload."""

    eventId: str
    eventType: str
    aggregateType: str
    aggregateId: str
    version: int
    schemaVersion: int  # the version of ``payload`` after upcasting
    timestamp: str  # ISO 8601, UTC
    timestampMs: int  # the same instant in epoch milliseconds (the Quix timestamp)
    payload: dict[str, Any]
    metadata: dict[str, str]


@dataclass(frozen=True)
class BadRecord:
    """A source record that is not a readable kes event, and why."""

    reason: str
    error_type: str
    value: bytes | None


_UNBOUNDED = 9_223_372_036_854_775_807  # Long.MAX_VALUE: Kafka's "no bound"
_MARGIN_MS = 60_000  # checked when read, written within a checkpoint: a minute to spare


@dataclass(frozen=True)
class TimeBounds:
    """The record timestamps a topic accepts, relative to the brokers' clock: at most
    ``ahead_ms`` ahead and ``behind_ms`` behind (None: no bound), from its
    ``message.timestamp.after.max.ms`` / ``message.timestamp.before.max.ms`` (which
    default to the brokers' ``log.message.timestamp.*``; 1 h ahead, none behind)."""

    ahead_ms: int | None = None
    behind_ms: int | None = None

    @classmethod
    def of_topic(cls, configs: Mapping[str, str]) -> TimeBounds:
        if configs.get("message.timestamp.type", "CreateTime") != "CreateTime":
            return cls()  # LogAppendTime: the broker stamps records itself

        def bound(name: str) -> int | None:
            value = int(configs.get(name, _UNBOUNDED))
            return None if value >= _UNBOUNDED else value

        return cls(
            bound("message.timestamp.after.max.ms"), bound("message.timestamp.before.max.ms")
        )

    def tighter(self, other: TimeBounds) -> TimeBounds:
        def least(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        return TimeBounds(
            least(self.ahead_ms, other.ahead_ms), least(self.behind_ms, other.behind_ms)
        )

    def problem(self, event_ms: int, now_ms: int | None = None) -> str | None:
        """Why a record stamped ``event_ms`` would be refused now; None when it would not."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        when = datetime.fromtimestamp(event_ms / 1000, UTC).isoformat()
        if self.ahead_ms is not None and event_ms > now_ms + self.ahead_ms - _MARGIN_MS:
            return (
                f"its event time {when} is {_span(event_ms - now_ms)} ahead of this "
                f"machine's clock, and the cluster refuses record timestamps more than "
                f"{_span(self.ahead_ms)} ahead (message.timestamp.after.max.ms = "
                f"{self.ahead_ms}): what the pipeline writes from it, stamped with its event "
                "time, would abort every transaction carrying it. Correct the clock of "
                "the application that wrote it"
            )
        if self.behind_ms is not None and event_ms < now_ms - self.behind_ms + _MARGIN_MS:
            return (
                f"its event time {when} is {_span(now_ms - event_ms)} behind this machine's "
                f"clock, and the cluster refuses record timestamps more than "
                f"{_span(self.behind_ms)} old (message.timestamp.before.max.ms = "
                f"{self.behind_ms}): what the pipeline writes from it, stamped with its "
                "event time, would abort every transaction carrying it. Raise that setting "
                "on the pipeline's topics to process old events"
            )
        return None


def _span(ms: int) -> str:
    seconds = ms / 1000
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


class EventDeserializer(Deserializer):
    """Record value -> :class:`StreamEvent`, or :class:`BadRecord` when it cannot be read.

    ``aggregates`` are the classes whose upcasters apply, by aggregate type; events of
    other types pass with their payload as written. ``keys`` decrypts personal fields.
    ``bounds``: event times the cluster accepts as record timestamps; an event outside
    them is a :class:`BadRecord` too.
    """

    def __init__(
        self,
        aggregates: Iterable[type[Aggregate]] = (),
        keys: KeyRing | None = None,
        bounds: TimeBounds | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._classes: Mapping[str, type[Aggregate]] = {a.aggregate_type: a for a in aggregates}
        self._keys = keys
        self.bounds = bounds or TimeBounds()

    def __call__(self, value: bytes | None, ctx: SerializationContext) -> StreamEvent | BadRecord:
        if value is None:
            return BadRecord("the record has no value (a tombstone)", "MissingValue", None)
        try:
            env = decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return BadRecord(f"not a kes event envelope: {exc}", type(exc).__name__, value)
        if env.personal:
            if self._keys is None:
                raise KeyEncryptionKeyError(
                    f"event {env.event_id} ({env.event_type}) has personal fields and the "
                    "pipeline has no key ring; set KES_KEK_FILE."
                )
            try:
                env = self._keys.reveal(env)
            except _KEY_PROBLEMS:
                raise
            except PersonalDataError as exc:
                return BadRecord(str(exc), type(exc).__name__, value)
        payload, schema_version = env.payload, env.schema_version
        cls = self._classes.get(env.aggregate_type)
        if cls is not None:
            try:
                payload, schema_version = cls.upcast(env.event_type, schema_version, payload)
            except KesError as exc:
                return BadRecord(str(exc), type(exc).__name__, value)
        ts = env.timestamp
        ms = int(ts.timestamp() * 1000)
        refused = self.bounds.problem(ms)
        if refused is not None:
            return BadRecord(
                f"event {env.event_id} ({env.event_type}): {refused}",
                "EventTimeOutOfRange",
                value,
            )
        return StreamEvent(
            eventId=env.event_id,
            eventType=env.event_type,
            aggregateType=env.aggregate_type,
            aggregateId=env.aggregate_id,
            version=env.version,
            schemaVersion=schema_version,
            timestamp=ts.isoformat(),
            timestampMs=ms,
            payload=payload,
            metadata=env.metadata,
        )


def event_time(value: Any, headers: Any, timestamp: int, timestamp_type: int) -> int:
    """Quix timestamp extractor: the envelope's time; Kafka's for a bad record."""
    if isinstance(value, dict):
        return int(value["timestampMs"])
    return timestamp


class KeyDeserializer(Deserializer):
    """Record key -> str; bytes that are not UTF-8 survive (surrogate escapes) instead of
    stopping the consumer, and :class:`KeySerializer` writes them back unchanged."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def __call__(self, value: bytes | None, ctx: SerializationContext) -> str | None:
        return None if value is None else value.decode("utf-8", "surrogateescape")


class KeySerializer(Serializer):
    def __call__(self, value: Any, ctx: SerializationContext | None = None) -> bytes:
        if value is None:
            return None  # type: ignore[return-value]  # a record without a key
        if isinstance(value, bytes):
            return value
        return str(value).encode("utf-8", "surrogateescape")


class RawSerializer(Serializer):
    """Bytes as they are (a parked record's original value)."""

    def __call__(self, value: Any, ctx: SerializationContext) -> bytes:
        if value is None:
            return None  # type: ignore[return-value]  # a record without a value
        return value if isinstance(value, bytes) else bytes(value)


class JsonSerializer(Serializer):
    """Values -> JSON with msgspec (datetimes, Decimals and msgspec Structs included)."""

    _encoder = msgspec.json.Encoder(decimal_format="string")

    def __call__(self, value: Any, ctx: SerializationContext) -> bytes:
        return self._encoder.encode(value)
