"""The eventsourcing persistence module's own promises on real Kafka, beyond the library's
test cases: atomic inserts across originators, two processes (stores) on one log, a
fresh process rebuilding its index, and reads of rows no longer cached."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.utils import Environment

from kes.envelope import RecordedEvent
from kes.integrations.eventsourcing import (
    KafkaApplicationRecorder,
    KafkaFactory,
    KafkaProcessRecorder,
)
from kes.integrations.eventsourcing import _log as log_module
from kes.integrations.eventsourcing._shared import close_all, open_sessions
from tests.faults import read_topic

pytestmark = pytest.mark.kafka


@pytest.fixture
def env(bootstrap_servers: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {
        "KES_BOOTSTRAP_SERVERS": bootstrap_servers,
        "KES_NAMESPACE": "esk" + uuid.uuid4().hex[:8],
        "KES_INDEX_DIR": str(tmp_path / "index"),
        "KES_SESSION_TIMEOUT_MS": "6000",
    }
    close_all()


def recorder(env: dict[str, str], **extra: str) -> KafkaApplicationRecorder:
    """The application recorder of ``Shop``; different ``extra`` settings give another
    kes store, as another process would have (``KES_ROLE=client`` forwards everything)."""
    factory = KafkaFactory(Environment("Shop", {**env, **extra}))
    found = factory.application_recorder()
    assert isinstance(found, KafkaApplicationRecorder)
    return found


def event(originator: uuid.UUID, version: int, topic: str = "shop:Order.Placed") -> StoredEvent:
    return StoredEvent(originator, version, topic, b'{"n":%d}' % version)


def test_an_insert_spanning_two_originators_is_recorded_entirely_or_not_at_all(
    env: dict[str, str],
) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rec = recorder(env)
    assert rec.insert_events([event(a, 1), event(b, 1)]) == [1, 2]
    with pytest.raises(IntegrityError, match="version 1 is already recorded"):
        rec.insert_events([event(c, 1), event(b, 1)])
    assert rec.select_events(c) == []
    assert rec.max_notification_id() == 2
    raw = read_topic(env["KES_BOOTSTRAP_SERVERS"], f"{env['KES_NAMESPACE']}.events.Shop")
    assert len(raw) == 2


def test_a_second_process_sees_the_first_ones_inserts_and_cannot_record_over_them(
    env: dict[str, str],
) -> None:
    order = uuid.uuid4()
    first = recorder(env)
    second = recorder(env, KES_ROLE="client")  # another store: forwards to the owner
    assert open_sessions() == 2
    assert first.insert_events([event(order, 1)]) == [1]
    assert [e.originator_version for e in second.select_events(order)] == [1]
    with pytest.raises(IntegrityError):
        second.insert_events([event(order, 1)])
    assert second.insert_events([event(order, 2)]) == [2]
    assert first.insert_events([event(uuid.uuid4(), 1)]) == [3]  # first catches up first
    assert [e.originator_version for e in first.select_events(order)] == [1, 2]
    assert [n.id for n in second.select_notifications(None, 10)] == [1, 2, 3]


def test_concurrent_inserts_from_two_stores_are_numbered_without_gaps_each_insert_contiguous(
    env: dict[str, str],
) -> None:
    stores = [recorder(env), recorder(env, KES_ROLE="client")]
    returned: dict[uuid.UUID, list[int]] = {}
    errors: list[BaseException] = []

    def work(rec: KafkaApplicationRecorder) -> None:
        try:
            for _ in range(15):
                originator = uuid.uuid4()
                ids = rec.insert_events([event(originator, v) for v in (1, 2, 3)])
                assert ids is not None
                returned[originator] = list(ids)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in stores for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    notifications = stores[0].select_notifications(None, 1000)
    assert [n.id for n in notifications] == list(range(1, 6 * 15 * 3 + 1))
    for originator, ids in returned.items():
        assert ids == [ids[0], ids[0] + 1, ids[0] + 2]  # one insert, one contiguous run
        assert [n.originator_id for n in notifications[ids[0] - 1 : ids[-1]]] == [originator] * 3


@pytest.mark.parametrize("sequential", [True, False], ids=["partition read", "offset reads"])
def test_a_fresh_process_rebuilds_its_index_from_the_log(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, sequential: bool
) -> None:
    monkeypatch.setattr(log_module, "READ_CHUNK", 7)  # several reads while catching up
    monkeypatch.setattr(log_module, "BULK_FROM", 5 if sequential else 10**9)
    originators = [uuid.uuid4() for _ in range(10)]
    factory = KafkaFactory(Environment("Shop", env))
    process = factory.process_recorder()
    assert isinstance(process, KafkaProcessRecorder)
    for n, originator in enumerate(originators, start=1):
        process.insert_events(
            [event(originator, 1), event(originator, 2)], tracking=Tracking("Up", n)
        )
    factory.close()
    assert open_sessions() == 0

    again = KafkaFactory(Environment("Shop", env))  # a new store: nothing in memory
    reread = again.process_recorder()
    assert isinstance(reread, KafkaProcessRecorder)
    partition_reads: list[object] = []
    read_all = reread.log.store.read_all

    def counted(*args: Any) -> Iterator[RecordedEvent]:
        partition_reads.append(args)
        return read_all(*args)

    monkeypatch.setattr(reread.log.store, "read_all", counted)
    assert reread.max_notification_id() == 20
    assert len(partition_reads) == (1 if sequential else 0)
    assert reread.max_tracking_id("Up") == 10
    assert [e.originator_version for e in reread.select_events(originators[4])] == [1, 2]
    with pytest.raises(IntegrityError):
        reread.insert_events([event(uuid.uuid4(), 1)], tracking=Tracking("Up", 10))
    again.close()


def test_rows_no_longer_cached_are_read_back_from_kafka(env: dict[str, str]) -> None:
    rec = recorder(env, KES_EVENTSOURCING_CACHE_MB="0")
    a, b = uuid.uuid4(), uuid.uuid4()
    for v in range(1, 6):  # interleaved: a's events are not one run of the log
        rec.insert_events([event(a, v), event(b, v)])
    assert [e.originator_version for e in rec.select_events(a)] == [1, 2, 3, 4, 5]
    assert [e.state for e in rec.select_events(b, gt=3)] == [b'{"n":4}', b'{"n":5}']
    assert [n.originator_id for n in rec.select_notifications(3, 2)] == [a, b]


def test_a_subscription_receives_what_another_process_records(env: dict[str, str]) -> None:
    writer = recorder(env)
    reader = recorder(env, KES_ROLE="client")
    writer.insert_events([event(uuid.uuid4(), 1)])
    got: list[int] = []
    with reader.subscribe(gt=None) as subscription:
        for notification in subscription:
            got.append(notification.id)
            if len(got) == 1:
                writer.insert_events([event(uuid.uuid4(), 1)])
            if len(got) == 2:
                break
    assert got == [1, 2]
