"""Stream pipelines (kes.streams on Quix Streams) against real Kafka and real processes.

Pipelines run in worker processes (tests/workers/streamer.py) that are killed with
SIGKILL; afterwards every output topic is read by a plain read_committed consumer
and compared with a recomputation from the source topic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from examples.bank import streams as bank_streams

from kes import ANY, NewEvent
from kes.broker.cluster import LocalCluster
from kes.projections import dlq
from kes.store.kafka import KafkaConfig, KafkaEventStore
from kes.streams import Pipeline
from tests.faults import append_surely, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR_MS = 3_600_000


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def wait_until(check: Callable[[], bool], timeout: float, every: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()


def spawn(config: KafkaConfig, spec: str, name: str, state_dir: Path) -> subprocess.Popen[bytes]:
    fields = dataclasses.asdict(config)
    cmd = [
        sys.executable,
        "-m",
        "tests.workers.streamer",
        "--config",
        json.dumps(fields),
        "--pipeline",
        spec,
        "--name",
        name,
        "--state-dir",
        str(state_dir),
    ]
    return subprocess.Popen(cmd, cwd=ROOT)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def assignments(config: KafkaConfig, group: str, topic: str) -> list[set[int]]:
    """Partitions of ``topic`` per member of the consumer group."""
    admin = AdminClient({"bootstrap.servers": config.bootstrap_servers})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return [
        {tp.partition for tp in m.assignment.topic_partitions if tp.topic == topic}
        for m in desc.members
        if m.assignment is not None
    ]


def outputs(config: KafkaConfig, aggregate_type: str) -> list[dict[str, Any]]:
    return [r.json() for r in read_topic(config.bootstrap_servers, config.topic(aggregate_type))]


def more_than(config: KafkaConfig, aggregate_type: str, count: int) -> bool:
    return len(outputs(config, aggregate_type)) > count


def versions_are_gapless(events: list[dict[str, Any]]) -> None:
    per_id: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e in events:
        per_id[(e["aggregateType"], e["aggregateId"])].append(e["version"])
    for aggregate_id, versions in per_id.items():
        assert versions == list(range(1, len(versions) + 1)), (aggregate_id, versions)
    assert len({e["eventId"] for e in events}) == len(events), "an output event id repeats"


# ---- 1, 3, 4, 5: exactly once through kill -9, lost state, scale-out, bad records -------


class BankTraffic:
    """Appends deposits and refused withdrawals to accounts from a thread, each account
    with its own event-time clock moving forward; now and then a malformed record."""

    def __init__(self, store: KafkaEventStore, config: KafkaConfig, accounts: int = 10):
        self.store, self.config = store, config
        self.rng = random.Random(7)
        self.ids = [f"acct-{i}" for i in range(accounts)]
        self.clock = {a: T0 for a in self.ids}
        self.version = dict.fromkeys(self.ids, 0)
        self.malformed: list[bytes] = []
        self._producer = Producer({"bootstrap.servers": config.bootstrap_servers})
        for a in self.ids:
            self._append(
                a, "AccountOpened", {"account_id": a, "owner": "u", "overdraft_limit": "0"}
            )
        self._stop = threading.Event()
        self._thread = threading.Thread()
        self.resume()

    def resume(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _append(self, account: str, event_type: str, payload: dict[str, Any]) -> None:
        event = NewEvent(event_type=event_type, payload=payload, timestamp=self.clock[account])
        self.version[account] = append_surely(
            self.store, "Account", account, event, self.version[account]
        )

    def _run(self) -> None:
        n = sum(self.version.values())
        while not self._stop.is_set():
            a = self.rng.choice(self.ids)
            self.clock[a] += timedelta(minutes=self.rng.randint(10, 300))
            if self.rng.random() < 0.4:
                self._append(a, "WithdrawalRefused", {"amount": "50", "balance": "0"})
            else:
                self._append(a, "MoneyDeposited", {"amount": "10", "transaction_id": None})
            n += 1
            if n % 400 == 0 and len(self.malformed) < 4:
                bad = f"{{broken record {n}".encode()
                self._producer.produce(self.config.topic("Account"), key=a.encode(), value=bad)
                self._producer.flush(10)
                self.malformed.append(bad)
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def expected_bank(config: KafkaConfig) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    """Hourly activity of closed windows and overdraft alerts, from the source topic."""
    per_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in read_topic(config.bootstrap_servers, config.topic("Account")):
        try:
            env = r.json()
        except ValueError:
            continue
        per_account[env["aggregateId"]].append(env)
    grace = int(bank_streams.GRACE.total_seconds() * 1000)
    day = int(bank_streams.DAY.total_seconds() * 1000)
    activity: Counter[tuple[Any, ...]] = Counter()
    alerts: Counter[tuple[Any, ...]] = Counter()
    for account, events in per_account.items():
        events.sort(key=lambda e: e["version"])
        stamps = [ms(datetime.fromisoformat(e["timestamp"])) for e in events]
        latest = max(stamps)
        hours = Counter(t // HOUR_MS * HOUR_MS for t in stamps)
        for start, n in hours.items():
            if start + HOUR_MS <= latest - grace:
                activity[(account, start, n)] += 1
        refusals: list[int] = []
        for e, t in zip(events, stamps, strict=True):
            if e["eventType"] != "WithdrawalRefused":
                continue
            refusals.append(t)
            recent = sum(1 for r in refusals if r >= t - day)
            if recent >= bank_streams.ALERT_AT:
                alerts[(account, recent, t)] += 1
    return activity, alerts


def bank_results(config: KafkaConfig) -> tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]:
    """What the monitoring pipeline wrote: hourly activity and alerts, as expected_bank."""
    activity = Counter(
        (e["aggregateId"], e["payload"]["hourStart"], e["payload"]["events"])
        for e in outputs(config, "AccountActivity")
    )
    alerts = Counter(
        (e["aggregateId"], e["payload"]["refusals"], e["payload"]["at"])
        for e in outputs(config, "AccountRisk")
    )
    return activity, alerts


def test_exactly_once_through_kill_9_lost_state_and_scale_out(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    unique: str,
    tmp_path: Path,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    config = kafka_config
    traffic = BankTraffic(kafka_store, config)
    name = f"{unique}-monitoring"
    group = Pipeline(name, bank_streams.monitor).group(config)
    source = config.topic("Account")

    def state(i: int) -> Path:
        return tmp_path / f"state-{i}"

    def start(i: int) -> subprocess.Popen[bytes]:
        p = spawn(config, "examples.bank.streams:monitoring", name, state(i))
        workers.append(p)
        return p

    procs = {0: start(0), 1: start(1)}
    rng = random.Random(11)
    try:
        # Scale-out: two members split the source partitions.
        assert wait_until(
            lambda: sorted(len(a) for a in assignments(config, group, source)) == [2, 2], 90
        ), "the two pipeline processes never split the 4 partitions"
        assert wait_until(lambda: len(outputs(config, "AccountRisk")) > 0, 90)
        for kill in range(5):
            time.sleep(rng.uniform(2, 6))
            victim = rng.choice([0, 1])
            procs[victim].kill()
            procs[victim].wait()
            if kill == 0:
                # The survivor takes over every partition and keeps producing results.
                before = len(outputs(config, "AccountActivity"))
                assert wait_until(
                    lambda: [len(a) for a in assignments(config, group, source)] == [4], 60
                ), "the surviving process did not take over the killed one's partitions"
                assert wait_until(partial(more_than, config, "AccountActivity", before), 60)
            if kill in (1, 3):
                # Local state is a cache: a member that lost it restores from the changelog.
                shutil.rmtree(state(victim), ignore_errors=True)
            time.sleep(rng.uniform(0.5, 3))
            procs[victim] = start(victim)
    finally:
        traffic.stop()

    activity, alerts = expected_bank(config)
    assert sum(alerts.values()) > 20 and sum(activity.values()) > 100

    wait_until(lambda: bank_results(config) == (activity, alerts), 120, every=3)
    time.sleep(3)  # anything doubled would arrive now
    got_activity, got_alerts = bank_results(config)
    assert got_activity - activity == Counter(), "windows emitted twice or wrongly counted"
    assert activity - got_activity == Counter(), "closed windows missing"
    assert got_alerts == alerts
    versions_are_gapless(outputs(config, "AccountActivity") + outputs(config, "AccountRisk"))

    # Bad input: each malformed record parked once, with its reason; nothing is late.
    parked = read_topic(config.bootstrap_servers, dlq.dlq_topic(config, name))
    assert sorted(r.value or b"" for r in parked) == sorted(traffic.malformed)
    assert len(traffic.malformed) >= 2
    for r in parked:
        assert r.headers[dlq.H_TOPIC] == source.encode()
        assert b"not a kes event envelope" in r.headers[dlq.H_ERROR]
    assert read_topic(config.bootstrap_servers, f"kes.stream.{name}.late") == []


def test_a_restarted_pipeline_without_its_state_folder_restores_it_from_the_changelog(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    unique: str,
    tmp_path: Path,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    config = kafka_config
    name = f"{unique}-restore"
    traffic = BankTraffic(kafka_store, config, accounts=6)
    time.sleep(3)
    traffic.stop()

    state = tmp_path / "state"
    first = spawn(config, "examples.bank.streams:monitoring", name, state)
    workers.append(first)
    assert wait_until(lambda: bank_results(config) == expected_bank(config), 120, every=2)
    before = bank_results(config)
    assert sum(before[0].values()) > 0, "no hourly activity before the gap: nothing to restore"
    first.terminate()
    assert first.wait(30) == 0
    assert any(state.rglob("*")), "the pipeline kept no local state"
    shutil.rmtree(state)

    traffic.resume()  # the same accounts go on: open windows and alert counts span the gap
    time.sleep(3)
    traffic.stop()
    workers.append(spawn(config, "examples.bank.streams:monitoring", name, state))
    expected = expected_bank(config)
    assert wait_until(lambda: bank_results(config) == expected, 120, every=2)
    time.sleep(2)
    after = bank_results(config)
    assert after == expected
    # The restarted pipeline produced results of its own (windows closed after the gap).
    assert sum((after[0] - before[0]).values()) > 0, "no results after the gap"
    # Versions go on from where the first run stopped: the emit counters came back too.
    versions_are_gapless(outputs(config, "AccountActivity") + outputs(config, "AccountRisk"))


# ---- 2: event time, grace and late records -------------------------------------------


def test_out_of_order_events_land_in_their_window_and_late_ones_are_reported(
    kafka_config: KafkaConfig,
    unique: str,
    tmp_path: Path,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    config = dataclasses.replace(kafka_config, partitions=1)  # one order to reason about
    store = KafkaEventStore(config)
    minutes = [5, 20, 65, 50, 80, 55, 150]  # after 10:00; grace is 10 minutes
    try:
        for i, m in enumerate(minutes):
            payload = {"user_id": f"u{i}", "username": f"user{i}", "email": f"u{i}@x.org"}
            event = NewEvent(
                event_type="UserCreated", payload=payload, timestamp=T0 + timedelta(minutes=m + 60)
            )
            store.append("User", f"u{i}", [event], 0)
    finally:
        store.close()
    name = f"{unique}-signups"
    workers.append(spawn(config, "examples.users.streams:signups_per_hour", name, tmp_path))
    late_topic = config.late_topic(name)

    def done() -> bool:
        return len(outputs(config, "SignupRate")) >= 2 and bool(
            read_topic(config.bootstrap_servers, late_topic)
        )

    assert wait_until(done, 120), "the pipeline produced no windows or no late report"
    time.sleep(2)
    ten = ms(T0 + timedelta(hours=1))
    counted = [
        (e["payload"]["hourStart"], e["payload"]["signups"]) for e in outputs(config, "SignupRate")
    ]
    # 10:50 came after 11:05 but within the grace: counted in 10:00-11:00.
    # 10:55 came after 11:20 had closed that hour: reported late, not counted.
    assert counted == [(ten, 3), (ten + HOUR_MS, 2)]
    late = [r.json() for r in read_topic(config.bootstrap_servers, late_topic)]
    assert len(late) == 1
    assert late[0]["timestampMs"] == ms(T0 + timedelta(minutes=115))
    assert late[0]["lateByMs"] == 15 * 60_000
    assert late[0]["window"]["start"] == ten
    assert late[0]["value"]["payload"]["username"] == "user5"


# ---- enrichment: a stream joined with a table of another aggregate type ---------------


def test_deposits_are_enriched_with_the_holders_name_as_of_the_deposit(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    unique: str,
    tmp_path: Path,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    config = kafka_config
    store = kafka_store
    names: dict[str, list[tuple[datetime, str]]] = {}
    for i in range(6):
        uid = f"user-{i}"
        store.append(
            "User",
            uid,
            [
                NewEvent(
                    event_type="UserCreated",
                    payload={"user_id": uid, "username": f"name-{i}", "email": "e@x.org"},
                    timestamp=T0,
                )
            ],
            0,
        )
        names[uid] = [(T0, f"name-{i}")]
    for i, at in ((1, T0 + timedelta(hours=2)), (3, T0 + timedelta(hours=5))):
        uid = f"user-{i}"
        store.append(
            "User",
            uid,
            [
                NewEvent(
                    event_type="UserRenamed", payload={"username": f"renamed-{i}"}, timestamp=at
                )
            ],
            1,
        )
        names[uid].append((at, f"renamed-{i}"))
    expected: Counter[tuple[Any, ...]] = Counter()
    for a in range(8):
        aid, owner = f"acct-{a}", ("ghost" if a == 7 else f"user-{a % 6}")
        opened = NewEvent(
            event_type="AccountOpened",
            payload={"account_id": aid, "owner": owner, "overdraft_limit": "0"},
            timestamp=T0 + timedelta(minutes=10),
        )
        events = [opened]
        for k in range(1, 13):
            at = T0 + timedelta(minutes=30 * k + a)
            events.append(
                NewEvent(
                    event_type="MoneyDeposited",
                    payload={"amount": str(k), "transaction_id": None},
                    timestamp=at,
                )
            )
            holder = [n for t, n in names.get(owner, []) if t <= at]
            expected[(owner, aid, str(k), holder[-1] if holder else None)] += 1
        store.append("Account", aid, events, 0)
    name = f"{unique}-enriched"
    workers.append(spawn(config, "examples.bank.streams:enriched_deposits", name, tmp_path))

    def got() -> Counter[tuple[Any, ...]]:
        return Counter(
            (
                e["aggregateId"],
                e["payload"]["accountId"],
                e["payload"]["amount"],
                e["payload"]["holderName"],
            )
            for e in outputs(config, "HolderActivity")
        )

    wait_until(lambda: got() == expected, 120, every=2)
    assert got() == expected
    received = outputs(config, "HolderActivity")
    versions_are_gapless(received)
    # The running total per holder ends at the sum of the holder's deposits.
    last = {e["aggregateId"]: e["payload"]["holderTotal"] for e in received}
    totals: Counter[str] = Counter()
    for (holder, _account, amount, _name), n in expected.items():
        totals[holder] += int(amount) * n
    assert {h: int(t) for h, t in last.items()} == dict(totals)


# ---- 5: internal topics on three nodes --------------------------------------------------


def test_internal_topics_on_three_nodes_follow_kes_replication_rule(
    cluster3: LocalCluster,
    kafka_config: KafkaConfig,
    unique: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Changelogs and repartition topics Quix creates get kes's replication factor and
    min.insync.replicas (3 and 2 on three nodes), and an internal topic below the rule is
    reported by name; so is any topic kes ensures (here a dead-letter topic)."""
    from kes.kafka.topics import Topics
    from kes.streams.topics import internal_topic_problems

    config = dataclasses.replace(
        kafka_config, bootstrap_servers=cluster3.bootstrap_servers, index_dir=str(tmp_path / "i")
    )
    store = KafkaEventStore(config)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        traffic = BankTraffic(store, config, accounts=4)
        time.sleep(2)
        traffic.stop()
        name = f"{unique}-rf"
        procs.append(spawn(config, "examples.bank.streams:monitoring", name, tmp_path / "st"))
        assert wait_until(lambda: bank_results(config) == expected_bank(config), 180, every=2)
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        store.close()
    group = config.stream_group(name)
    topics = Topics(config)
    internal = topics.names(f"changelog__{group}--") + topics.names(f"repartition__{group}--")
    assert any(n.startswith("changelog__") for n in internal), internal
    for n in internal:
        info = topics.describe(n)
        assert info is not None
        assert info.replication_factor == 3, f"{n}: replication factor {info.replication_factor}"
        assert info.configs.get("min.insync.replicas") == "2", f"{n}: {info.configs}"
    assert internal_topic_problems(config, group) == []

    # One made by hand with a single copy is named, with what the rule asks for.
    from confluent_kafka.admin import NewTopic

    bad = f"changelog__{group}--by-hand--store"
    admin = AdminClient({"bootstrap.servers": config.bootstrap_servers})  # kept: in use
    admin.create_topics([NewTopic(bad, 1, 1)])[bad].result(30)
    # Created by the controller; the broker asked may list it a moment later.
    assert wait_until(lambda: len(internal_topic_problems(config, group)) == 1, 30, every=0.5)
    (problem,) = internal_topic_problems(config, group)
    assert problem.startswith(f"{bad}: replication factor 1")
    assert "kes's rule: 3 and 2" in problem

    # So is a dead-letter topic (any topic kes ensures) when a member starts with it.
    by_hand = dlq.dlq_topic(config, f"{name}-by-hand")
    admin.create_topics([NewTopic(by_hand, 1, 1)])[by_hand].result(30)

    def topic_errors() -> list[str]:  # other loggers (librdkafka's) may log errors too
        return [r.getMessage() for r in caplog.records if r.name == "kes.topics"]

    with caplog.at_level(logging.ERROR, logger="kes.topics"):
        dlq.ensure_dlq_topic(config, f"{name}-by-hand")
    (error,) = topic_errors()
    assert error.startswith(f"dead letters topic {by_hand} has replication factor 1")
    assert "kes's rule here is 3 and 2" in error
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="kes.topics"):
        dlq.ensure_dlq_topic(config, name)  # made by the pipeline: by the rule
    assert topic_errors() == []


# ---- 6: windows closed per partition -----------------------------------------------------


def test_windows_closed_per_partition_emit_an_idle_keys_last_window(
    kafka_config: KafkaConfig, unique: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    """``final(closing_strategy="partition")``: when a partition's event time passes a
    window, that window closes for every key, so a key that went quiet gets its last
    window emitted; Quix's default ("key") keeps it open until that key's next event."""
    config = dataclasses.replace(kafka_config, partitions=1)  # both keys in one partition
    store = KafkaEventStore(config)
    changes = [("a", 65), ("b", 70), ("a", 80), ("a", 210)]  # minutes after T0 (09:00)
    try:
        for user in ("a", "b"):
            payload = {"user_id": user, "username": user, "email": f"{user}@x.org"}
            created = NewEvent(event_type="UserCreated", payload=payload, timestamp=T0)
            store.append("User", user, [created], 0)
        for i, (user, minute) in enumerate(changes):
            event = NewEvent(
                event_type="EmailChanged",
                payload={"email": f"{user}{i}@x.org"},
                timestamp=T0 + timedelta(minutes=minute),
            )
            store.append("User", user, [event], ANY)
    finally:
        store.close()
    for closing in ("partition", "key"):
        spec = f"tests.workers.pipelines:hourly_by_{closing}"
        workers.append(spawn(config, spec, f"{unique}-{closing}", tmp_path / closing))

    def hours(aggregate_type: str) -> set[tuple[str, int, int]]:
        return {
            (e["aggregateId"], e["payload"]["start"], e["payload"]["changes"])
            for e in outputs(config, aggregate_type)
        }

    ten = ms(T0 + timedelta(hours=1))
    by_partition = {("a", ten, 2), ("b", ten, 1)}
    assert wait_until(lambda: hours("HourlyByPartition") == by_partition, 120), hours(
        "HourlyByPartition"
    )
    assert wait_until(lambda: hours("HourlyByKey") == {("a", ten, 2)}, 60), hours("HourlyByKey")
    time.sleep(3)  # and nothing more comes: b's window stays open per key, 12:00 everywhere
    assert hours("HourlyByPartition") == by_partition
    assert hours("HourlyByKey") == {("a", ten, 2)}


def test_an_event_stamped_hours_ahead_is_parked_and_the_pipeline_goes_on(
    kafka_config: KafkaConfig, unique: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    """The new user's case: an application whose clock ran 5 h ahead saved an event (here
    through a store whose bound was raised, as another producer could). Let in, it moves
    the pipeline's event time 5 h on: every later event is late and left out of its
    windows (what this test sees without the bound), and a window closed at that time is
    written stamped 5 h ahead, which the broker refuses (log.message.timestamp.after.max.ms
    = 1 h), aborting the transaction on every run. It is parked with the reason instead,
    and the windows around it come out."""
    config = dataclasses.replace(kafka_config, partitions=1)

    def changed(minute: int) -> NewEvent:
        return NewEvent(
            event_type="EmailChanged",
            payload={"email": f"a{minute}@x.org"},
            timestamp=T0 + timedelta(minutes=minute),
        )

    def append(events: list[NewEvent], cfg: KafkaConfig = config) -> None:
        with KafkaEventStore(cfg) as store:  # one writer at a time: no handover
            for e in events:
                store.append("User", "a", [e], ANY)

    payload = {"user_id": "a", "username": "a", "email": "a@x.org"}
    created = NewEvent(event_type="UserCreated", payload=payload, timestamp=T0)
    append([created, changed(10), changed(70)])  # after T0 (09:00)
    ahead = NewEvent(
        event_type="EmailChanged",
        payload={"email": "late@x.org"},
        timestamp=datetime.now(UTC) + timedelta(hours=5),
    )
    append([ahead], dataclasses.replace(config, max_event_time_ahead_s=6 * 3600))
    append([changed(130), changed(200)])  # 12:20 closes the hours 09, 10 and 11
    name = f"{unique}-domains"
    workers.append(spawn(config, "tests.workers.pipelines:hourly_per_domain", name, tmp_path / "s"))

    def hours() -> set[tuple[str, int, int]]:
        return {
            (e["aggregateId"], e["payload"]["start"], e["payload"]["changes"])
            for e in outputs(config, "DomainHourly")
        }

    want = {("x.org", ms(T0 + timedelta(hours=h)), 1) for h in range(3)}
    assert wait_until(lambda: hours() == want, 120), hours()
    parked = list(dlq.read_parked(config, name))
    assert [p.error_type for p in parked] == ["EventTimeOutOfRange"]
    assert ahead.event_id in parked[0].error and parked[0].topic == config.topic("User")
    assert "ahead of this machine's clock" in parked[0].error
    assert "message.timestamp.after.max.ms = 3600000" in parked[0].error
    time.sleep(2)
    assert workers[0].poll() is None, "the pipeline died"
