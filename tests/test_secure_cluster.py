"""Three secured nodes (SASL_SSL and mTLS between them, ACLs enforced): a broker crash
during sustained appends by a writer-role principal loses no acknowledged event."""

from __future__ import annotations

from pathlib import Path

import pytest

from kes.broker import LocalCluster
from kes.store.kafka import KafkaConfig
from tests.secure_support import plain_conf, principal
from tests.test_store_kafka_cluster import appends_through_a_broker_crash

pytestmark = [pytest.mark.kafka, pytest.mark.cluster, pytest.mark.slow]


def test_broker_crash_on_a_secured_cluster_loses_no_acknowledged_event(
    secure_cluster3: LocalCluster, unique: str, tmp_path: Path
) -> None:
    base = KafkaConfig(
        bootstrap_servers=secure_cluster3.bootstrap_servers,
        namespace=unique,
        partitions=6,
        index_dir=str(tmp_path / "idx"),
        session_timeout_ms=6000,
        request_timeout_s=20,
    )
    writer = principal(secure_cluster3, base, f"w-{unique}", "writer", aggregate_types=("Race",))
    assert writer.client["security.protocol"] == "SASL_SSL"
    appends_through_a_broker_crash(secure_cluster3, writer, plain_conf(secure_cluster3, "admin"))
