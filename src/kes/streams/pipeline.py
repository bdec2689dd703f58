"""Pipelines: continuous, exactly-once computations over kes event topics.

kes does not run a stream engine of its own: a :class:`Pipeline` is a Quix Streams
application (RocksDB state backed by changelog topics, event-time windows, joins,
Kafka transactions) set up the way an event store needs it, and :class:`Streams`
gives the build function kes-aware pieces:

* ``events(Account, "MoneyDeposited")`` - an aggregate topic as a stream of
  :class:`~kes.streams.source.StreamEvent`, read_committed, upcast, timed by the
  envelope; unreadable records are parked in ``<namespace>.dlq.<pipeline>``;
* ``table(User)`` - the current state per aggregate id, for ``enrich``;
* ``tumbling_window`` / ``sliding_window`` - Quix windows whose late records are
  written to ``<namespace>.stream.<pipeline>.late`` instead of vanishing;
* ``emit`` - results written as kes events (envelope, per-key versions,
  deterministic ids) to an aggregate topic, which projections and every kes tool read.

Every output (results, dead letters, late records, state changelogs) and the
consumed offsets commit in one Kafka transaction per checkpoint.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.dataframe.windows.definitions import (
    SlidingTimeWindowDefinition,
    TumblingTimeWindowDefinition,
)
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import Topic
from quixstreams.state.base import State

from kes.domain import Aggregate
from kes.envelope import Envelope, encode, headers
from kes.errors import InvalidInputError
from kes.kafka.config import KafkaConfig
from kes.kafka.topics import LATE, OUTPUTS, Topics
from kes.projections import dlq
from kes.store.kafka.keys import KafkaKeyRing
from kes.streams.alignment import read_in_append_order
from kes.streams.reporting import dead_letter_filter, late_reporter
from kes.streams.source import (
    EventDeserializer,
    JsonSerializer,
    KeyDeserializer,
    KeySerializer,
    RawSerializer,
    StreamEvent,
    TimeBounds,
    event_time,
)
from kes.streams.topics import kes_topic_manager

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_EVENT_IDS = uuid.UUID("6b1f3d1e-4c55-4b9f-9d0e-6e3c2f6a4b10")

Build = Callable[["Streams"], None]
Fold = Callable[[dict[str, Any] | None, StreamEvent], dict[str, Any] | None]


def latest_fields(state: dict[str, Any] | None, event: StreamEvent) -> dict[str, Any]:
    """The default table fold: every payload field keeps its latest value."""
    return {**(state or {}), **event["payload"]}


class Pipeline:
    """A named stream-processing job. ``build`` receives a :class:`Streams` and wires
    sources, steps and outputs; ``kes stream run MODULE:NAME`` runs it.

    ``aggregates`` are the classes whose upcasters apply to what the sources read.

    ``in_append_order``: read all partitions merged in the order their records were
    appended, as a pipeline running all along would have, instead of what each fetch
    brings, partition after partition. Set it for a pipeline started on a backlog: its
    windows then count the history as they would have live (docs/streams.md, "Event
    time, grace and a backlog"). Live it adds latency: each partition's next records
    are awaited.
    """

    def __init__(
        self,
        name: str,
        build: Build,
        *,
        aggregates: Iterable[type[Aggregate]] = (),
        commit_interval_s: float = 1.0,
        in_append_order: bool = False,
    ) -> None:
        if not _NAME.match(name):
            raise InvalidInputError(
                f"pipeline name {name!r} must be letters, digits, '-' or '_' (it names the "
                "consumer group and topics)."
            )
        self.name = name
        self.build = build
        self.aggregates = tuple(aggregates)
        self.commit_interval_s = commit_interval_s
        self.in_append_order = in_append_order

    def group(self, config: KafkaConfig) -> str:
        """The consumer group (Quix names the pipeline's internal topics after it)."""
        return config.stream_group(self.name)

    def late_topic(self, config: KafkaConfig) -> str:
        return config.late_topic(self.name)

    def dead_letter_topic(self, config: KafkaConfig) -> str:
        return dlq.dlq_topic(config, self.name)

    def application(
        self,
        config: KafkaConfig,
        *,
        state_dir: str | Path | None = None,
        loglevel: str = "WARNING",
        **quix_options: Any,
    ) -> Streams:
        """Set up the Quix application and run ``build`` on it; ``.app.run()`` starts it."""
        client = {k: v for k, v in config.client.items() if k != "logger"}
        connection = ConnectionConfig.from_librdkafka_dict(
            {"bootstrap.servers": config.bootstrap_servers, **client}, ignore_extras=True
        )
        options: dict[str, Any] = {
            "broker_address": connection,
            "consumer_group": self.group(config),
            "auto_offset_reset": "earliest",
            "processing_guarantee": "exactly-once",
            "commit_interval": self.commit_interval_s,
            "state_dir": str(state_dir or Path(".kes") / "streams" / self.name),
            "loglevel": loglevel,
            "consumer_extra_config": {
                **client,
                "isolation.level": "read_committed",
                "client.id": config.member_name,  # the owner `status` names
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": max(1000, config.session_timeout_ms // 5),
            },
            "producer_extra_config": {
                **client,
                # Random, as Quix makes it, but named in the pipeline's group so that its
                # ACLs can allow it (two processes must never share one: they would
                # fence each other).
                "transactional.id": f"{self.group(config)}.{uuid.uuid4().hex}",
                # kes writes keys with Java's murmur2; joins need the same partition per key.
                "partitioner": "murmur2_random",
                # A killed member's open transaction blocks readers of its outputs until it
                # times out; keep that short.
                "transaction.timeout.ms": min(config.transaction_timeout_ms, 15_000),
            },
        }
        options["topic_manager"] = kes_topic_manager(config, connection, self.group(config), client)
        options.update(quix_options)
        app = Application(**options)
        if self.in_append_order:
            read_in_append_order(app)
        streams = Streams(self, app, config)
        self.build(streams)
        return streams

    def run(self, config: KafkaConfig, *, state_dir: str | Path | None = None) -> None:
        """Run until SIGINT/SIGTERM."""
        streams = self.application(config, state_dir=state_dir)
        try:
            streams.app.run()
        finally:
            streams.keys.close()

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r})"


class Streams:
    """What a pipeline's build function wires with (``app`` is the Quix Application)."""

    def __init__(self, pipeline: Pipeline, app: Application, config: KafkaConfig) -> None:
        self.pipeline = pipeline
        self.app = app
        self.config = config
        self._topics = Topics(config)
        self._sources: dict[str, StreamingDataFrame] = {}
        self._outputs: dict[str, Topic] = {}
        self.output_topics: list[str] = []  # what it writes results to (emit, to_topic)
        self._late_topic_ready = False
        needs = any(a.personal_fields() for a in pipeline.aggregates)
        self.keys = KafkaKeyRing.from_env(config, required_by=repr(pipeline) if needs else None)
        self._deserializer = EventDeserializer(pipeline.aggregates, self.keys)

    # ---- sources ---------------------------------------------------------------------

    def events(self, source: type[Aggregate] | str, *event_types: str) -> StreamingDataFrame:
        """The events of an aggregate type (a class or its type name), optionally only
        those of ``event_types``; keyed by aggregate id, timed by the envelope."""
        aggregate_type = source if isinstance(source, str) else source.aggregate_type
        sdf = self._source(aggregate_type)
        if event_types:
            wanted = frozenset(event_types)
            sdf = sdf.filter(lambda e: e["eventType"] in wanted)
        return sdf

    def table(
        self, source: type[Aggregate] | str, fold: Fold = latest_fields
    ) -> StreamingDataFrame:
        """The current state of each aggregate of ``source``, by aggregate id: ``fold``
        (default: latest value of each payload field) applied to its events in order."""
        aggregate_type = source if isinstance(source, str) else source.aggregate_type
        state_key = f"kes.table.{aggregate_type}"

        def current(event: StreamEvent, state: State[str, Any]) -> dict[str, Any] | None:
            value = fold(state.get(state_key), event)
            state.set(state_key, value)
            return value

        return self.events(aggregate_type).apply(current, stateful=True)

    def _source(self, aggregate_type: str) -> StreamingDataFrame:
        name = self.config.topic(aggregate_type)
        if name in self._sources:
            return self._sources[name]
        info = self._topics.describe(name)
        if info is None:
            raise InvalidInputError(
                f"pipeline {self.pipeline.name!r} reads {aggregate_type} events but topic "
                f"{name} does not exist at {self.config.bootstrap_servers}; append an event "
                "first or check KES_TOPIC_PREFIX."
            )
        # What the pipeline writes (repartitions, outputs) lands in topics made with the
        # same broker defaults as its sources; their bounds stand for those.
        self._deserializer.bounds = self._deserializer.bounds.tighter(
            TimeBounds.of_topic(info.configs)
        )
        topic = self.app.topic(
            name,
            value_deserializer=self._deserializer,
            key_deserializer=KeyDeserializer(),
            timestamp_extractor=event_time,
        )
        sdf = self.app.dataframe(topic)
        dead_letters = dlq.ensure_dlq_topic(self.config, self.pipeline.name)
        good = sdf.filter(dead_letter_filter(sdf, self.pipeline.name, dead_letters), metadata=True)
        self._sources[name] = good
        return good

    # ---- steps -----------------------------------------------------------------------

    def key_by(
        self, sdf: StreamingDataFrame, key: str | Callable[[Any], Any], name: str
    ) -> StreamingDataFrame:
        """Re-key (repartition through a topic) by a payload field or a function."""
        func = (lambda e: e["payload"][key]) if isinstance(key, str) else key
        # Keys as plain UTF-8 (Quix's default is JSON) so that they hash, with murmur2, to
        # the same partition as the same aggregate id in a kes topic: joins need that.
        return sdf.group_by(
            func, name=name, key_serializer=KeySerializer(), key_deserializer=KeyDeserializer()
        )

    def enrich(
        self,
        sdf: StreamingDataFrame,
        table: StreamingDataFrame,
        *,
        by: str | Callable[[Any], Any],
        into: str,
        name: str,
        how: str = "left",
    ) -> StreamingDataFrame:
        """Each value of ``sdf`` with ``into`` = the row of ``table`` for key ``by`` (a
        payload field or a function) as of the value's event time (None when there is
        none and ``how="left"``; dropped when ``how="inner"``)."""

        def merge(left: dict[str, Any], right: Any) -> dict[str, Any]:
            return {**left, into: right}

        keyed = self.key_by(sdf, by, name)
        return keyed.join_asof(table, how=how, on_merge=merge, name=f"{name}-table")  # type: ignore[arg-type]

    def reduce(
        self,
        sdf: StreamingDataFrame,
        reducer: Callable[[Any, Any], Any],
        initial: Callable[[Any], Any],
        name: str,
    ) -> StreamingDataFrame:
        """A running aggregate per key, without windows: each value becomes the key's
        aggregate after it (``initial(value)`` for a key's first, then
        ``reducer(aggregate, value)``). Aggregates must be JSON values (state)."""
        state_key = f"kes.reduce.{name}"

        def step(value: Any, state: State[str, Any]) -> Any:
            current = state.get(state_key)
            updated = initial(value) if current is None else reducer(current, value)
            state.set(state_key, updated)
            return updated

        return sdf.apply(step, stateful=True)

    def tumbling_window(
        self,
        sdf: StreamingDataFrame,
        duration: timedelta,
        grace: timedelta = timedelta(0),
        name: str | None = None,
    ) -> TumblingTimeWindowDefinition:
        """Fixed, non-overlapping event-time windows per key; late records are reported."""
        return sdf.tumbling_window(duration, grace, name=name, on_late=self.late_reporter(sdf))

    def sliding_window(
        self,
        sdf: StreamingDataFrame,
        duration: timedelta,
        grace: timedelta = timedelta(0),
        name: str | None = None,
    ) -> SlidingTimeWindowDefinition:
        """Windows of ``duration`` ending at every record (both ends inclusive), per key."""
        return sdf.sliding_window(duration, grace, name=name, on_late=self.late_reporter(sdf))

    def late_reporter(self, sdf: StreamingDataFrame) -> Callable[..., bool]:
        """An ``on_late`` callback for any Quix window on ``sdf`` (hopping, session, ...):
        late records go to the late topic, with a warning in the log."""
        return late_reporter(sdf, self.pipeline.name, self._late_topic())

    def _late_topic(self) -> str:
        name = self.pipeline.late_topic(self.config)
        if not self._late_topic_ready:
            self._topics.ensure(LATE, name, 1)
            self._late_topic_ready = True
        return name

    # ---- outputs ---------------------------------------------------------------------

    def emit(
        self,
        sdf: StreamingDataFrame,
        aggregate_type: str,
        event_type: str,
        *,
        timestamp: Callable[[Any], int] | None = None,
    ) -> None:
        """Write each value as the payload of a kes event ``event_type`` of aggregate
        ``aggregate_type`` (id = the message key) to that aggregate type's topic.

        Versions count 1, 2, ... per key and event ids derive from (pipeline, type, id,
        version), so the output reads like any aggregate's stream. ``timestamp`` (epoch
        ms from the value) defaults to the message's timestamp. The pipeline owns that
        aggregate type: nothing else should append to it, and one pipeline should emit
        it from one source (versions are counted in that source's state).
        """
        topic = self._output_topic(aggregate_type)
        state_key = f"kes.emit.{aggregate_type}.version"
        pipeline = self.pipeline.name
        to_builtins = msgspec.to_builtins

        def envelope(
            value: Any, key: Any, ts: int, _headers: Any, state: State[str, Any]
        ) -> Envelope:
            version = int(state.get(state_key, 0)) + 1
            state.set(state_key, version)
            aggregate_id = str(key)
            ms = ts if timestamp is None else timestamp(value)
            return Envelope(
                event_id=str(
                    uuid.uuid5(_EVENT_IDS, f"{pipeline}/{aggregate_type}/{key}/{version}")
                ),
                event_type=event_type,
                timestamp=datetime.fromtimestamp(ms / 1000, UTC),
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                version=version,
                schema_version=1,
                payload=to_builtins(value, str_keys=True),
                metadata={"kes.pipeline": pipeline},
            )

        out = sdf.apply(envelope, stateful=True, metadata=True)
        out = out.set_timestamp(lambda env, _k, _ts, _h: int(env.timestamp.timestamp() * 1000))
        out = out.set_headers(lambda env, _k, _ts, _h: headers(env))
        out = out.apply(encode)
        out.to_topic(topic)

    def to_topic(self, sdf: StreamingDataFrame, name: str, partitions: int = 1) -> Topic:
        """Write values as JSON to a plain (not kes-event) topic, created with the
        settings of an event topic (nothing deleted, min ISR)."""
        self._topics.ensure(OUTPUTS, name, partitions)
        self.output_topics.append(name)
        topic = self.app.topic(
            name, value_serializer=JsonSerializer(), key_serializer=KeySerializer()
        )
        sdf.to_topic(topic)
        return topic

    def _output_topic(self, aggregate_type: str) -> Topic:
        if aggregate_type not in self._outputs:
            name = self._topics.ensure_event_topic(aggregate_type, role="pipeline").name
            self._outputs[aggregate_type] = self.app.topic(
                name, value_serializer=RawSerializer(), key_serializer=KeySerializer()
            )
            self.output_topics.append(name)
        return self._outputs[aggregate_type]
