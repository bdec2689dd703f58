"""A schema registry kept in a compacted, single-partition Kafka topic.

Topic
    ``_kes_schemas`` by default (as Confluent Schema Registry keeps ``_schemas``):
    one partition, ``cleanup.policy=compact``. Records use Confluent's layout:

    * key ``{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}``, value
      ``{"subject":S,"version":V,"id":ID,"schemaType":"JSON","schema":"<text>","deleted":false}``
    * key ``{"keytype":"CONFIG","subject":S|null,"magic":0}``, value
      ``{"compatibilityLevel":"BACKWARD"}`` (``subject`` null: the global level)

State
    Held in memory and rebuilt by reading the topic from the beginning on first use;
    every read call first catches up with the topic's end (one watermark query), so a
    registry sees what other processes registered. Restarting loses nothing.

Writers
    Writes go through a transactional producer whose ``transactional.id`` is fixed per
    topic: the last process to write fences the earlier ones, and a fenced writer
    re-reads the topic and decides again. So versions and ids are never handed out
    twice, even with several registries on one topic (Confluent SR elects a leader for
    the same purpose).

Subjects are ``<AggregateType>-<EventType>``; ids are global and, as in Confluent SR,
the same schema text (canonical JSON) gets the same id under every subject.
Registering a schema the subject already holds returns that version (idempotent).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import KafkaException, Message

from kes.domain import Aggregate
from kes.errors import StoreUnavailableError, TopicConfigError
from kes.kafka.config import KafkaConfig
from kes.kafka.errors import Failure, classify
from kes.kafka.produce import TransactionalProducer
from kes.kafka.table import CompactedTopic
from kes.kafka.topics import SCHEMAS, Topics
from kes.schemas.compatibility import BreakingChange, Mode, check_compatibility, json_differences
from kes.schemas.compatibility import avro_differences as _avro_self_check
from kes.schemas.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    VersionNotFoundError,
)
from kes.schemas.generate import aggregate_schemas, canonical

__all__ = ["DEFAULT_TOPIC", "RegisteredSchema", "SchemaRegistry", "parse_schema"]

log = logging.getLogger("kes.schemas")

DEFAULT_TOPIC = "_kes_schemas"  # KafkaConfig().schema_topic(): the default namespace's
SCHEMA_TYPES = ("JSON", "AVRO", "PROTOBUF")

T = TypeVar("T")
Records = list[tuple[dict[str, Any], dict[str, Any] | None]]
Decide = Callable[[], tuple[Records, T]]


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """One version of a subject."""

    subject: str
    version: int
    id: int
    schema: str
    schema_type: str = "JSON"

    @property
    def parsed(self) -> Any:
        return json.loads(self.schema)

    def to_json(self) -> dict[str, Any]:
        """The Confluent REST representation."""
        out: dict[str, Any] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.id,
            "schema": self.schema,
        }
        if self.schema_type != "AVRO":
            out["schemaType"] = self.schema_type
        return out


def parse_schema(schema: str | dict[str, Any] | list[Any] | bool, schema_type: str) -> Any:
    """Parse and check a schema document; raises InvalidSchemaError naming the problem."""
    kind = schema_type.upper()
    if kind not in SCHEMA_TYPES:
        raise InvalidSchemaError(
            f"unknown schemaType {schema_type!r}; use JSON (default in kes), AVRO or PROTOBUF."
        )
    if kind == "PROTOBUF":
        if not isinstance(schema, str) or ("syntax" not in schema and "message" not in schema):
            raise InvalidSchemaError("a PROTOBUF schema must be .proto text with a message.")
        return schema
    if isinstance(schema, str):
        try:
            parsed: Any = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise InvalidSchemaError(
                f"the {kind} schema is not valid JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno}."
            ) from None
    else:
        parsed = schema
    if kind == "JSON":
        if not isinstance(parsed, dict | bool):
            raise InvalidSchemaError(
                f"a JSON Schema must be an object or a boolean, got {type(parsed).__name__}."
            )
        json_differences(parsed, parsed)  # walks every reachable node: bad types, refs
        _compile_json(parsed)
    else:
        if not isinstance(parsed, dict | list | str):
            raise InvalidSchemaError(f"an Avro schema must be an object, array or name: {parsed}")
        _avro_self_check(parsed, parsed)
    return parsed


def _compile_json(schema: Any) -> None:
    import fastjsonschema

    try:
        fastjsonschema.compile(schema)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise InvalidSchemaError(f"the JSON Schema is invalid: {exc}.") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidSchemaError(f"the JSON Schema is invalid: {exc!r}.") from None


def _canonical_text(parsed: Any, schema_type: str) -> str:
    return parsed if schema_type == "PROTOBUF" else canonical(parsed)


class SchemaRegistry:
    """Subjects, versions, global ids and compatibility levels in a Kafka topic.

    Connects lazily. Thread-safe. Close it to stop its Kafka clients.
    """

    def __init__(
        self,
        config: KafkaConfig,
        topic: str | None = None,
        default_compatibility: Mode | str = Mode.BACKWARD,
    ) -> None:
        self.config = config
        self.topic = topic or config.schema_topic()
        self.default_compatibility = Mode.parse(default_compatibility)
        self._lock = threading.RLock()
        self._log: CompactedTopic | None = None
        self._producer: TransactionalProducer | None = None
        self._closed = False
        # state
        self._by_id: dict[int, tuple[str, str, str]] = {}  # id -> (type, text, canonical)
        self._ids: dict[tuple[str, str], int] = {}  # (type, canonical) -> id
        self._subjects: dict[str, dict[int, int]] = {}  # subject -> version -> id
        self._config: dict[str | None, Mode] = {}

    # ---- reads -----------------------------------------------------------------------

    def subjects(self) -> list[str]:
        with self._fresh():
            return sorted(s for s, versions in self._subjects.items() if versions)

    def versions(self, subject: str) -> list[int]:
        with self._fresh():
            return sorted(self._versions(subject))

    def get(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
        """A version of ``subject`` (``"latest"``, or ``-1``, for the newest)."""
        with self._fresh():
            return self._get(subject, version)

    def by_id(self, schema_id: int) -> tuple[str, str]:
        """``(schema_type, schema text)`` of a global id."""
        with self._fresh():
            found = self._by_id.get(schema_id)
            if found is None:
                raise SchemaNotFoundError(
                    f"no schema has id {schema_id}; ids run 1..{max(self._by_id, default=0)}."
                )
            return found[0], found[1]

    def subjects_of(self, schema_id: int) -> list[str]:
        with self._fresh():
            return sorted(s for s, vs in self._subjects.items() if schema_id in vs.values())

    def lookup(
        self, subject: str, schema: str | dict[str, Any] | bool, schema_type: str = "JSON"
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema``; SchemaNotFoundError if none."""
        kind = schema_type.upper()
        parsed = parse_schema(schema, kind)
        with self._fresh():
            versions = self._versions(subject)
            sid = self._ids.get((kind, _canonical_text(parsed, kind)))
            for version, vid in sorted(versions.items()):
                if vid == sid:
                    return self._get(subject, version)
            raise SchemaNotFoundError(
                f"subject {subject!r} holds no version equal to this schema (it has versions "
                f"{sorted(versions)}); register it first."
            )

    def compatibility(self, subject: str | None = None) -> Mode:
        """The subject's level, else the global one, else the default (BACKWARD)."""
        with self._fresh():
            return self._mode(subject)

    def compatibility_override(self, subject: str | None) -> Mode | None:
        """The level set on exactly this subject (or globally for None), if any."""
        with self._fresh():
            return self._config.get(subject)

    def check(
        self,
        subject: str,
        schema: str | dict[str, Any] | bool,
        schema_type: str = "JSON",
        version: int | str | None = None,
    ) -> list[BreakingChange]:
        """The breaking changes registering ``schema`` would bring (empty: compatible).

        With ``version`` it is compared with that version only, in the directions the
        subject's level asks; without it, as :meth:`register` would compare it.
        """
        kind = schema_type.upper()
        parsed = parse_schema(schema, kind)
        with self._fresh():
            mode = self._mode(subject)
            if version is None:
                previous = self._history(subject, kind)
            else:
                if not self._versions(subject):
                    raise SubjectNotFoundError(self._no_subject(subject))
                got = self._get(subject, version)
                previous = [(got.version, parse_schema(got.schema, got.schema_type))]
                if mode.transitive:
                    mode = Mode(mode.value.removesuffix("_TRANSITIVE"))
            return check_compatibility(mode, parsed, previous, kind)

    # ---- writes ----------------------------------------------------------------------

    def register(
        self, subject: str, schema: str | dict[str, Any] | bool, schema_type: str = "JSON"
    ) -> RegisteredSchema:
        """Register ``schema`` under ``subject``; returns its version and global id.

        Idempotent: a schema the subject already holds returns that version. Raises
        InvalidSchemaError for a malformed document and IncompatibleSchemaError (listing
        each breaking change) when the subject's compatibility level forbids it; nothing
        is written then.
        """
        _check_subject(subject)
        kind = schema_type.upper()
        parsed = parse_schema(schema, kind)
        text = schema if isinstance(schema, str) else json.dumps(schema)
        canon = _canonical_text(parsed, kind)

        def decide() -> tuple[Records, RegisteredSchema]:
            versions = self._versions(subject)
            sid = self._ids.get((kind, canon))
            for version, vid in sorted(versions.items()):
                if vid == sid:
                    return [], self._get(subject, version)
            mode = self._mode(subject)
            breaking = check_compatibility(mode, parsed, self._history(subject, kind), kind)
            if breaking:
                latest = max(versions)
                lines = "\n  ".join(str(b) for b in breaking)
                raise IncompatibleSchemaError(
                    f"Schema being registered is incompatible with an earlier schema for "
                    f"subject {subject!r} (compatibility {mode.value}, latest version "
                    f"{latest}); {len(breaking)} breaking change(s):\n  {lines}\nNothing was "
                    "registered. Make the change compatible (e.g. add fields as optional, "
                    "keep removed ones), register it as a new event type or schema version "
                    "with an upcaster, or change the subject's compatibility level.",
                    breaking,
                )
            new_id = sid if sid is not None else max(self._by_id, default=0) + 1
            if sid is None and self._by_id.get(new_id) is not None:
                raise AssertionError("id clash")
            version = max(versions, default=0) + 1
            key = {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}
            value = {
                "subject": subject,
                "version": version,
                "id": new_id,
                "schemaType": kind,
                "schema": text,
                "deleted": False,
            }
            return [(key, value)], RegisteredSchema(subject, version, new_id, text, kind)

        return self._mutate(decide)

    def register_aggregate(
        self, cls: type[Aggregate], closed: bool = True
    ) -> dict[str, RegisteredSchema]:
        """Register the JSON Schema of every event type of ``cls`` (subject -> result)."""
        return {
            subject: self.register(subject, schema)
            for subject, (_, schema) in aggregate_schemas(cls, closed).items()
        }

    def set_compatibility(self, mode: Mode | str, subject: str | None = None) -> Mode:
        """Set the level of ``subject`` (or the global one for None)."""
        level = Mode.parse(mode)
        if subject is not None:
            _check_subject(subject)
        key = {"keytype": "CONFIG", "subject": subject, "magic": 0}

        def decide() -> tuple[Records, Mode]:
            return [(key, {"compatibilityLevel": level.value})], level

        return self._mutate(decide)

    def delete_compatibility(self, subject: str | None = None) -> Mode:
        """Forget the level set on ``subject`` (it falls back to the global one)."""
        key = {"keytype": "CONFIG", "subject": subject, "magic": 0}

        def decide() -> tuple[Records, Mode]:
            previous = self._mode(subject)
            return [(key, None)], previous

        return self._mutate(decide)

    # ---- life cycle --------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._producer is not None:
                self._producer.close()
                self._producer = None

    def __enter__(self) -> SchemaRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _fresh(self) -> Iterator[None]:
        with self._lock:
            self._catch_up()
            yield

    def _versions(self, subject: str) -> dict[int, int]:
        return self._subjects.get(subject) or {}

    def _no_subject(self, subject: str) -> str:
        known = sorted(s for s, v in self._subjects.items() if v)
        hint = f" Known subjects: {', '.join(known[:10])}." if known else " None is registered."
        return (
            f"subject {subject!r} not found in {self.topic}; subjects are "
            f"'<AggregateType>-<EventType>'.{hint}"
        )

    def _get(self, subject: str, version: int | str) -> RegisteredSchema:
        versions = self._versions(subject)
        if not versions:
            raise SubjectNotFoundError(self._no_subject(subject))
        v = _parse_version(version)
        if v == -1:
            v = max(versions)
        sid = versions.get(v)
        if sid is None:
            raise VersionNotFoundError(
                f"subject {subject!r} has no version {version}; it has {sorted(versions)}."
            )
        kind, text, _ = self._by_id[sid]
        return RegisteredSchema(subject, v, sid, text, kind)

    def _history(self, subject: str, kind: str) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        for version, sid in sorted(self._versions(subject).items()):
            other_kind, text, _ = self._by_id[sid]
            if other_kind != kind:
                raise InvalidSchemaError(
                    f"subject {subject!r} holds {other_kind} schemas; cannot add {kind}."
                )
            out.append((version, parse_schema(text, other_kind)))
        return out

    def _mode(self, subject: str | None) -> Mode:
        if subject is not None and subject in self._config:
            return self._config[subject]
        return self._config.get(None, self.default_compatibility)

    def _apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            subject, version = str(key["subject"]), int(key["version"])
            versions = self._subjects.setdefault(subject, {})
            if value is None or value.get("deleted"):
                versions.pop(version, None)
                return
            sid = int(value["id"])
            kind = str(value.get("schemaType") or "AVRO").upper()
            text = str(value["schema"])
            try:
                canon = _canonical_text(json.loads(text) if kind != "PROTOBUF" else text, kind)
            except json.JSONDecodeError:
                canon = text
            self._by_id.setdefault(sid, (kind, text, canon))
            self._ids.setdefault((kind, canon), sid)
            versions[version] = sid
        elif keytype == "CONFIG":
            scope: str | None = key.get("subject")
            if value is None:
                self._config.pop(scope, None)
            else:
                level = value.get("compatibilityLevel") or value.get("compatibility")
                with contextlib.suppress(Exception):
                    self._config[scope] = Mode.parse(str(level))

    def _table(self) -> CompactedTopic:
        if self._closed:
            raise StoreUnavailableError(
                f"this SchemaRegistry ({self.topic}) is closed.", "not_written"
            )
        if self._log is None:
            info = Topics(self.config).ensure(SCHEMAS, self.topic, 1)
            if info.partitions != 1:
                raise TopicConfigError(
                    f"schema topic {self.topic} has {info.partitions} partitions; it needs "
                    "exactly 1 so that every registry reads registrations in one order. "
                    "Use another topic (SchemaRegistry(topic=...))."
                )
            self._log = CompactedTopic(self.config, self.topic, 1, self._read, self._forget)
        return self._log

    def _catch_up(self) -> None:
        """Read the topic up to its current end (one watermark query when nothing is new)."""
        self._table().catch_up()

    def _read(self, msg: Message) -> None:
        raw_key = msg.key()
        if raw_key is None:
            return
        try:
            key = json.loads(raw_key)
            raw = msg.value()
            value = None if raw is None else json.loads(raw)
        except json.JSONDecodeError:
            log.warning("schema topic %s: skipping a malformed record", self.topic)
            return
        if isinstance(key, dict) and (value is None or isinstance(value, dict)):
            self._apply(key, value)

    def _forget(self, _partition: int | None) -> None:
        self._by_id.clear()
        self._ids.clear()
        self._subjects.clear()
        self._config.clear()

    def _mutate(self, decide: Decide[T], attempts: int = 5) -> T:
        """Decide on fresh state and write atomically; re-decide when fenced."""
        with self._lock:
            for attempt in range(1, attempts + 1):
                if self._producer is None:
                    # The transactional id is fixed per topic: making a producer fences
                    # every other registry's writer, which then reads and decides again.
                    self._producer = TransactionalProducer(
                        self.config,
                        self.config.schema_transactional_id(self.topic),
                        timeout_ms=int(self.config.request_timeout_s * 1000),
                    )
                self._catch_up()
                records, result = decide()
                if not records:
                    return result
                try:
                    self._write(self._producer, records)
                except KafkaException as exc:
                    failure = classify(exc)
                    if failure is not Failure.PRODUCER_FENCED:
                        self._producer.abort()
                    if failure is Failure.PRODUCER_FENCED or attempt == attempts:
                        self._producer.close()
                        self._producer = None  # another registry wrote: read it, decide again
                    if attempt == attempts:
                        raise StoreUnavailableError(
                            f"could not write to schema topic {self.topic} after {attempts} "
                            f"attempts: {exc}. Nothing was registered.",
                            "not_written",
                        ) from exc
                    log.info("schema write retried (%s)", exc)
                    continue
                for key, value in records:
                    self._apply(key, value)
                return result
            raise AssertionError("unreachable")

    def _write(self, producer: TransactionalProducer, records: Records) -> None:
        producer.begin()
        for key, value in records:
            producer.produce(
                self.topic,
                key=json.dumps(key, separators=(",", ":")).encode(),
                value=None if value is None else json.dumps(value).encode(),
                partition=0,
            )
        producer.commit()


def _parse_version(version: int | str) -> int:
    if isinstance(version, str):
        if version == "latest":
            return -1
        if version.lstrip("-").isdigit():
            version = int(version)
        else:
            raise InvalidVersionError(f"version {version!r} is not a positive integer or 'latest'.")
    if isinstance(version, bool) or not isinstance(version, int) or (version < 1 and version != -1):
        raise InvalidVersionError(f"version {version!r} is not a positive integer or 'latest'.")
    return version


def _check_subject(subject: str) -> None:
    if not subject or not subject.strip() or len(subject) > 255:
        raise InvalidSchemaError(f"subject {subject!r} must be a non-empty name (<= 255 chars).")
