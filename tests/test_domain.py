"""The domain layer: event methods, payload classes, rollback, replay, upcasting."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

import msgspec
import pytest

from kes.domain import (
    Aggregate,
    DomainEvent,
    UnknownEventError,
    Upcaster,
    VersionGapError,
    event,
)
from kes.envelope import RecordedEvent
from kes.errors import InvalidInputError, KesError, SerializationError
from kes.store import NO_STREAM, MemoryEventStore


class Dog(Aggregate):
    last_meal: str

    @event("Registered")
    def __init__(self, id: str, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)

    @event
    def _renamed_twice(self, name: str) -> None:
        self.rename(name)
        self.rename(name + "!")

    @event("Renamed")
    def rename(self, name: str) -> None:
        self.name = name

    @event("Broken")
    def broken(self, trick: str) -> None:
        self.tricks.append(trick)
        self.name = "changed"
        raise ValueError("refused")

    class Fed(DomainEvent):
        food: str
        grams: int = 100

        def apply(self, dog: Dog) -> None:
            dog.last_meal = self.food


class Thing(Aggregate, aggregate_type="Gadget"):
    @event("Made")
    def __init__(self, when: datetime, serial: uuid.UUID, price: Decimal, day: date) -> None:
        self.when = when
        self.serial = serial
        self.price = price
        self.day = day


class Plain(Aggregate):
    aggregate_type = "PlainThing"

    @event
    def touch(self, n: int = 1) -> None:
        self.n = getattr(self, "n", 0) + n


def stored(agg: Aggregate) -> list[RecordedEvent]:
    """Write the aggregate's pending events to a fresh store and read them back."""
    store = MemoryEventStore()
    store.append(type(agg).aggregate_type, agg.id, agg.collect_events(), NO_STREAM)
    return store.read_stream(type(agg).aggregate_type, agg.id)


def test_calling_event_method_records_pending_event_and_applies_it() -> None:
    dog = Dog("d1", "Rex")
    dog.add_trick("sit")
    assert (dog.id, dog.version, dog.name, dog.tricks) == ("d1", 2, "Rex", ["sit"])
    assert [e.event_type for e in dog.pending_events] == ["Registered", "TrickAdded"]
    assert dog.pending_events[0].payload == {"id": "d1", "name": "Rex"}


def test_replay_runs_the_same_bodies_and_rebuilds_the_same_state() -> None:
    dog = Dog("d1", "Rex")
    dog.add_trick("sit")
    dog.trigger(Dog.Fed(food="bone"))
    again = Dog.replay(stored(dog))
    assert again is not None
    assert vars(again) == vars(dog) and again.version == dog.version == 3
    assert again.pending_events == ()


def test_payload_class_uses_camel_case_names_and_yields_a_json_schema() -> None:
    types = Thing.event_types()
    schema = msgspec.json.schema(types["Made"])
    props = schema["$defs"]["Made"]["properties"]
    assert set(props) == {"when", "serial", "price", "day"}
    assert Dog.schema_versions() == {
        "Registered": 1,
        "TrickAdded": 1,
        "RenamedTwice": 1,
        "Renamed": 1,
        "Broken": 1,
        "Fed": 1,
    }


def test_uuid_datetime_decimal_and_date_travel_as_strings_and_replay_to_their_types() -> None:
    serial = uuid.uuid4()
    when = datetime(2021, 7, 21, 12, 0, tzinfo=UTC)
    thing = Thing(when, serial, Decimal("10.50"), date(2021, 7, 21))
    payload = thing.pending_events[0].payload
    assert payload == {
        "when": "2021-07-21T12:00:00Z",
        "serial": str(serial),
        "price": "10.50",
        "day": "2021-07-21",
    }
    again = Thing.replay(stored(thing))
    assert again is not None and vars(again) == vars(thing)
    assert isinstance(again.price, Decimal) and isinstance(again.serial, uuid.UUID)


def test_exception_in_event_body_leaves_aggregate_unchanged_and_records_nothing() -> None:
    dog = Dog("d1", "Rex")
    dog.add_trick("sit")
    with pytest.raises(ValueError, match="refused"):
        dog.broken("roll")
    assert (dog.name, dog.tricks, dog.version, len(dog.pending_events)) == ("Rex", ["sit"], 2, 2)


def test_event_method_called_inside_an_event_body_records_only_the_outer_event() -> None:
    dog = Dog("d1", "Rex")
    dog._renamed_twice("Max")
    assert dog.name == "Max!"
    assert [e.event_type for e in dog.pending_events] == ["Registered", "RenamedTwice"]
    again = Dog.replay(stored(dog))
    assert again is not None and again.name == "Max!" and again.version == 2


def test_event_name_defaults_to_camel_case_method_name_and_class_created() -> None:
    thing = Plain()
    thing.touch()
    assert [e.event_type for e in thing.pending_events] == ["Touch"]
    assert "RenamedTwice" in Dog.event_types()


def test_aggregate_type_defaults_to_class_name_and_can_be_overridden() -> None:
    assert Dog.aggregate_type == "Dog"
    assert Thing.aggregate_type == "Gadget"
    assert Plain.aggregate_type == "PlainThing"


def test_id_is_generated_when_no_id_field_and_uuid_ids_are_stored_as_str() -> None:
    plain = Plain()
    assert uuid.UUID(plain.id).version == 4
    assert Plain(id=uuid.UUID(int=5)).id == str(uuid.UUID(int=5))
    with pytest.raises(InvalidInputError):
        Dog("", "Rex")


def test_non_json_payload_value_is_refused_and_nothing_recorded() -> None:
    dog = Dog("d1", "Rex")
    with pytest.raises(SerializationError):
        dog.add_trick(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="trick"):
        dog.add_trick(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        dog.add_trick()  # type: ignore[call-arg]
    assert dog.version == 1 and dog.tricks == []


def test_event_body_gets_decoded_copies_not_the_callers_objects() -> None:
    class Basket(Aggregate):
        @event
        def fill(self, items: list[str]) -> None:
            self.items = items

    mine = ["apple"]
    basket = Basket()
    basket.fill(mine)
    mine.append("pear")
    assert basket.items == ["apple"]


def test_explicit_event_class_must_belong_to_the_aggregate() -> None:
    class Stray(DomainEvent):
        def apply(self, agg: Any) -> None:
            pass

    with pytest.raises(TypeError, match="not an event of Dog"):
        Dog("d1", "Rex").trigger(Stray())


def test_duplicate_event_names_in_one_class_are_rejected() -> None:
    with pytest.raises(TypeError, match="declared twice"):

        class Twice(Aggregate):
            @event("Same")
            def a(self) -> None:
                pass

            @event("Same")
            def b(self) -> None:
                pass


def test_unknown_event_type_raises_a_clear_error_on_replay() -> None:
    class Other(Aggregate, aggregate_type="Dog"):
        pass

    with pytest.raises(UnknownEventError, match="no event 'Registered'"):
        Other.replay(stored(Dog("d1", "Rex")))


class NameV1(Aggregate, aggregate_type="Person"):
    @event("Named")
    def __init__(self, name: str) -> None:
        self.name = name


class NameV2(Aggregate, aggregate_type="Person"):
    upcasters: ClassVar[Mapping[tuple[str, int], Upcaster]] = {
        ("Named", 1): lambda p: {"first": p["name"].split()[0], "last": p["name"].split()[-1]}
    }

    @event("Named", schema_version=2)
    def __init__(self, first: str, last: str) -> None:
        self.first = first
        self.last = last


class NameV3(NameV2, aggregate_type="Person"):
    upcasters: ClassVar[Mapping[tuple[str, int], Upcaster]] = {
        **NameV2.upcasters,
        ("Named", 2): lambda p: {**p, "title": ""},
    }

    @event("Named", schema_version=3)
    def __init__(self, first: str, last: str, title: str) -> None:
        self.first, self.last, self.title = first, last, title


def test_upcasters_bring_old_payloads_to_the_current_schema_version_on_read() -> None:
    old = stored(NameV1("Ada Lovelace"))
    v2 = NameV2.replay(old)
    v3 = NameV3.replay(old)
    assert v2 is not None and (v2.first, v2.last) == ("Ada", "Lovelace")
    assert v3 is not None and vars(v3) == {"first": "Ada", "last": "Lovelace", "title": ""}
    assert NameV3("Ada", "L", "Dr").pending_events[0].schema_version == 3


def test_missing_upcaster_or_newer_schema_version_raises_unknown_event_error() -> None:
    class NoUpcaster(Aggregate, aggregate_type="Person"):
        @event("Named", schema_version=2)
        def __init__(self, first: str) -> None:
            self.first = first

    with pytest.raises(UnknownEventError, match="no upcaster"):
        NoUpcaster.replay(stored(NameV1("Ada")))
    with pytest.raises(UnknownEventError, match="newer"):
        NameV1.replay(stored(NameV2("Ada", "L")))


def test_replay_refuses_a_stream_with_a_version_gap() -> None:
    dog = Dog("d1", "Rex")
    dog.add_trick("sit")
    events = stored(dog)
    with pytest.raises(VersionGapError, match="gap"):
        Dog.replay(events[1:])


def test_collect_events_returns_and_clears_pending() -> None:
    dog = Dog("d1", "Rex")
    assert len(dog.collect_events()) == 1
    assert dog.pending_events == () and dog.version == 1


def test_domain_errors_are_kes_errors() -> None:
    from kes.domain import DomainError

    assert issubclass(DomainError, KesError) and issubclass(UnknownEventError, KesError)
