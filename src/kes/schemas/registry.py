"""A schema registry kept in a compacted, single-partition Kafka topic.

Topic
    ``_kes_schemas`` by default (as Confluent Schema Registry keeps ``_schemas``):
    one partition, ``cleanup.policy=compact``. Records use Confluent's layout:

    * key ``{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}``, value
      ``{"subject":S,"version":V,"id":ID,"schemaType":"JSON","schema":"<text>","deleted":false}``
      (``"references": [{"name":N,"subject":S2,"version":V2}]`` when it has some;
      ``"deleted": true`` once soft-deleted; a tombstone once permanently deleted)
    * key ``{"keytype":"CONFIG","subject":S|null,"magic":0}``, value
      ``{"compatibilityLevel":"BACKWARD","compatibilityPolicy":"STRICT"}`` (either may be
      absent; ``subject`` null: the global setting)

State
    A :class:`kes.schemas.state.RegistryState`, which also takes every decision (what
    to write, what to refuse) with no I/O; this module only reads the topic into it and
    writes the records it plans. Held in memory and rebuilt by reading the topic from
    the beginning on first use;
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
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from confluent_kafka import KafkaException, Message

from kes.domain import Aggregate
from kes.errors import StoreUnavailableError, TopicConfigError
from kes.kafka.config import KafkaConfig
from kes.kafka.errors import Failure, classify
from kes.kafka.produce import TransactionalProducer
from kes.kafka.table import CompactedTopic
from kes.kafka.topics import SCHEMAS, Topics
from kes.schemas.compatibility import BreakingChange, Mode, Policy
from kes.schemas.generate import aggregate_schemas
from kes.schemas.parse import SchemaInput, parse_schema
from kes.schemas.state import Mutation, Record, Reference, RegisteredSchema, RegistryState

__all__ = ["DEFAULT_TOPIC", "RegisteredSchema", "SchemaRegistry", "parse_schema"]

log = logging.getLogger("kes.schemas")

DEFAULT_TOPIC = "_kes_schemas"  # KafkaConfig().schema_topic(): the default namespace's
T = TypeVar("T")
Refs = Sequence[Reference | Mapping[str, Any]]


class SchemaRegistry:
    """Subjects, versions, global ids, references and compatibility settings in a Kafka
    topic. Reads answer from a :class:`RegistryState` caught up with the topic; writes
    are planned by it and written atomically.

    Connects lazily. Thread-safe. Close it to stop its Kafka clients.
    """

    def __init__(
        self,
        config: KafkaConfig,
        topic: str | None = None,
        default_compatibility: Mode | str = Mode.BACKWARD,
    ) -> None:
        self.config = config
        # as `kes schemas` does: KES_SCHEMAS_TOPIC, else the namespace's (_kes_schemas)
        self.topic = topic or os.environ.get("KES_SCHEMAS_TOPIC") or config.schema_topic()
        self.default_compatibility = Mode.parse(default_compatibility)
        self._lock = threading.RLock()
        self._log: CompactedTopic | None = None
        self._producer: TransactionalProducer | None = None
        self._closed = False
        self._state = RegistryState(self.default_compatibility, self.topic)

    # ---- reads (see RegistryState for their meaning) -----------------------------------

    def subjects(self, deleted: bool = False) -> list[str]:
        with self._fresh():
            return self._state.subjects(deleted)

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        with self._fresh():
            return self._state.versions(subject, deleted)

    def get(
        self, subject: str, version: int | str = "latest", deleted: bool = False
    ) -> RegisteredSchema:
        """A version of ``subject`` (``"latest"``, or ``-1``, for the newest)."""
        with self._fresh():
            return self._state.get(subject, version, deleted)

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with a global id (soft-deleted versions' schemas included)."""
        with self._fresh():
            return self._state.by_id(schema_id)

    def document(self, schema_id: int) -> Any:
        """The parsed schema with this id, its references bundled in (self-contained)."""
        with self._fresh():
            return self._state.document(schema_id)

    def subjects_of(self, schema_id: int, deleted: bool = False) -> list[str]:
        with self._fresh():
            return self._state.subjects_of(schema_id, deleted)

    def referenced_by(self, subject: str, version: int | str) -> list[int]:
        with self._fresh():
            return self._state.referenced_by(subject, version)

    def lookup(
        self,
        subject: str,
        schema: SchemaInput,
        schema_type: str = "JSON",
        references: Refs = (),
        deleted: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema``; SchemaNotFoundError if none."""
        with self._fresh():
            return self._state.lookup(subject, schema, schema_type, references, deleted)

    def compatibility(self, subject: str | None = None) -> Mode:
        """The subject's level, else the global one, else the default (BACKWARD)."""
        with self._fresh():
            return self._state.compatibility(subject)

    def policy(self, subject: str | None = None) -> Policy:
        """The subject's policy, else the global one, else STRICT."""
        with self._fresh():
            return self._state.policy(subject)

    def compatibility_override(self, subject: str | None) -> Mode | None:
        """The level set on exactly this subject (or globally for None), if any."""
        return self.config_override(subject)[0]

    def config_override(self, subject: str | None) -> tuple[Mode | None, Policy | None]:
        """The level and policy set on exactly this subject (or globally for None)."""
        with self._fresh():
            return self._state.override(subject)

    def check(
        self,
        subject: str,
        schema: SchemaInput,
        schema_type: str = "JSON",
        version: int | str | None = None,
        references: Refs = (),
    ) -> list[BreakingChange]:
        """The breaking changes registering ``schema`` would bring (empty: compatible)."""
        with self._fresh():
            return self._state.check(subject, schema, schema_type, version, references)

    # ---- writes ------------------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema: SchemaInput,
        schema_type: str = "JSON",
        references: Refs = (),
    ) -> RegisteredSchema:
        """Register ``schema`` under ``subject``; returns its version and global id.

        Idempotent: a schema the subject already holds returns that version. Raises
        InvalidSchemaError for a malformed document and IncompatibleSchemaError (listing
        each breaking change) when the subject's compatibility level forbids it; nothing
        is written then.
        """
        return self._mutate(
            lambda: self._state.plan_register(subject, schema, schema_type, references)
        )

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
        return self.configure(subject, compatibility=mode)[0]

    def configure(
        self,
        subject: str | None = None,
        compatibility: Mode | str | None = None,
        policy: Policy | str | None = None,
    ) -> tuple[Mode, Policy]:
        """Set the level and/or policy of ``subject`` (or the global ones for None)."""
        return self._mutate(lambda: self._state.plan_config(subject, compatibility, policy))

    def delete_compatibility(self, subject: str | None = None) -> Mode:
        """Forget the level and policy set on ``subject``; returns the level it had."""
        return self.delete_config(subject)[0]

    def delete_config(self, subject: str | None = None) -> tuple[Mode, Policy]:
        """Forget the level and policy set on ``subject`` (it falls back to the global
        ones); returns what was set."""
        return self._mutate(lambda: self._state.plan_delete_config(subject))

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete ``subject`` (or, ``permanent``, remove a soft-deleted one for good);
        returns the versions deleted."""
        return self._mutate(lambda: self._state.plan_delete_subject(subject, permanent))

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        """Soft-delete one version (or, ``permanent``, remove a soft-deleted one)."""
        return self._mutate(lambda: self._state.plan_delete_version(subject, version, permanent))

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

    # ---- Kafka I/O ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _fresh(self) -> Iterator[None]:
        with self._lock:
            self._catch_up()
            yield

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
            self._state.apply(key, value)

    def _forget(self, _partition: int | None) -> None:
        """The topic was deleted or re-created: start again from what it holds now."""
        self._state = RegistryState(self.default_compatibility, self.topic)

    def _mutate(self, decide: Callable[[], Mutation[T]], attempts: int = 5) -> T:
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
                        role="schemas",
                    )
                self._catch_up()
                mutation = decide()
                records = mutation.records
                if not records:
                    return mutation.result
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
                    self._state.apply(key, value)
                return mutation.result
            raise AssertionError("unreachable")

    def _write(self, producer: TransactionalProducer, records: Sequence[Record]) -> None:
        producer.begin()
        for key, value in records:
            producer.produce(
                self.topic,
                key=json.dumps(key, separators=(",", ":")).encode(),
                value=None if value is None else json.dumps(value).encode(),
                partition=0,
            )
        producer.commit()
