"""Application and Repository on the memory store: loading, saving, time travel, cache."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from examples.users.domain import User, UserDeactivatedError

from kes.application import Application, Repository, retry_on_conflict
from kes.envelope import NewEvent
from kes.errors import (
    AggregateNotFoundError,
    ConcurrencyError,
    InvalidInputError,
    StreamExistsError,
)
from kes.snapshots import MemorySnapshotStore
from kes.store import ANY, AppendResult, MemoryEventStore
from kes.store.base import Expected

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Clock:
    """Each call returns the next minute after T0."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return T0 + timedelta(minutes=self.calls)


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def app(store: MemoryEventStore) -> Application:
    return Application(store, clock=Clock())


def history(app: Application, changes: int = 5) -> User:
    """A user created and saved, then ``changes`` emails, each saved on its own."""
    user = User("u1", "jdoe", "e0@example.com")
    app.save(user)
    for i in range(1, changes + 1):
        user.change_email(f"e{i}@example.com")
        app.save(user)
    return user


def test_saved_aggregate_loads_with_the_same_state(app: Application) -> None:
    user = history(app, 3)
    loaded = app.get(User, "u1")
    assert vars(loaded) == vars(user) and loaded.version == 4
    assert user.pending_events == ()


def test_user_created_is_stored_with_the_article_payload_fields(
    app: Application, store: MemoryEventStore
) -> None:
    app.save(User("u1", "jdoe", "jdoe@example.com"))
    (created,) = store.read_stream("User", "u1")
    assert created.event_type == "UserCreated"
    assert created.payload == {"userId": "u1", "username": "jdoe", "email": "jdoe@example.com"}


def test_state_at_version_k_equals_replay_of_first_k_events(app: Application) -> None:
    history(app, 5)
    for k in range(1, 7):
        at_k = app.get(User, "u1", version=k)
        assert at_k.version == k
        assert at_k.email == f"e{k - 1}@example.com"


def test_state_at_a_time_is_the_state_after_the_last_event_at_or_before_it(
    app: Application,
) -> None:
    history(app, 3)  # events stamped T0+1min .. T0+4min
    assert app.get(User, "u1", at=T0 + timedelta(minutes=1)).version == 1
    assert app.get(User, "u1", at=T0 + timedelta(minutes=2, seconds=30)).email == "e1@example.com"
    assert app.get(User, "u1", at=T0 + timedelta(days=1)).version == 4


def test_explicit_event_timestamps_drive_time_travel(store: MemoryEventStore) -> None:
    app = Application(store)
    events = [
        NewEvent(
            event_type="UserCreated",
            payload={"userId": "u9", "username": "a", "email": "a@x"},
            timestamp=T0,
        ),
        NewEvent(event_type="UserRenamed", payload={"username": "b"}, timestamp=T0 + timedelta(1)),
    ]
    store.append("User", "u9", events, ANY)
    assert app.get(User, "u9", at=T0 + timedelta(hours=1)).username == "a"
    assert app.get(User, "u9", at=T0 + timedelta(days=1)).username == "b"


def test_missing_aggregate_or_state_raises_aggregate_not_found(app: Application) -> None:
    with pytest.raises(AggregateNotFoundError, match="does not exist"):
        app.get(User, "nobody")
    with pytest.raises(AggregateNotFoundError, match="does not exist"):
        app.update(User, "nobody", lambda u: u.change_email("x@y"))
    history(app, 1)
    with pytest.raises(AggregateNotFoundError, match="no version 3"):
        app.get(User, "u1", version=3)
    with pytest.raises(AggregateNotFoundError, match="did not exist yet"):
        app.get(User, "u1", at=T0)
    with pytest.raises(InvalidInputError):
        app.get(User, "u1", version=0)
    with pytest.raises(InvalidInputError):
        app.get(User, "u1", at=datetime(2024, 1, 1))


def test_command_on_deactivated_user_raises_typed_error_and_writes_nothing(
    app: Application, store: MemoryEventStore
) -> None:
    user = history(app, 1)
    user.deactivate("left")
    app.save(user)
    loaded = app.get(User, "u1")
    with pytest.raises(UserDeactivatedError, match="deactivated"):
        loaded.change_email("new@example.com")
    assert loaded.pending_events == ()
    app.save(loaded)
    assert store.stream_version("User", "u1") == 3


def test_stale_save_raises_concurrency_error_and_writes_nothing(
    app: Application, store: MemoryEventStore
) -> None:
    history(app, 1)
    first, second = app.get(User, "u1"), app.get(User, "u1")
    first.rename("alice")
    app.save(first)
    second.rename("bob")
    with pytest.raises(ConcurrencyError):
        app.save(second)
    assert store.stream_version("User", "u1") == 3
    assert app.get(User, "u1").username == "alice"
    assert len(second.pending_events) == 1  # kept, so the caller can inspect or retry


def test_new_aggregate_with_existing_id_conflicts(app: Application) -> None:
    history(app, 0)
    with pytest.raises(ConcurrencyError):
        app.save(User("u1", "other", "o@x"))


def test_loaded_copies_cannot_corrupt_the_cache(app: Application) -> None:
    history(app, 1)
    loaded = app.get(User, "u1")
    loaded.email = "corrupted"
    loaded.rename("unsaved")
    again = app.get(User, "u1")
    assert (again.email, again.username, again.version) == ("e1@example.com", "jdoe", 2)


def test_cache_stays_consistent_after_saves_and_after_a_conflict(
    app: Application, store: MemoryEventStore
) -> None:
    repo = app.repository(User)
    history(app, 1)
    a = app.get(User, "u1")
    a.rename("alice")
    app.save(a)
    a.rename("alice2")  # the caller keeps changing its object after the save
    assert app.get(User, "u1").username == "alice"
    other = Application(store)  # another process writes behind this cache
    b = other.get(User, "u1")
    b.rename("bob")
    other.save(b)
    assert app.get(User, "u1").username == "bob"  # cache hit catches up
    with pytest.raises(ConcurrencyError):
        app.save(a)
    assert "u1" not in repo._cache
    assert app.get(User, "u1").username == "bob"


def test_cache_is_bounded_lru(store: MemoryEventStore) -> None:
    repo = Repository(store, User, cache_size=2)
    app = Application(store)
    for i in range(3):
        app.save(User(f"u{i}", "n", "e@x"))
    for i in range(3):
        repo.get(f"u{i}")
    assert list(repo._cache) == ["u1", "u2"]
    repo.get("u1")
    assert list(repo._cache) == ["u2", "u1"]


def test_snapshots_are_taken_every_n_events_and_used_for_loads(store: MemoryEventStore) -> None:
    snaps = MemorySnapshotStore()
    app = Application(store, snapshots=snaps, snapshot_every={"User": 2}, clock=Clock())
    history(app, 4)  # versions 1..5 saved one by one
    assert snaps.puts == 2
    snap = snaps.get("User", "u1")
    assert snap is not None and snap.version == 4
    reads: list[int] = []
    read_stream = store.read_stream

    def counted(aggregate_type: str, aggregate_id: str, from_version: int = 1, *rest: Any) -> Any:
        reads.append(from_version)
        return read_stream(aggregate_type, aggregate_id, from_version, *rest)

    fresh = Application(store, snapshots=snaps, cache_size=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "read_stream", counted)
        loaded = fresh.get(User, "u1")
    assert reads == [5], "the load replayed events the snapshot holds"
    assert vars(loaded) == vars(app.get(User, "u1"))
    assert fresh.get(User, "u1", version=3).email == "e2@example.com"  # before the snapshot
    assert fresh.get(User, "u1", at=T0 + timedelta(minutes=2)).version == 2


def test_snapshot_of_another_class_version_is_ignored(store: MemoryEventStore) -> None:
    snaps = MemorySnapshotStore()
    app = Application(store, snapshots=snaps, snapshot_every={"User": 1})
    history(app, 1)

    class UserV2(User, aggregate_type="User"):
        snapshot_version = 2

    snap = snaps.get("User", "u1")
    assert snap is not None
    snaps.put(msgspec.structs.replace(snap, state={**snap.state, "email": "bogus"}))
    assert app.get(User, "u1").email == "e1@example.com"  # cached
    assert Application(store, snapshots=snaps).get(UserV2, "u1").email == "e1@example.com"
    assert Application(store, snapshots=snaps).get(User, "u1").email == "bogus"


def test_save_adds_metadata_and_is_a_no_op_without_pending_events(
    app: Application, store: MemoryEventStore
) -> None:
    user = User("u1", "jdoe", "e@x")
    app.save(user, metadata={"correlationId": "c1"})
    app.save(user)
    (created,) = store.read_stream("User", "u1")
    assert created.metadata == {"correlationId": "c1"}


class ConflictingStore(MemoryEventStore):
    """Lets another writer slip in an event before each of the first ``n`` appends."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.appends = 0

    def append(
        self, aggregate_type: str, aggregate_id: str, events: Sequence[NewEvent], expected: Expected
    ) -> AppendResult:
        self.appends += 1
        if self.n > 0 and self.stream_version(aggregate_type, aggregate_id) > 0:
            self.n -= 1
            rename = NewEvent(event_type="UserRenamed", payload={"username": f"x{self.n}"})
            super().append(aggregate_type, aggregate_id, [rename], ANY)
        return super().append(aggregate_type, aggregate_id, events, expected)


def test_update_retries_conflicts_then_succeeds() -> None:
    store = ConflictingStore(n=2)
    app = Application(store)
    app.save(User("u1", "jdoe", "e@x"))

    def change(user: User) -> int:
        user.change_email("new@x")
        return user.version

    result = app.update(User, "u1", change, attempts=3)
    assert result == 4  # created + two interfering renames + the change
    assert app.get(User, "u1").email == "new@x"


def test_update_gives_up_after_the_last_attempt_and_writes_nothing_of_its_own() -> None:
    store = ConflictingStore(n=10)
    app = Application(store)
    app.save(User("u1", "jdoe", "e@x"))
    with pytest.raises(ConcurrencyError):
        app.update(User, "u1", lambda u: u.change_email("new@x"), attempts=3)
    assert app.get(User, "u1").email == "e@x"
    assert store.appends == 4


def test_retry_on_conflict_decorator_reruns_the_function() -> None:
    calls: list[int] = []

    @retry_on_conflict(attempts=3)
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrencyError("User", "u1", 1, 2)
        return "done"

    assert flaky() == "done" and len(calls) == 3
    with pytest.raises(InvalidInputError):
        retry_on_conflict(attempts=0)


def test_repository_contains_reports_existing_aggregates(app: Application) -> None:
    history(app, 0)
    assert "u1" in app.repository(User) and "u2" not in app.repository(User)


def test_update_pauses_between_tries_with_the_policy_of_retry_on_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("kes.application.time.sleep", pauses.append)
    store = ConflictingStore(n=3)
    app = Application(store)
    app.save(User("u1", "jdoe", "e@x"))
    app.update(User, "u1", lambda u: u.change_email("new@x"), backoff=0.1)
    assert len(pauses) == 3  # one before each new try
    for i, pause in enumerate(pauses):  # doubling, jittered between half and all
        assert 0.1 * 2**i / 2 <= pause <= 0.1 * 2**i
    pauses.clear()

    @retry_on_conflict(attempts=2, backoff=0.1)
    def conflicting() -> None:
        raise ConcurrencyError("User", "u1", 1, 2)

    with pytest.raises(ConcurrencyError):
        conflicting()
    assert len(pauses) == 1 and 0.05 <= pauses[0] <= 0.1
    pauses.clear()
    store.n = 1
    app.update(User, "u1", lambda u: u.change_email("again@x"))  # the default policy pauses
    assert len(pauses) == 1 and pauses[0] > 0


def test_creating_an_existing_aggregate_says_it_exists_and_is_not_retried(
    app: Application, store: MemoryEventStore
) -> None:
    app.save(User("u1", "jdoe", "e@x"))
    tries: list[int] = []

    @retry_on_conflict(attempts=5)
    def create() -> None:
        tries.append(1)
        app.save(User("u1", "other", "o@x"))

    with pytest.raises(StreamExistsError) as info:
        create()
    assert len(tries) == 1  # a retry cannot help: not retried
    assert "'u1' already exists" in str(info.value)
    assert "retry the command" not in str(info.value)
    assert app.get(User, "u1").username == "jdoe"
