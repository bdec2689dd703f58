"""Crypto-shredding without Kafka: personal fields encrypted per data subject, forgotten by
deleting the subject's key (memory store and memory key ring; the Kafka key ring and the
disks are in test_shredding_kafka.py)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar

import msgspec
import pytest

from kes import (
    FORGOTTEN,
    Aggregate,
    Application,
    DataSubject,
    DomainError,
    LocalKeyEncryptionKey,
    MemoryEventStore,
    MemoryKeyRing,
    MemorySnapshotStore,
    NewEvent,
    SubjectForgottenError,
    UnknownSubjectError,
    Upcaster,
    event,
    personal,
)
from kes.envelope import RecordedEvent, decode, encode
from kes.projections import Projection
from kes.shredding import DataKeyUnavailableError, KeyEncryptionKeyError, PersonalDataError
from kes.shredding.kek import kek_from_env

NAME, EMAIL = "Jane Q. Example", "jane.q@example.org"


class PlanError(DomainError):
    pass


class Member(Aggregate, id_field="member_id"):
    """The aggregate is the data subject: its id is the subject id."""

    @event("MemberJoined")
    def __init__(
        self,
        member_id: str,
        name: Annotated[str, personal()],
        email: Annotated[str, personal()],
        plan: str = "free",
    ) -> None:
        self.name = name
        self.email = email
        self.plan = plan
        self.active = True

    @event("EmailChanged")
    def change_email(self, email: Annotated[str, personal()]) -> None:
        self.email = email

    def upgrade(self) -> None:
        if not self.active:
            raise PlanError(f"member {self.id} left; cannot upgrade")
        if self.plan == "pro":
            raise PlanError(f"member {self.id} is pro already")
        self._plan_changed("pro")

    @event("PlanChanged")
    def _plan_changed(self, plan: str) -> None:
        self.plan = plan

    @event("MemberLeft")
    def leave(self) -> None:
        self.active = False


class Order(Aggregate, id_field="order_id"):
    """Personal data of another subject than the aggregate: the customer."""

    @event("OrderPlaced")
    def __init__(
        self,
        order_id: str,
        customer_id: str,
        ship_to: Annotated[str, personal("customer_id")],
        total: int,
    ) -> None:
        self.customer_id = customer_id
        self.ship_to = ship_to
        self.total = total


@pytest.fixture
def kek() -> LocalKeyEncryptionKey:
    return LocalKeyEncryptionKey(os.urandom(32))


@pytest.fixture
def keys(kek: LocalKeyEncryptionKey) -> MemoryKeyRing:
    return MemoryKeyRing(kek)


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def app(store: MemoryEventStore, keys: MemoryKeyRing) -> Application:
    return Application(store, snapshots=MemorySnapshotStore(), keys=keys)


def joined(app: Application, member_id: str = "m-1") -> Member:
    member = Member(member_id, NAME, EMAIL)
    member.change_email("second." + EMAIL)
    app.save(member)
    return member


def raw_bytes(store: MemoryEventStore, aggregate_type: str, aggregate_id: str) -> bytes:
    return b"".join(encode(e.envelope) for e in store.read_stream(aggregate_type, aggregate_id))


# ---- on the wire -----------------------------------------------------------------------------


def test_personal_fields_reach_the_store_only_encrypted(
    app: Application, store: MemoryEventStore
) -> None:
    joined(app)
    stored = raw_bytes(store, "Member", "m-1")
    assert NAME.encode() not in stored and EMAIL.encode() not in stored
    first = json.loads(encode(store.read_stream("Member", "m-1")[0].envelope))
    # What a reader without kes sees: the other fields, and which fields are protected,
    # for whom, under which key, and the ciphertext.
    assert first["payload"] == {"memberId": "m-1", "plan": "free"}
    (sealed,) = first["personal"]
    assert sealed["subject"] == "m-1"
    assert sealed["fields"] == {"name": FORGOTTEN, "email": FORGOTTEN}
    assert len(sealed["keyId"]) == 16
    data = base64.b64decode(sealed["data"])
    plaintext = json.dumps({"name": NAME, "email": EMAIL}, separators=(",", ":")).encode()
    assert len(data) == 12 + len(plaintext) + 16  # nonce, ciphertext, GCM tag


def test_events_without_personal_fields_keep_the_envelope_unchanged(
    app: Application, store: MemoryEventStore
) -> None:
    member = joined(app)
    member.upgrade()
    app.save(member)
    plan_changed = store.read_stream("Member", "m-1")[2]
    assert b'"personal"' not in encode(plan_changed.envelope)


def test_aggregate_loads_plaintext_and_after_forget_placeholders_with_all_else_intact(
    app: Application, store: MemoryEventStore
) -> None:
    joined(app)
    loaded = app.get(Member, "m-1")
    assert (loaded.name, loaded.email, loaded.plan) == (NAME, "second." + EMAIL, "free")
    before = store.read_stream("Member", "m-1")

    assert app.forget("m-1") is True

    after = store.read_stream("Member", "m-1")
    assert [(e.event_id, e.version, e.payload) for e in after] == [
        (e.event_id, e.version, e.payload) for e in before
    ]
    forgotten = app.get(Member, "m-1")
    assert (forgotten.name, forgotten.email) == (FORGOTTEN, FORGOTTEN)
    assert (forgotten.plan, forgotten.active, forgotten.version) == ("free", True, 2)
    assert app.get(Member, "m-1", version=1).email == FORGOTTEN


def test_business_rules_still_work_on_a_forgotten_aggregate(app: Application) -> None:
    joined(app)
    app.forget("m-1")
    app.update(Member, "m-1", Member.upgrade)
    assert app.get(Member, "m-1").plan == "pro"
    with pytest.raises(PlanError, match="pro already"):
        app.get(Member, "m-1").upgrade()
    member = app.get(Member, "m-1")
    member.leave()
    app.save(member)
    with pytest.raises(PlanError, match="left"):
        app.get(Member, "m-1").upgrade()


def test_forget_records_subject_forgotten(app: Application, store: MemoryEventStore) -> None:
    joined(app)
    app.forget("m-1")
    (recorded,) = store.read_stream("DataSubject", "m-1")
    assert recorded.event_type == "SubjectForgotten"
    assert recorded.payload["subjectId"] == "m-1" and len(recorded.payload["keyIds"]) == 1
    assert app.get(DataSubject, "m-1").forgotten


def test_forgetting_twice_is_a_no_op(
    app: Application, store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    joined(app)
    assert app.forget("m-1") is True
    events_before = len(store.read_stream("DataSubject", "m-1"))
    assert app.forget("m-1") is False
    assert len(store.read_stream("DataSubject", "m-1")) == events_before == 1
    assert keys.forget("m-1") == []


def test_forgetting_an_unknown_subject_is_a_clear_error(
    app: Application, store: MemoryEventStore
) -> None:
    joined(app)
    with pytest.raises(UnknownSubjectError, match="'nobody' has no data key") as err:
        app.forget("nobody")
    assert isinstance(err.value, LookupError)
    assert store.stream_version("DataSubject", "nobody") == 0


def test_new_personal_data_of_a_forgotten_subject_is_refused_and_nothing_written(
    app: Application, store: MemoryEventStore
) -> None:
    joined(app)
    app.forget("m-1")
    member = app.get(Member, "m-1")
    member.change_email("back@example.org")
    with pytest.raises(SubjectForgottenError, match="'m-1' was forgotten"):
        app.save(member)
    assert store.stream_version("Member", "m-1") == 2
    with pytest.raises(SubjectForgottenError):
        app.save(Member("m-1-again", "x", "y"), Order("o-9", "m-1", "1 Road", 5))
    assert store.stream_version("Order", "o-9") == 0


def test_an_application_without_keys_refuses_personal_aggregates_before_writing(
    store: MemoryEventStore,
) -> None:
    app = Application(store)
    with pytest.raises(KeyEncryptionKeyError, match=r"Member declares personal fields"):
        app.save(Member("m-1", NAME, EMAIL))
    ring_without_kek = MemoryKeyRing(None)
    with pytest.raises(KeyEncryptionKeyError, match="KES_KEK_FILE"):
        Application(store, keys=ring_without_kek).get(Member, "m-1")
    assert store.stream_version("Member", "m-1") == 0


def test_a_ring_without_a_kek_writes_nothing_and_reads_forgotten_fields(
    app: Application, store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    joined(app)
    keys.forget("m-1")
    no_kek = MemoryKeyRing(None)
    with pytest.raises(KeyEncryptionKeyError, match="none is configured"):
        no_kek.key_for_write("someone")
    sealed = store.read_stream("Member", "m-1")[0].envelope
    assert keys.reveal(sealed).payload["email"] == FORGOTTEN


def test_the_subject_can_be_another_field(app: Application, store: MemoryEventStore) -> None:
    app.save(Order("o-1", "c-7", "7 Privet Drive", 120))
    (placed,) = store.read_stream("Order", "o-1")
    assert placed.envelope.personal and placed.envelope.personal[0].subject == "c-7"
    assert app.get(Order, "o-1").ship_to == "7 Privet Drive"
    app.forget("c-7")
    order = app.get(Order, "o-1")
    assert (order.ship_to, order.customer_id, order.total) == (FORGOTTEN, "c-7", 120)


# ---- snapshots and cache ---------------------------------------------------------------------


def test_snapshots_hold_no_plaintext_and_are_removed_on_forget(
    store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    snapshots = MemorySnapshotStore()
    app = Application(store, snapshots=snapshots, keys=keys, snapshot_every={"Member": 2})
    joined(app)
    raw = snapshots._data[("Member", "m-1")]
    assert NAME.encode() not in raw and b"second" not in raw
    assert snapshots.get("Member", "m-1") is not None
    assert app.get(Member, "m-1").name == NAME  # opened with the key
    app.forget("m-1")
    assert snapshots.get("Member", "m-1") is None


def test_a_sealed_snapshot_of_a_forgotten_subject_is_ignored_and_deleted(
    store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    snapshots = MemorySnapshotStore()
    app = Application(store, snapshots=snapshots, keys=keys, snapshot_every={"Member": 2})
    joined(app)
    kept = snapshots._data[("Member", "m-1")]
    app.forget("m-1")
    snapshots._data[("Member", "m-1")] = kept  # a store that could not find it
    other = Application(store, snapshots=snapshots, keys=keys)
    assert other.get(Member, "m-1").email == FORGOTTEN
    assert snapshots.get("Member", "m-1") is None


def test_cached_aggregates_of_a_forgotten_subject_are_dropped_in_every_application(
    store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    app, other = Application(store, keys=keys), Application(store, keys=keys)
    joined(app)
    assert other.get(Member, "m-1").name == NAME  # cached in the other application
    stale = other.get(Member, "m-1")
    app.forget("m-1")
    assert other.get(Member, "m-1").name == FORGOTTEN
    stale.upgrade()  # a copy loaded before: its save works, but it is not cached again
    other.save(stale)
    assert other.get(Member, "m-1").name == FORGOTTEN


# ---- keys ------------------------------------------------------------------------------------


def test_a_replay_unwraps_each_key_once_and_the_cache_is_bounded(
    store: MemoryEventStore, kek: LocalKeyEncryptionKey
) -> None:
    keys = MemoryKeyRing(kek, cache_size=2)
    app = Application(store, keys=keys, cache_size=0)
    member = Member("m-1", NAME, EMAIL)
    for i in range(50):
        member.change_email(f"{i}.{EMAIL}")
    app.save(member)
    for i in range(2, 5):
        app.save(Member(f"m-{i}", NAME, EMAIL))
    keys._cache.clear()
    keys.unwraps = 0
    assert app.get(Member, "m-1").email == f"49.{EMAIL}"  # 51 encrypted events
    assert keys.unwraps == 1
    for i in range(1, 5):
        app.get(Member, f"m-{i}")
    assert len(keys._cache) == 2


def test_a_wrong_kek_is_refused_by_name_and_cannot_unwrap(
    app: Application, keys: MemoryKeyRing
) -> None:
    joined(app)
    keys.check_kek()  # the KEK that wrapped the keys passes
    other = MemoryKeyRing(LocalKeyEncryptionKey(os.urandom(32)))
    other._keys = keys._keys  # the same stored keys, another KEK
    with pytest.raises(KeyEncryptionKeyError, match="wrapped by key-encryption key local:"):
        other.check_kek()
    (key,) = keys.keys_of("m-1")
    with pytest.raises(KeyEncryptionKeyError, match="cannot unwrap"):
        LocalKeyEncryptionKey(os.urandom(32)).unwrap(key.wrapped, b"context")


def test_a_missing_key_of_a_subject_never_forgotten_is_an_error_not_a_placeholder(
    app: Application, keys: MemoryKeyRing
) -> None:
    joined(app)
    keys._keys.clear()
    keys._cache.clear()
    with pytest.raises(DataKeyUnavailableError, match="never forgotten"):
        app.get(Member, "m-1", version=2)  # not from the cache


def test_a_ciphertext_copied_into_another_event_does_not_decrypt(
    app: Application, store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    joined(app)
    first, second = (e.envelope for e in store.read_stream("Member", "m-1"))
    assert first.personal and second.personal
    forged = msgspec.structs.replace(second, personal=first.personal)
    with pytest.raises(PersonalDataError, match="altered or copied"):
        keys.reveal(forged)


def test_kek_from_env_reads_a_file_or_base64_and_fails_loudly(tmp_path: Path) -> None:
    secret = os.urandom(32)
    raw, text = tmp_path / "raw", tmp_path / "b64"
    raw.write_bytes(secret)
    text.write_text(base64.b64encode(secret).decode() + "\n")
    one = kek_from_env({"KES_KEK_FILE": str(raw)})
    assert one is not None and one.key_id == LocalKeyEncryptionKey(secret).key_id
    two = kek_from_env({"KES_KEK_FILE": str(text)})
    assert two is not None and two.key_id == one.key_id
    three = kek_from_env({"KES_KEK": base64.b64encode(secret).decode()})
    assert three is not None and three.key_id == one.key_id
    assert kek_from_env({}) is None
    with pytest.raises(KeyEncryptionKeyError, match="cannot read the key-encryption key file"):
        kek_from_env({"KES_KEK_FILE": str(tmp_path / "missing")})
    with pytest.raises(KeyEncryptionKeyError, match="must be 32"):
        kek_from_env({"KES_KEK": base64.b64encode(b"short").decode()})
    with pytest.raises(KeyEncryptionKeyError, match="neither 32 raw bytes nor base64"):
        kek_from_env({"KES_KEK": "not base64 !"})
    with pytest.raises(KeyEncryptionKeyError, match="set only one"):
        kek_from_env({"KES_KEK": "x", "KES_KEK_FILE": "y"})


# ---- the domain declaration ------------------------------------------------------------------


def test_declarations_that_cannot_work_fail_at_class_definition() -> None:
    with pytest.raises(TypeError, match="'buyer', which is not a field"):

        class A(Aggregate):
            @event("Placed")
            def __init__(self, id: str, note: Annotated[str, personal("buyer")]) -> None:
                pass

    with pytest.raises(TypeError, match="needs a placeholder"):

        class B(Aggregate):
            @event("Born")
            def __init__(self, id: str, year: Annotated[int, personal()]) -> None:
                pass

    with pytest.raises(TypeError, match="placeholder 'x' of personal field 'year'"):

        class C(Aggregate):
            @event("Born")
            def __init__(self, id: str, year: Annotated[int, personal(placeholder="x")]) -> None:
                pass


def test_placeholders_follow_the_field_type() -> None:
    class Patient(Aggregate):
        @event("Admitted")
        def __init__(
            self,
            id: str,
            note: Annotated[str | None, personal()],
            year: Annotated[int, personal(placeholder=0)],
        ) -> None:
            self.note, self.year = note, year

    (group,) = Patient.personal_fields()["Admitted"].groups
    assert group.placeholders == {"note": None, "year": 0}


class Legacy(Aggregate):
    """v1 wrote ``fullName``; v2 has first and last name, both personal."""

    upcasters: ClassVar[Mapping[tuple[str, int], Upcaster]] = {
        ("Registered", 1): lambda p: {
            "id": p["id"],
            "first": p["fullName"].split(" ")[0],
            "last": p["fullName"].split(" ")[-1],
        }
    }

    @event("Registered", schema_version=2)
    def __init__(
        self, id: str, first: Annotated[str, personal()], last: Annotated[str, personal()]
    ) -> None:
        self.first, self.last = first, last


def test_upcasters_and_validators_see_plaintext_and_placeholders(
    store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    seen: list[dict[str, Any]] = []
    app = Application(
        store, keys=keys, validator=lambda cls, evs: seen.extend(dict(e.payload) for e in evs)
    )
    app.save(Legacy("l-2", "Ada", "Lovelace"))
    assert seen == [{"id": "l-2", "first": "Ada", "last": "Lovelace"}]  # before encryption
    # an old v1 event, written by a kes that sealed fullName for subject l-1
    key_id = keys.key_for_write("l-1")[0]
    v1 = keys.seal(
        _v1_fields(),
        "l-1",
        NewEvent(event_type="Registered", payload={"id": "l-1", "fullName": "Grace Hopper"}),
    )
    assert v1.personal and v1.personal[0].key_id == key_id
    store.append("Legacy", "l-1", [v1], 0)
    assert (app.get(Legacy, "l-1").first, app.get(Legacy, "l-1").last) == ("Grace", "Hopper")
    app.forget("l-1")
    assert app.get(Legacy, "l-1").first == FORGOTTEN  # the upcaster split the placeholder


def _v1_fields() -> Any:
    from kes.personal import FieldGroup, PersonalFields

    return PersonalFields("Registered", (FieldGroup(None, {"fullName": FORGOTTEN}),))


# ---- readers other than the repository -------------------------------------------------------


class Directory(Projection):
    name = "directory"
    aggregates = (Member, DataSubject)

    def __init__(self) -> None:
        super().__init__()
        self.emails: dict[str, str] = {}

    def on_MemberJoined(self, event: Any) -> None:
        self.emails[event.aggregate_id] = event.data.email

    def on_SubjectForgotten(self, event: Any) -> None:
        self.emails.pop(event.aggregate_id, None)


def _feed(projection: Projection, events: list[RecordedEvent]) -> None:
    for e in events:
        if e.event_type in projection.handlers:
            projection.handlers[e.event_type](projection.event_for(e.envelope, e.position))


def test_projections_get_plaintext_then_placeholders_and_a_forget_hook(
    app: Application, store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    joined(app)
    live = Directory()
    live.key_ring = keys
    _feed(live, store.read_stream("Member", "m-1"))
    assert live.emails == {"m-1": EMAIL}
    app.forget("m-1")
    _feed(live, store.read_stream("DataSubject", "m-1"))
    assert live.emails == {}  # the read model erased its copy
    rebuilt = Directory()
    rebuilt.key_ring = keys
    _feed(rebuilt, store.read_stream("Member", "m-1"))
    assert rebuilt.emails == {"m-1": FORGOTTEN}
    with pytest.raises(KeyEncryptionKeyError, match="no key ring"):
        _feed(Directory(), store.read_stream("Member", "m-1"))


def test_pipelines_get_plaintext_then_placeholders(
    app: Application, store: MemoryEventStore, keys: MemoryKeyRing
) -> None:
    from kes.streams.source import EventDeserializer

    joined(app)
    value = encode(store.read_stream("Member", "m-1")[0].envelope)
    deserialize = EventDeserializer([Member], keys)
    assert deserialize(value, None)["payload"]["email"] == EMAIL  # type: ignore[arg-type, index]
    app.forget("m-1")
    assert deserialize(value, None)["payload"]["name"] == FORGOTTEN  # type: ignore[arg-type, index]
    with pytest.raises(KeyEncryptionKeyError):
        EventDeserializer([Member])(value, None)  # type: ignore[arg-type]


def test_decode_of_a_record_written_before_personal_fields_existed_is_unchanged() -> None:
    old = (
        b'{"eventId":"e","eventType":"T","timestamp":"2024-01-01T00:00:00Z","aggregateType":"A",'
        b'"aggregateId":"a","version":1,"schemaVersion":1,"payload":{"x":1},"metadata":{}}'
    )
    env = decode(old)
    assert not env.personal and encode(env) == old


def test_the_documented_wire_format_of_personal_fields_is_what_kes_reads() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "wire-format.md").read_text()
    section = doc[doc.index("## Personal data") :]
    block = section[section.index("```json") + len("```json") : section.index("```\n\n|")]
    env = decode(block.encode())
    assert env.payload == {"userId": "jdoe-1", "username": "jdoe"}
    assert env.personal and env.personal[0].fields == {"email": FORGOTTEN}
    plaintext = b'{"email":"jdoe@example.com"}'
    assert len(env.personal[0].data) == 12 + len(plaintext) + 16


def test_forwarded_appends_carry_the_sealed_fields_unchanged(
    app: Application, keys: MemoryKeyRing
) -> None:
    from kes.store.kafka._routing import AppendCall, call_decoder, encoder

    (created,) = Member("m-1", NAME, EMAIL).collect_events()
    sealed = keys.seal(Member.personal_fields()["MemberJoined"], "m-1", created)
    call = AppendCall("id", "reply", 1.0, "Member", "m-1", 0, [sealed])
    raw = encoder.encode(call)
    assert EMAIL.encode() not in raw
    decoded = call_decoder.decode(raw)
    assert isinstance(decoded, AppendCall) and decoded.events == [sealed]
