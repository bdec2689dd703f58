"""The kes source for Quix Streams, without Kafka: decoding, upcasting, bad records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from quixstreams.models import SerializationContext

from kes.envelope import Envelope, encode
from kes.errors import InvalidInputError
from kes.kafka.config import KafkaConfig
from kes.streams import BadRecord, Pipeline
from kes.streams.runner import load_pipeline
from kes.streams.source import (
    EventDeserializer,
    KeyDeserializer,
    KeySerializer,
    TimeBounds,
    event_time,
)
from tests.test_domain import NameV1, NameV3

CTX = SerializationContext(topic="kes.events.Person", field="value")
AT = datetime(2026, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)


def record(payload: dict[str, object], schema_version: int, event_type: str = "Named") -> bytes:
    return encode(
        Envelope(
            event_id="e-1",
            event_type=event_type,
            timestamp=AT,
            aggregate_type="Person",
            aggregate_id="p-1",
            version=4,
            schema_version=schema_version,
            payload=payload,
            metadata={"correlationId": "c-9"},
        )
    )


def test_an_old_event_is_upcast_and_timed_by_its_envelope() -> None:
    event = EventDeserializer([NameV3])(record({"name": "Ada Lovelace"}, 1), CTX)
    assert not isinstance(event, BadRecord)
    assert event["payload"] == {"first": "Ada", "last": "Lovelace", "title": ""}
    assert event["schemaVersion"] == 3
    assert (event["eventType"], event["aggregateId"], event["version"]) == ("Named", "p-1", 4)
    assert event["timestampMs"] == int(AT.timestamp() * 1000)
    assert datetime.fromisoformat(event["timestamp"]) == AT
    assert event["metadata"] == {"correlationId": "c-9"}
    assert event_time(event, None, 0, 0) == event["timestampMs"]


def test_without_the_aggregate_class_a_payload_passes_as_written() -> None:
    event = EventDeserializer()(record({"name": "Ada Lovelace"}, 1), CTX)
    assert not isinstance(event, BadRecord)
    assert event["payload"] == {"name": "Ada Lovelace"} and event["schemaVersion"] == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not a kes event envelope"),
        (b'{"eventId": "x"}', "not a kes event envelope"),
        (None, "no value"),
        (record({"first": "A", "last": "B", "title": ""}, 3), "newer than this code"),
    ],
)
def test_unreadable_records_become_bad_records_with_a_reason(
    value: bytes | None, reason: str
) -> None:
    bad = EventDeserializer([NameV1])(value, CTX)
    assert isinstance(bad, BadRecord) and reason in bad.reason
    assert bad.value == value
    assert event_time(bad, None, 1234, 0) == 1234  # Kafka's time for what has no envelope


def test_keys_that_are_not_utf8_survive_a_round_trip() -> None:
    raw = b"acct-\xff\xfe"
    key = KeyDeserializer()(raw, CTX)
    assert key is not None and KeySerializer()(key) == raw
    assert KeySerializer()("acct-1") == b"acct-1" and KeyDeserializer()(None, CTX) is None


def test_pipeline_names_must_be_usable_in_topic_and_group_names() -> None:
    for bad in ("", "has space", "dots.are.prefixes", "-leading"):
        with pytest.raises(InvalidInputError, match="pipeline name"):
            Pipeline(bad, lambda streams: None)
    p = Pipeline("risk-1", lambda streams: None)
    default = KafkaConfig()
    assert (p.group(default), p.dead_letter_topic(default), p.late_topic(default)) == (
        "kes.stream.risk-1",
        "kes.dlq.risk-1",
        "kes.stream.risk-1.late",
    )
    other = KafkaConfig(namespace="shop")
    assert (p.group(other), p.dead_letter_topic(other), p.late_topic(other)) == (
        "shop.stream.risk-1",
        "shop.dlq.risk-1",
        "shop.stream.risk-1.late",
    )


def test_load_pipeline_names_what_to_write() -> None:
    assert load_pipeline("examples.users.streams:signups_per_hour").name == "signups-per-hour"
    with pytest.raises(InvalidInputError, match="MODULE:NAME"):
        load_pipeline("examples.users.streams")
    with pytest.raises(InvalidInputError, match=r"not a kes\.streams\.Pipeline"):
        load_pipeline("examples.users.streams:HOUR")


def test_event_times_outside_what_the_topics_accept_become_bad_records() -> None:
    """Kafka's defaults (1 h ahead, no bound behind) as a topic describes them; the
    event is at AT, the clock is moved around it."""
    at_ms = int(AT.timestamp() * 1000)
    bounds = TimeBounds.of_topic(
        {
            "message.timestamp.type": "CreateTime",
            "message.timestamp.after.max.ms": "3600000",
            "message.timestamp.before.max.ms": "9223372036854775807",
        }
    )
    assert bounds == TimeBounds(ahead_ms=3_600_000, behind_ms=None)
    assert bounds.problem(at_ms, now_ms=at_ms - 58 * 60_000) is None  # 58 min ahead
    too_far = bounds.problem(at_ms, now_ms=at_ms - 5 * 3_600_000)
    assert too_far is not None
    assert "5.0 h ahead" in too_far and "after.max.ms = 3600000" in too_far
    assert bounds.problem(at_ms, now_ms=at_ms + 10 * 365 * 86_400_000) is None  # old is fine

    week = TimeBounds.of_topic({"message.timestamp.before.max.ms": str(7 * 86_400_000)})
    both = bounds.tighter(week)
    assert both == TimeBounds(ahead_ms=3_600_000, behind_ms=7 * 86_400_000)
    old = both.problem(at_ms, now_ms=at_ms + 8 * 86_400_000)
    assert old is not None and "192.0 h behind" in old and "before.max.ms" in old
    assert TimeBounds.of_topic({"message.timestamp.type": "LogAppendTime"}) == TimeBounds()

    deserializer = EventDeserializer([NameV3], bounds=TimeBounds(ahead_ms=60_000))
    # AT (2026-05-01) is behind the machine's clock: only a bound behind could refuse it.
    assert not isinstance(deserializer(record({"name": "Ada"}, 3), CTX), BadRecord)
    strict = EventDeserializer([NameV3], bounds=TimeBounds(behind_ms=1000))
    bad = strict(record({"name": "Ada"}, 3), CTX)
    assert isinstance(bad, BadRecord) and bad.error_type == "EventTimeOutOfRange"
    assert bad.reason.startswith("event e-1 (Named): its event time 2026-05-01T12:30:15.250000")
