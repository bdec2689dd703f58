"""The ``kes`` command's answers, through the real CLI: unknown names are errors with a
non-zero exit and a hint; ``--from-time`` means event time; messages fit the command."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kes import NO_STREAM, NewEvent
from kes.broker import LocalCluster
from kes.projections import ProjectionEvent, SqlProjection, Tx
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.cli_support import kes


class Stamps(SqlProjection):
    """Every Ticked event it is handed, with its event time."""

    name = "stamps"
    aggregate_types = ("Clock",)

    def setup(self, tx: Tx) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS stamps (aggregate_id TEXT PRIMARY KEY, at TEXT)")

    def reset(self, tx: Tx) -> None:
        tx.execute("DELETE FROM stamps")

    def on_Ticked(self, event: ProjectionEvent, tx: Tx) -> None:
        tx.execute(
            "INSERT INTO stamps VALUES (?, ?)", (event.aggregate_id, event.timestamp.isoformat())
        )


def env_of(config: KafkaConfig) -> dict[str, str]:
    return {
        "KES_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "KES_NAMESPACE": config.ns,
        "KES_INDEX_DIR": config.index_dir,
        "COLUMNS": "250",
    }


def tick(store: KafkaEventStore, aggregate_id: str, at: datetime) -> None:
    store.append(
        "Clock", aggregate_id, [NewEvent(event_type="Ticked", payload={}, timestamp=at)], NO_STREAM
    )


@pytest.mark.kafka
def test_replay_from_time_means_event_time_not_the_time_kafka_stored_it(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path
) -> None:
    # (within the 55 minutes ahead the store accepts: max_event_time_ahead_s)
    later = datetime.now(UTC) + timedelta(minutes=30)
    for i in range(3):  # stamped after T, but stored before it
        tick(kafka_store, f"ahead-{i}", later)
    time.sleep(0.05)
    t = datetime.now(UTC)
    time.sleep(0.05)
    for i in range(4):  # stored after T, but stamped the day before
        tick(kafka_store, f"behind-{i}", t - timedelta(days=1))
    tick(kafka_store, "at-t", t)  # exactly T counts
    db = tmp_path / "rm.db"
    result = kes(
        "project",
        "replay",
        f"{__name__}:Stamps",
        "--from-time",
        t.isoformat(),
        "-y",
        "--database",
        str(db),
        env=env_of(kafka_config),
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(db) as conn:
        handled = sorted(a for (a,) in conn.execute("SELECT aggregate_id FROM stamps"))
    assert handled == ["ahead-0", "ahead-1", "ahead-2", "at-t"]
    # the bar counts offsets and says so; the summary counts events (all 8 were read)
    assert "offsets" in result.stderr
    assert "read 8 events" in result.stderr and "stamped before" in result.stderr

    help_text = kes("project", "replay", "--help").stdout
    assert "event time" in help_text and "not when Kafka stored it" in help_text


@pytest.mark.kafka
def test_status_of_an_unknown_projection_fails_and_lists_the_known_groups(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path
) -> None:
    tick(kafka_store, "c-1", datetime.now(UTC))
    db = tmp_path / "rm.db"
    env = env_of(kafka_config)
    replayed = kes("project", "replay", f"{__name__}:Stamps", "-y", "--database", str(db), env=env)
    assert replayed.returncode == 0, replayed.stderr
    known = kes("project", "status", "stamps", "--json", env=env)
    assert known.returncode == 0, known.stderr
    assert json.loads(known.stdout)["total_lag"] == 0

    unknown = kes("project", "status", "stamp", env=env)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert f"'{kafka_config.ns}.stamp' does not exist" in unknown.stderr
    assert f"groups of projections and pipelines in namespace '{kafka_config.ns}': stamps." in (
        unknown.stderr
    )
    in_db = kes("project", "status", "stamp", "--database", str(db), env=env)
    assert in_db.returncode == 1
    assert "no offsets in" in in_db.stderr and "with offsets there: stamps" in in_db.stderr


@pytest.mark.kafka
def test_events_read_and_tail_of_unknown_names_fail_with_a_hint(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore
) -> None:
    tick(kafka_store, "c-1", datetime.now(UTC))
    env = env_of(kafka_config)
    for args in (["events", "read", "Clok", "c-1", "--scan"], ["events", "tail", "Clok"]):
        result = kes(*args, env=env, timeout=60)  # tail used to hang here
        assert result.returncode == 1, (args, result.stdout)
        assert "no aggregate type 'Clok'" in result.stderr
        assert "Aggregate types in namespace" in result.stderr and "Clock" in result.stderr
    missing = kes("events", "read", "Clock", "c-2", "--scan", env=env)
    assert missing.returncode == 1 and "'c-2' has no events" in missing.stderr
    found = kes("events", "read", "Clock", "c-1", "--scan", "--json", env=env)
    assert found.returncode == 0 and json.loads(found.stdout)[0]["aggregateId"] == "c-1"


@pytest.mark.kafka
def test_events_read_with_no_writer_suggests_scan_and_no_append_advice(
    kafka_config: KafkaConfig,
) -> None:
    with KafkaEventStore(kafka_config) as writer:
        tick(writer, "c-1", datetime.now(UTC))
    # no writer runs now; a timeout shorter than the wait for an owner gives up
    result = kes("events", "read", "Clock", "c-1", "--timeout", "1", env=env_of(kafka_config))
    assert result.returncode == 1
    assert "--scan" in result.stderr and "this was a read" in result.stderr
    assert "event ids" not in result.stderr


def test_broker_status_finds_the_cluster_from_a_subdirectory(tmp_path: Path) -> None:
    data_dir = tmp_path / ".kes" / "broker"
    LocalCluster.plan(data_dir, nodes=1, port=45390).save()  # planned, never started
    below = tmp_path / "src" / "app"
    below.mkdir(parents=True)
    env = {"KES_BROKER_DIR": ""}
    for where in (tmp_path, below):
        result = kes("broker", "status", "--json", cwd=where, env=env)
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        assert status["data_dir"] == str(data_dir)
        assert [(n["port"], n["state"]) for n in status["nodes"]] == [(45390, "down")]
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    result = kes("broker", "status", cwd=elsewhere, env=env)
    assert "no kes-managed Kafka in" in result.stdout and "--data-dir" in result.stdout
