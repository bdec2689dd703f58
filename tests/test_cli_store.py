"""`kes topics`, `kes events read|tail`, `kes index rebuild` against real Kafka."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kes import NO_STREAM, NewEvent
from kes.cli import cli
from kes.store.kafka import KafkaConfig, KafkaEventStore

pytestmark = pytest.mark.kafka


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def filled(kafka_store: KafkaEventStore) -> KafkaConfig:
    kafka_store.append(
        "User",
        "abc123",
        [
            NewEvent(event_type="UserCreated", payload={"userId": "abc123", "username": "jdoe"}),
            NewEvent(event_type="EmailChanged", payload={"email": "j@example.com"}),
        ],
        NO_STREAM,
    )
    kafka_store.append("User", "other", [NewEvent(event_type="UserCreated", payload={})], NO_STREAM)
    return kafka_store.config


def common(config: KafkaConfig) -> list[str]:
    return ["--bootstrap-servers", config.bootstrap_servers, "--namespace", config.ns]


def test_topics_lists_event_topics_with_their_settings(filled: KafkaConfig) -> None:
    rows = json.loads(run("topics", "--json", *common(filled)))
    assert [r["topic"] for r in rows] == [filled.topic("User")]
    (row,) = rows
    assert row["partitions"] == filled.partitions
    assert (row["retention.ms"], row["cleanup.policy"]) == ("-1", "delete")
    assert "event topics" in run("topics", *common(filled))


def test_events_read_prints_one_aggregate_in_version_order(filled: KafkaConfig) -> None:
    events = json.loads(run("events", "read", "User", "abc123", "--json", *common(filled)))
    assert [(e["version"], e["eventType"]) for e in events] == [
        (1, "UserCreated"),
        (2, "EmailChanged"),
    ]
    assert events[0]["payload"] == {"userId": "abc123", "username": "jdoe"}
    table = run("events", "read", "User", "abc123", *common(filled))
    assert "EmailChanged" in table


def test_events_read_by_scan_needs_no_writer_and_agrees(filled: KafkaConfig) -> None:
    asked = json.loads(run("events", "read", "User", "abc123", "--json", *common(filled)))
    scanned = json.loads(
        run("events", "read", "User", "abc123", "--scan", "--json", *common(filled))
    )
    assert scanned == asked
    later = run(
        "events",
        "read",
        "User",
        "abc123",
        "--scan",
        "--from-version",
        "2",
        "--json",
        *common(filled),
    )
    assert [e["version"] for e in json.loads(later)] == [2]


def test_events_tail_from_beginning_prints_json_lines(filled: KafkaConfig) -> None:
    args = ["events", "tail", "User", "--from-beginning", "--limit", "3", *common(filled)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "following" in result.stderr  # what it waits for goes to stderr, JSON to stdout
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((e["aggregateId"], e["version"]) for e in lines) == [
        ("abc123", 1),
        ("abc123", 2),
        ("other", 1),
    ]


def test_index_rebuild_reports_what_it_read(filled: KafkaConfig, tmp_path: object) -> None:
    out = json.loads(
        run("index", "rebuild", "User", "--json", "--index-dir", str(tmp_path), *common(filled))
    )
    assert out["events"] == 3 and out["partitions"] == filled.partitions


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["topics", "--help"],
        ["events", "read", "--help"],
        ["events", "tail", "--help"],
        ["index", "rebuild", "--help"],
    ):
        assert "Usage:" in run(*args)
