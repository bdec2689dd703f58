"""KafkaSnapshotStore against a real broker: round trip, tombstones, and that snapshots
never change what a Repository loads (with or without the topic)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from examples.users.domain import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kes.application import Repository
from kes.kafka.topics import Topics
from kes.snapshots import Snapshot
from kes.store.kafka import KafkaConfig, KafkaEventStore, KafkaSnapshotStore
from kes.store.kafka.snapshots import snapshot_topic
from kes.testing import SnapshotStoreContract

pytestmark = pytest.mark.kafka


@pytest.fixture
def snapshots(kafka_config: KafkaConfig) -> Iterator[KafkaSnapshotStore]:
    store = KafkaSnapshotStore(kafka_config)
    yield store
    store.close()


def snap(agg_id: str, version: int, email: str = "a@example.com") -> Snapshot:
    return Snapshot(
        aggregate_type="User",
        aggregate_id=agg_id,
        version=version,
        state={"username": "jdoe", "email": email, "active": True},
        timestamp=datetime(2024, 1, 1, tzinfo=UTC),
    )


def delete_topic(config: KafkaConfig, name: str) -> None:
    topics = Topics(config)
    topics.delete([name])
    deadline = time.monotonic() + 30
    while topics.describe(name) is not None and time.monotonic() < deadline:
        time.sleep(0.1)


def test_topic_is_compacted_and_outside_the_event_prefix(
    snapshots: KafkaSnapshotStore, kafka_config: KafkaConfig
) -> None:
    snapshots.put(snap("u1", 3))
    assert snapshots.topic == snapshot_topic(kafka_config)
    assert not snapshots.topic.startswith(kafka_config.events_prefix)
    info = Topics(kafka_config).describe(snapshots.topic)
    assert info is not None and info.configs["cleanup.policy"] == "compact"
    assert info.partitions == kafka_config.partitions
    assert snapshot_topic(KafkaConfig(topic_prefix="kes.events.")) == "kes.snapshots.kes.events"
    assert snapshot_topic(KafkaConfig(topic_prefix="")) == "kes.snapshots"


def test_round_trip_and_a_second_process_sees_it(
    snapshots: KafkaSnapshotStore, kafka_config: KafkaConfig
) -> None:
    assert snapshots.get("User", "u1") is None
    snapshots.put(snap("u1", 5))
    snapshots.put(snap("u1", 10, email="b@example.com"))
    snapshots.put(snap("u1", 7))  # older than what is held: ignored
    got = snapshots.get("User", "u1")
    assert got == snap("u1", 10, email="b@example.com")
    with KafkaSnapshotStore(kafka_config) as other:  # reads the topic from the start
        assert other.get("User", "u1") == got
        assert other.loaded_records >= 2 and other.load_seconds is not None
        snapshots.put(snap("u2", 3))
        deadline = time.monotonic() + 10
        while other.get("User", "u2") is None and time.monotonic() < deadline:
            time.sleep(0.02)  # followed by the background consumer
        assert other.get("User", "u2") == snap("u2", 3)


def test_delete_writes_a_tombstone(
    snapshots: KafkaSnapshotStore, kafka_config: KafkaConfig
) -> None:
    snapshots.put(snap("u1", 5))
    snapshots.put(snap("u2", 5))
    snapshots.delete("User", "u1")
    assert snapshots.get("User", "u1") is None
    assert snapshots.get("User", "u2") is not None
    with KafkaSnapshotStore(kafka_config) as fresh:
        assert fresh.get("User", "u1") is None
        assert fresh.get("User", "u2") == snap("u2", 5)
        assert len(fresh) == 1
    snapshots.put(snap("u1", 2))  # after a tombstone any version is accepted again
    assert snapshots.get("User", "u1") == snap("u1", 2)


# A history: the user is created, then each step renames (0), changes the email (1) or
# deactivates it (2, which ends the history).
steps = st.lists(st.integers(0, 2), min_size=0, max_size=17)


def play(user: User, step: int, i: int) -> None:
    if step == 0:
        user.rename(f"name{i}")
    elif step == 1:
        user.change_email(f"e{i}@example.com")
    else:
        user.deactivate(f"reason {i}")


def state(user: User) -> tuple[int, dict[str, object]]:
    return user.version, dict(vars(user))


def load(repo: Repository[User], agg_id: str, version: int | None = None) -> User:
    return repo.get(agg_id, version=version)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories=st.lists(steps, min_size=1, max_size=3))
def test_snapshots_never_change_what_loads(
    kafka_store: KafkaEventStore, snapshots: KafkaSnapshotStore, histories: list[list[int]]
) -> None:
    plain = Repository(kafka_store, User, cache_size=0)
    snapped = Repository(kafka_store, User, snapshots, snapshot_every=5, cache_size=0)
    ids = []
    for steps_ in histories:
        user = User(str(uuid.uuid4()), "jdoe", "e@example.com")
        snapped.save(user)
        for i, step in enumerate(steps_):
            if not user.active:
                break
            play(user, step, i)
            snapped.save(user)  # one save per event: every 5th leaves a snapshot
        ids.append(user.id)
        expected = state(load(plain, user.id))
        assert state(load(snapped, user.id)) == expected == state(user)
        if user.version >= 5:
            held = snapshots.get("User", user.id)
            assert held is not None and held.version == user.version // 5 * 5
        for v in range(1, user.version + 1):  # every earlier version, too
            assert state(load(snapped, user.id, version=v)) == state(
                load(plain, user.id, version=v)
            )


def test_deleting_the_snapshot_topic_changes_no_loaded_result(
    kafka_store: KafkaEventStore, snapshots: KafkaSnapshotStore, kafka_config: KafkaConfig
) -> None:
    repo = Repository(kafka_store, User, snapshots, snapshot_every=5, cache_size=0)
    ids = []
    for n in (3, 7, 12):
        user = User(str(uuid.uuid4()), "jdoe", "e@example.com")
        for i in range(n):
            user.change_email(f"e{i}@example.com")
            repo.save(user)
        ids.append(user.id)
    before = {i: state(load(repo, i)) for i in ids}
    before_v = {i: state(load(repo, i, version=6)) for i in ids if before[i][0] >= 6}
    assert len(snapshots) == 2
    delete_topic(kafka_config, snapshots.topic)
    deadline = time.monotonic() + 15
    while len(snapshots) and time.monotonic() < deadline:
        time.sleep(0.1)  # the running store checks every few seconds that the topic exists
    assert len(snapshots) == 0

    # The running store notices and forgets; a fresh one finds (and re-creates) an empty topic.
    with KafkaSnapshotStore(kafka_config) as fresh:
        for store in (snapshots, fresh):
            again = Repository(kafka_store, User, store, snapshot_every=5, cache_size=0)
            assert {i: state(load(again, i)) for i in ids} == before
            assert {i: state(load(again, i, version=6)) for i in before_v} == before_v
        assert len(fresh) == 0
        user = load(repo, ids[0])  # saving again writes snapshots again
        user.change_email("new@example.com")
        user.change_email("newer@example.com")
        repo.save(user)
        deadline = time.monotonic() + 10
        while fresh.get("User", user.id) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        held = fresh.get("User", user.id)
        assert held is not None and held.version == 6
        assert state(load(repo, user.id)) == state(user)


class TestKafkaSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self, kafka_config: KafkaConfig) -> Iterator[KafkaSnapshotStore]:
        store = KafkaSnapshotStore(kafka_config)
        yield store
        store.close()
