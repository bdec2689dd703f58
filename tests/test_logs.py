"""JSON log lines: the fields kes attaches, a real writer's takeover line, bad formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from kes import NewEvent, logs
from kes.cli import cli
from kes.errors import InvalidInputError
from kes.store.kafka import KafkaConfig, KafkaEventStore


class _Msg:
    """The parts of a confluent_kafka Message that record_fields reads."""

    def key(self) -> bytes:
        return b"acct-7"

    def topic(self) -> str:
        return "kes.events.Account"

    def partition(self) -> int:
        return 3

    def offset(self) -> int:
        return 41


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_json_line_carries_the_record_fields(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(logging.INFO, "json")
    log = logging.getLogger("kes.projections")
    log.warning("balance: %s failed", "x", extra=logs.record_fields(_Msg(), "balance"))
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("handler crashed")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "kes.projections"
    assert first["message"] == "balance: x failed"
    assert first["topic"] == "kes.events.Account"
    assert (first["partition"], first["offset"]) == (3, 41)
    assert first["aggregateId"] == "acct-7" and first["consumer"] == "balance"
    assert first["time"].endswith("+00:00")
    assert "ValueError: boom" in second["exception"]


def test_text_stays_the_default(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(logging.INFO)
    logging.getLogger("kes").info("plain")
    line = capsys.readouterr().err.strip()
    assert line.endswith("INFO kes plain") and not line.startswith("{")


def test_an_unknown_format_is_refused(root_logging: None, monkeypatch: Any) -> None:
    with pytest.raises(InvalidInputError, match="log format must be one of text, json"):
        logs.configure(logging.INFO, "xml")
    monkeypatch.setenv("KES_LOG_FORMAT", "yaml")
    with pytest.raises(InvalidInputError, match="'yaml'"):
        logs.configure(logging.INFO)
    result = CliRunner().invoke(cli, ["project", "run", "x:Y", "--log-format", "xml"])
    assert result.exit_code == 2 and "'xml' is not one of 'text', 'json'" in result.output


@pytest.mark.kafka
def test_a_writers_takeover_is_logged_with_its_partition(
    kafka_config: KafkaConfig, unique: str
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    store_log = logging.getLogger("kes.writer")
    store_log.addHandler(handler)
    level = store_log.level
    store_log.setLevel(logging.INFO)
    try:
        store = KafkaEventStore(kafka_config)
        try:
            store.append("Logged", "a", [NewEvent(event_type="E", payload={})], 0)
        finally:
            store.close()
    finally:
        store_log.removeHandler(handler)
        store_log.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    takeovers = [line for line in lines if "owner after" in line["message"]]
    assert sorted(t["partition"] for t in takeovers) == [0, 1, 2, 3]
    assert all(t["aggregateType"] == "Logged" for t in takeovers)
    assert all(t["topic"] == kafka_config.topic("Logged") for t in takeovers)
