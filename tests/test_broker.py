"""`kes broker`: real Apache Kafka nodes, started, killed and restarted."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kes.broker import LocalCluster

KES = [sys.executable, "-m", "kes.cli"]


def kes(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KES, *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )


def java_processes_using(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "kafka.Kafka" in line and str(data_dir) in line]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port + 0 if port < 60000 else 41000


@pytest.mark.kafka
def test_start_with_port_taken_fails_clearly_and_leaves_nothing_running(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = kes("broker", "start", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode != 0
    assert f"port {port}" in result.stderr and "in use" in result.stderr
    assert java_processes_using(tmp_path) == []


def test_start_without_java_fails_clearly_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # python, but no java
    result = kes("broker", "start", "--port", "45992", "--data-dir", str(tmp_path), env=env)
    assert result.returncode != 0
    assert "Java was not found" in result.stderr
    assert java_processes_using(tmp_path) == []


def test_status_of_an_empty_folder_says_so(tmp_path: Path) -> None:
    result = kes("broker", "status", "--data-dir", str(tmp_path))
    assert result.returncode == 0 and "no kes-managed Kafka" in result.stdout


def test_every_broker_command_has_help() -> None:
    for cmd in ("start", "stop", "kill", "restart", "status"):
        result = kes("broker", cmd, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout


@pytest.mark.kafka
def test_start_twice_reuses_the_running_broker(bootstrap_servers: str) -> None:
    cluster = _cluster_of(bootstrap_servers)
    if cluster is None:
        pytest.skip("the broker under test was not started by kes")
    result = kes(
        "broker", "start", "--data-dir", cluster.data_dir, "--port", str(cluster.nodes[0].port)
    )
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout


def _cluster_of(bootstrap_servers: str) -> LocalCluster | None:
    root = Path(__file__).resolve().parent.parent / ".kes"
    for d in (root / "broker", root / "test-broker"):
        c = LocalCluster.load(d)
        if c is not None and c.bootstrap_servers == bootstrap_servers:
            return c
    return None


@pytest.mark.cluster
@pytest.mark.kafka
def test_three_nodes_keep_every_acknowledged_record_through_a_node_crash(
    cluster3: LocalCluster,
) -> None:
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": cluster3.bootstrap_servers})
    # Learn the brokers first: librdkafka drops its bootstrap connections when the first
    # metadata arrives, failing a request still in flight on one (_DESTROY_BROKER).
    admin.list_topics(timeout=30)
    admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[topic].result(
        timeout=60
    )
    producer = Producer(
        {
            "bootstrap.servers": cluster3.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
    )
    acked: set[str] = set()

    def delivered(err: KafkaError | None, msg: object) -> None:
        if err is None:
            acked.add(msg.value().decode())  # type: ignore[attr-defined]

    def write(n: int, prefix: str) -> None:
        for i in range(n):
            producer.produce(topic, key=str(i % 17), value=f"{prefix}-{i}", on_delivery=delivered)
            producer.poll(0)
        assert producer.flush(60) == 0

    write(500, "before")
    victim = cluster3.nodes[1].node_id
    assert kes("broker", "kill", str(victim), "--data-dir", cluster3.data_dir).returncode == 0
    time.sleep(1)
    write(500, "during")  # 2 of 3 replicas are in sync: acks=all still succeeds
    assert {f"during-{i}" for i in range(500)} <= acked
    restarted = kes("broker", "restart", str(victim), "--data-dir", cluster3.data_dir)
    assert restarted.returncode == 0, restarted.stderr
    write(500, "after")

    consumer = Consumer(
        {
            "bootstrap.servers": cluster3.bootstrap_servers,
            "group.id": uuid.uuid4().hex,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    seen: list[str] = []
    eof: set[int] = set()
    deadline = time.monotonic() + 60
    while len(eof) < 3 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
            continue
        seen.append(msg.value().decode())
    consumer.close()
    assert len(acked) == 1500
    assert acked <= set(seen)
    assert len(seen) == len(set(seen)), "a record was duplicated"
