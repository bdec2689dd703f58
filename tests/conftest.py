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
# Secured clusters (kes broker start --secure): SASL_SSL on PORT+i, mTLS on +50, controllers
# on +100.
TEST_SECURE_PORT = int(os.environ.get("KES_TEST_SECURE_PORT", "19500"))
TEST_SECURE_CLUSTER_PORT = int(os.environ.get("KES_TEST_SECURE_CLUSTER_PORT", "19700"))


def _start(
    data_dir: Path, nodes: int, port: int, secure: bool = False
) -> tuple[LocalCluster, bool]:
    """A running cluster in ``data_dir``; True when this call started it."""
    cluster = LocalCluster.load(data_dir)
    if cluster is not None and len(cluster.running()) == len(cluster.nodes):
        cluster.wait_ready(60)
        return cluster, False
    if (
        cluster is None
        or len(cluster.nodes) != nodes
        or cluster.nodes[0].port != port
        or cluster.secure != secure
    ):
        cluster = LocalCluster.plan(data_dir, nodes=nodes, port=port, secure=secure)
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


@pytest.fixture(scope="session")
def secure_broker() -> Iterator[LocalCluster]:
    """One secured node: SASL_SSL (SCRAM-SHA-512) and mTLS, ACLs enforced."""
    cluster, started = _start(ROOT / ".kes" / "test-secure", 1, TEST_SECURE_PORT, secure=True)
    yield cluster
    if started or os.environ.get("CI"):
        cluster.stop()


@pytest.fixture(scope="module")
def secure_cluster3() -> Iterator[LocalCluster]:
    """Three secured nodes (RF 3, min ISR 2); stopped after the module that used them (three
    more brokers idling beside the plain three slow every later test on two cores)."""
    cluster, started = _start(
        ROOT / ".kes" / "test-secure3", 3, TEST_SECURE_CLUSTER_PORT, secure=True
    )
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
def secure_base(secure_broker: LocalCluster, unique: str, tmp_path: Path) -> KafkaConfig:
    """``kafka_config`` on the secured broker, as nobody yet (tests.secure_support makes
    principals of it)."""
    return KafkaConfig(
        bootstrap_servers=secure_broker.bootstrap_servers,
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
