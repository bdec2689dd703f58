"""The event store on a secured Kafka (SASL_SSL, SCRAM-SHA-512, ACLs enforced), run as
principals that hold only the ACLs of their kes role: the contract, racing writer
processes, and an exactly-once projection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kes.broker import LocalCluster
from kes.projections import ProjectionRunner
from kes.store.kafka import KafkaConfig, KafkaEventStore
from kes.testing import EventStoreContract
from tests.faults import check_acknowledged, check_streams, outcomes, read_log, spawn_appender
from tests.secure_support import admin_config, plain_conf, principal
from tests.test_projections import append, sqlite_totals
from tests.workers.projector import totals_class

pytestmark = pytest.mark.kafka

CONTRACT_TYPES = ("User", "Account", "Order", "Item", "Feed")


@pytest.fixture
def writer_config(secure_broker: LocalCluster, secure_base: KafkaConfig) -> KafkaConfig:
    """A principal with nothing but the writer role of the contract's aggregate types."""
    # One user for every test (made once); each test's namespace gets its own ACLs.
    return principal(
        secure_broker, secure_base, "contract-writer", "writer", aggregate_types=CONTRACT_TYPES
    )


class TestEventStoreOverSaslSsl(EventStoreContract):
    @pytest.fixture
    def store(self, writer_config: KafkaConfig) -> Iterator[KafkaEventStore]:
        assert writer_config.client["security.protocol"] == "SASL_SSL"
        with KafkaEventStore(writer_config) as store:
            yield store


@pytest.mark.slow
def test_racing_writer_processes_over_sasl_ssl_keep_every_stream_gapless(
    secure_broker: LocalCluster, secure_base: KafkaConfig, tmp_path: Path, unique: str
) -> None:
    config = principal(
        secure_broker, secure_base, f"r-{unique}", "writer", aggregate_types=("Race",)
    )
    outs = [tmp_path / f"out{i}.jsonl" for i in range(3)]
    procs = [
        spawn_appender(config, out, seconds=15, index_dir=str(tmp_path / f"idx{i}"))
        for i, out in enumerate(outs)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0
    result = outcomes(*outs)
    admin = admin_config(secure_broker, secure_base)
    records = read_log(
        admin.bootstrap_servers,
        config.topic("Race"),
        config.partitions,
        conf=plain_conf(secure_broker, "admin"),
    )
    check_streams(records)
    by_id = check_acknowledged(records, result)
    assert len(result.ok) > 50 and len(result.conflict) > 5  # they really raced
    told = {r["id"] for r in result.ok} | {r["id"] for r in result.error}
    assert set(by_id) <= told


def test_exactly_once_projection_over_sasl_ssl_equals_the_log(
    secure_broker: LocalCluster, secure_base: KafkaConfig, tmp_path: Path, unique: str
) -> None:
    writer = principal(
        secure_broker, secure_base, f"w-{unique}", "writer", aggregate_types=("Acct",)
    )
    name = f"{unique}.totals"
    projector = principal(
        secure_broker,
        secure_base,
        f"p-{unique}",
        "projection",
        aggregate_types=("Acct",),
        group=name,
    )
    with KafkaEventStore(writer) as store:
        for i in range(40):
            append(store, "Acct", f"a{i % 5}", "Added", amount=i)
    db = tmp_path / "rm.db"
    stats = ProjectionRunner(
        totals_class(name, "Acct", "totals")(), projector, database=str(db), until_caught_up=True
    ).run()
    assert stats.records == 40
    expected: dict[str, tuple[int, int]] = {}
    for r in read_log(
        writer.bootstrap_servers,
        writer.topic("Acct"),
        writer.partitions,
        conf=plain_conf(secure_broker, "admin"),
    ):
        n, total = expected.get(r["aggregateId"], (0, 0))
        expected[r["aggregateId"]] = (n + 1, total + r["payload"]["amount"])
    assert sqlite_totals(db) == expected
