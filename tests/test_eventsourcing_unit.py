"""The eventsourcing persistence module's pure parts: the record mapping, the log index,
admission, errors and settings. No Kafka."""

from __future__ import annotations

import time
import uuid

import pytest
from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    OperationalError,
    StoredEvent,
    Tracking,
)
from eventsourcing.utils import Environment

from kes.envelope import NewEvent, Position, RecordedEvent, decode, encode, to_envelope
from kes.errors import InvalidInputError, KesError, StoreUnavailableError, TransientError
from kes.integrations.eventsourcing import (
    EventExistsError,
    InvalidRecordError,
    KafkaFactory,
    RecorderUnavailableError,
    StaleTrackingError,
)
from kes.integrations.eventsourcing._admission import Insert, admit
from kes.integrations.eventsourcing._index import LogIndex
from kes.integrations.eventsourcing._wire import (
    Row,
    check_stored_event,
    decode_row,
    event_record,
    state_payload,
    tracking_record,
)
from kes.integrations.eventsourcing.errors import translate
from kes.integrations.eventsourcing.factory import aggregate_type_for, kes_settings

A = uuid.UUID("11111111-1111-1111-1111-111111111111")
B = uuid.UUID("22222222-2222-2222-2222-222222222222")


def through_kafka(event: NewEvent, version: int = 1) -> RecordedEvent:
    """The event as a reader gets it back: envelope encoded, decoded."""
    envelope = to_envelope("App", "events", version, event)
    return RecordedEvent(decode(encode(envelope)), Position("kes.events.App", 0, version - 1))


# ---- the record mapping -------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [b'{"a":1,"b":{"_type_":"decimal_str","_data_":"1.50"},"c":[1,2.5,null]}', b"{}"],
)
def test_json_object_state_travels_as_the_payload_and_comes_back_byte_for_byte(
    state: bytes,
) -> None:
    stored = StoredEvent(A, 3, "bank:Account.Credited", state)
    recorded = through_kafka(event_record(stored, 7, "e1"))
    assert recorded.payload == state_payload(state)[0]
    assert "stateEncoding" not in recorded.metadata
    row = decode_row(recorded)
    assert row.event == stored
    assert row.notification_id == 7


@pytest.mark.parametrize(
    "state", [b"state1", b"\xff\x00", b"[1,2]", b'{"a": 1}', b'{"x":1e+16}', b'"text"', b""]
)
def test_state_that_is_not_a_compact_json_object_travels_as_base64_and_comes_back(
    state: bytes,
) -> None:
    stored = StoredEvent("order-7", 1, "shop:Order.Placed", state)
    recorded = through_kafka(event_record(stored, None, "e1"))
    assert recorded.metadata["stateEncoding"] == "base64"
    assert set(recorded.payload) == {"base64"}
    row = decode_row(recorded)
    assert row.event == stored
    assert isinstance(row.event.originator_id, str)
    assert row.notification_id is None


def test_uuid_and_text_originator_ids_come_back_as_the_type_they_were() -> None:
    by_uuid = decode_row(through_kafka(event_record(StoredEvent(A, 1, "t", b"{}"), 1, "e1")))
    by_text = decode_row(through_kafka(event_record(StoredEvent(str(A), 1, "t", b"{}"), 1, "e2")))
    assert by_uuid.event is not None and by_uuid.event.originator_id == A
    assert by_text.event is not None and by_text.event.originator_id == str(A)


def test_tracking_record_comes_back_as_tracking() -> None:
    row = decode_row(through_kafka(tracking_record(Tracking("Upstream", 42), "e1"), version=5))
    assert row == Row(5, tracking=Tracking("Upstream", 42))


def test_a_record_some_other_program_wrote_is_a_bare_row() -> None:
    foreign = NewEvent(event_type="Something", payload={"x": 1})
    assert decode_row(through_kafka(foreign, version=3)) == Row(3)


@pytest.mark.parametrize(
    "event",
    [
        StoredEvent(1234, 1, "t", b"{}"),  # type: ignore[arg-type]
        StoredEvent(A, "1", "t", b"{}"),  # type: ignore[arg-type]
        StoredEvent(A, True, "t", b"{}"),
        StoredEvent(A, 1, "", b"{}"),
        StoredEvent(A, 1, "t", "{}"),  # type: ignore[arg-type]
    ],
)
def test_records_the_library_could_not_have_made_are_refused_as_data_errors(
    event: StoredEvent,
) -> None:
    with pytest.raises(InvalidRecordError) as info:
        check_stored_event(event)
    assert isinstance(info.value, InvalidInputError)


# ---- the index ----------------------------------------------------------------------------


def indexed(*rows: Row, numbered: bool = True) -> LogIndex:
    index = LogIndex(numbered)
    for row in rows:
        index.apply(row)
    return index


def ev(originator: uuid.UUID | str, ov: int, topic: str = "t") -> StoredEvent:
    return StoredEvent(originator, ov, topic, b"{}")


def test_index_selects_versions_in_order_even_when_recorded_out_of_order() -> None:
    index = indexed(
        Row(1, event=ev(A, 2)),
        Row(2, event=ev(B, 1)),
        Row(3, event=ev(A, 4)),
        Row(4, event=ev(A, 3)),
    )
    assert index.versions(str(A)) == [1, 4, 3]
    assert index.versions(str(A), desc=True, limit=1) == [3]
    assert index.versions(str(A), gt=2, lte=3) == [4]
    assert index.versions(str(A), lte=3, desc=True) == [4, 1]
    assert index.has(str(A), 3) and not index.has(str(A), 1) and not index.has(str(A), 5)
    assert index.versions("nobody") == []


def test_index_numbers_notifications_in_log_order_skipping_tracking_records() -> None:
    index = indexed(
        Row(1, event=ev(A, 1, "x")),
        Row(2, tracking=Tracking("Up", 9)),
        Row(3, event=ev(B, 1, "y")),
        Row(4, event=ev(A, 2, "x")),
    )
    assert index.max_notification_id == 3
    assert index.notifications(1, 10, (), 10) == [(1, 1), (2, 3), (3, 4)]
    assert index.notifications(2, 10, (), 1) == [(2, 3)]
    assert index.notifications(1, 10, ("x",), 10) == [(1, 1), (3, 4)]
    assert index.notifications(1, 2, ("x",), 10) == [(1, 1)]
    assert index.notifications(1, 10, ("z",), 10) == []
    assert index.max_tracking_id("Up") == 9 and index.max_tracking_id("Down") is None


def test_a_log_that_is_not_an_applications_numbers_nothing() -> None:
    index = indexed(Row(1, event=ev(A, 1)), numbered=False)
    assert index.max_notification_id == 0
    assert index.versions(str(A)) == [1]


def test_index_takes_rows_only_in_log_order() -> None:
    index = indexed(Row(1, event=ev(A, 1)))
    with pytest.raises(ValueError):
        index.apply(Row(3, event=ev(A, 2)))


# ---- admission ----------------------------------------------------------------------------


def insert(*events: StoredEvent, tracking: Tracking | None = None) -> Insert:
    return Insert(list(events), tracking, time.monotonic() + 30)


def test_admission_plans_one_append_at_the_head_numbering_on_from_the_last_notification() -> None:
    index = indexed(Row(1, event=ev(A, 1)), Row(2, tracking=Tracking("Up", 3)))
    first = insert(ev(A, 2), ev(B, 1))
    second = insert(ev(B, 2), tracking=Tracking("Up", 4))
    plan, refused = admit(index, [first, second], "log")
    assert refused == []
    assert plan.expected == 2
    assert plan.notification_ids == [[2, 3], [4]]
    assert [r.version for r in plan.rows] == [3, 4, 5, 6]
    assert plan.rows[-1].tracking == Tracking("Up", 4)
    assert [r.event_id for r in plan.records] == first.event_ids + second.event_ids
    assert plan.records[0].metadata["notificationId"] == "2"


@pytest.mark.parametrize(
    ("batch", "refused_at"),
    [
        ([insert(ev(A, 1))], 0),  # already in the log
        ([insert(ev(B, 1), ev(B, 1))], 0),  # twice in one insert
        ([insert(ev(B, 1)), insert(ev(B, 1), ev(B, 2))], 1),  # taken by the insert before it
    ],
)
def test_admission_refuses_an_insert_whose_originator_version_is_taken_and_keeps_the_others(
    batch: list[Insert], refused_at: int
) -> None:
    index = indexed(Row(1, event=ev(A, 1)))
    plan, refused = admit(index, batch, "log A/events")
    assert [ins for ins, _ in refused] == [batch[refused_at]]
    error = refused[0][1]
    assert isinstance(error, EventExistsError) and isinstance(error, IntegrityError)
    assert "log A/events" in str(error) and "nothing of this insert was recorded" in str(error)
    assert plan.inserts == [b for i, b in enumerate(batch) if i != refused_at]


def test_admission_refuses_tracking_not_past_the_last_in_the_log_or_in_the_batch() -> None:
    index = indexed(Row(1, tracking=Tracking("Up", 5)))
    stale = insert(tracking=Tracking("Up", 5))
    fresh = insert(tracking=Tracking("Up", 7))
    behind = insert(tracking=Tracking("Up", 6))
    other = insert(tracking=Tracking("Other", 1))
    plan, refused = admit(index, [stale, fresh, behind, other], "log")
    assert [(ins, type(err)) for ins, err in refused] == [
        (stale, StaleTrackingError),
        (behind, StaleTrackingError),
    ]
    assert plan.inserts == [fresh, other]
    assert "it was processed already" in str(refused[0][1])


# ---- errors and settings ------------------------------------------------------------------


def test_errors_are_kes_errors_and_the_librarys_own_types() -> None:
    unavailable = translate("log", StoreUnavailableError("no owner answered", "unknown"))
    assert isinstance(unavailable, RecorderUnavailableError)
    assert isinstance(unavailable, OperationalError) and isinstance(unavailable, TransientError)
    assert unavailable.outcome == "unknown"
    invalid = translate("log", InvalidInputError("too large"))
    assert isinstance(invalid, InvalidRecordError) and isinstance(invalid, KesError)
    exists = EventExistsError("log", A, 2, "is already recorded")
    assert isinstance(exists, IntegrityError) and isinstance(exists, KesError)


def test_application_names_become_aggregate_types_without_collisions() -> None:
    assert aggregate_type_for("BankAccounts") == "BankAccounts"
    assert aggregate_type_for("my_app-2") == "my_app-2"
    spaced, dashed = aggregate_type_for("My App"), aggregate_type_for("My-App")
    assert spaced.startswith("My-App-") and dashed == "My-App"
    assert aggregate_type_for("a.b") != aggregate_type_for("a/b")
    assert aggregate_type_for("").startswith("Application-")


def test_kes_settings_come_from_os_environ_then_the_env_then_the_applications_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KES_NAMESPACE", "from-os")
    monkeypatch.setenv("KES_ROLE", "client")
    env = {"KES_NAMESPACE": "from-env", "BANK_KES_NAMESPACE": "bank-only", "OTHER": "x"}
    settings = kes_settings(env, "Bank")
    assert settings["KES_NAMESPACE"] == "bank-only"
    assert settings["KES_ROLE"] == "client"
    assert "OTHER" not in settings
    assert kes_settings(env, "Shop")["KES_NAMESPACE"] == "from-env"


def test_factory_is_found_by_persistence_module_and_configured_without_touching_kafka() -> None:
    env = Environment(
        "Bank",
        {
            "PERSISTENCE_MODULE": "kes.integrations.eventsourcing",
            "KES_BOOTSTRAP_SERVERS": "kafka-1:9092",
            "BANK_KES_NAMESPACE": "shop",
            "KES_EVENTSOURCING_CACHE_MB": "8",
        },
    )
    factory = InfrastructureFactory.construct(env)
    assert isinstance(factory, KafkaFactory)
    assert factory.config.bootstrap_servers == "kafka-1:9092"
    assert factory.config.ns == "shop" and factory.config.partitions == 1
    assert factory.cache_bytes == 8 * 1024 * 1024
    assert factory.application == "Bank"
    factory.close()


def test_a_cache_size_that_is_not_a_number_is_refused_naming_the_setting() -> None:
    env = Environment("Bank", {"KES_EVENTSOURCING_CACHE_MB": "lots"})
    with pytest.raises(InvalidInputError, match="KES_EVENTSOURCING_CACHE_MB='lots'"):
        KafkaFactory(env)
