"""Fixtures: a real Apache Kafka (the one in KES_BOOTSTRAP_SERVERS, or one started here)
and, for tests marked ``cluster``, a 3-node KRaft cluster started once per run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kes.broker import LocalCluster
from kes.store.kafka import KafkaConfig, KafkaEventStore

ROOT = Path(__file__).resolve().parent.parent
# Below Linux's ephemeral range (32768-60999): a client connection can never hold them.
TEST_BROKER_PORT = int(os.environ.get("KES_TEST_BROKER_PORT", "19092"))
TEST_CLUSTER_PORT = int(os.environ.get("KES_TEST_CLUSTER_PORT", "19300"))


def _start(data_dir: Path, nodes: int, port: int) -> tuple[LocalCluster, bool]:
    """A running cluster in ``data_dir``; True when this call started it."""
    cluster = LocalCluster.load(data_dir)
    if cluster is not None and len(cluster.running()) == len(cluster.nodes):
        cluster.wait_ready(60)
        return cluster, False
    if cluster is None or len(cluster.nodes) != nodes or cluster.nodes[0].port != port:
        cluster = LocalCluster.plan(data_dir, nodes=nodes, port=port)
    cluster.start()
    return cluster, True


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    env = os.environ.get("KES_BOOTSTRAP_SERVERS")
    if env:
        yield env
        return
    cluster, started = _start(ROOT / ".kes" / "test-broker", 1, TEST_BROKER_PORT)
    yield cluster.bootstrap_servers
    if started:
        cluster.stop()


@pytest.fixture(scope="session")
def cluster3() -> Iterator[LocalCluster]:
    cluster, started = _start(ROOT / ".kes" / "test-cluster3", 3, TEST_CLUSTER_PORT)
    yield cluster
    if started or os.environ.get("CI"):
        cluster.stop()


@pytest.fixture
def unique() -> str:
    """A short unique name for topics and groups of one test."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def kafka_config(bootstrap_servers: str, unique: str, tmp_path: Path) -> KafkaConfig:
    return KafkaConfig(
        bootstrap_servers=bootstrap_servers,
        namespace=unique,
        index_dir=str(tmp_path / "index"),
        partitions=4,
        session_timeout_ms=6000,
        request_timeout_s=20,
    )


@pytest.fixture
def kafka_store(kafka_config: KafkaConfig) -> Iterator[KafkaEventStore]:
    store = KafkaEventStore(kafka_config)
    yield store
    store.close()
