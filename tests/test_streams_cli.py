"""`kes stream run|status` against real Kafka, and a stream's results in a read model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from examples.bank.domain import Account
from examples.bank.read_models import OverdraftAlerts

from kes.application import Application
from kes.cli import cli
from kes.projections import ProjectionRunner
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import read_topic
from tests.test_streams import outputs, wait_until

pytestmark = [pytest.mark.kafka]


def test_every_stream_command_has_help() -> None:
    for args in (["stream"], ["stream", "run"], ["stream", "status"], ["stream", "reset"]):
        out = CliRunner().invoke(cli, [*args, "--help"])
        assert out.exit_code == 0 and "Usage:" in out.output, args


def test_a_spec_that_is_not_a_pipeline_is_refused_with_what_to_write(tmp_path: Path) -> None:
    for spec, message in (
        ("nothing", "is not MODULE:NAME"),
        ("no_such_module_here:x", "cannot import"),
        ("examples.bank.streams:Account", "is not a kes.streams.Pipeline"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "kes.cli", "stream", "status", spec],
            capture_output=True,
            text=True,
            env={**os.environ, "KES_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
        )
        assert out.returncode == 1 and message in out.stderr, (spec, out.stderr)
        # Only kes's own line: no warning of a library Quix Streams loads.
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr


def test_run_two_processes_status_and_alerts_into_a_read_model(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    unique: str,
    tmp_path: Path,
) -> None:
    app = Application(kafka_store)
    risky, calm = Account("acct-risky", owner="ann"), Account("acct-calm", owner="bob")
    for _ in range(3):
        assert risky.try_withdraw(Decimal("10")) is False  # recorded, not raised
    calm.deposit(Decimal("5"))
    assert calm.try_withdraw(Decimal("2")) is True
    app.save(risky, calm)
    producer = Producer({"bootstrap.servers": kafka_config.bootstrap_servers})
    producer.produce(kafka_config.topic("Account"), key=b"acct-calm", value=b"\x00garbage")
    producer.flush(10)

    # A module of this test's own: its group, dead-letter and late topics are its own.
    module = f"stream_{unique}"
    (tmp_path / f"{module}.py").write_text(
        "from examples.bank.streams import monitoring\n"
        "from kes.streams import Pipeline\n"
        "def build(streams):\n"
        "    monitoring.build(streams)\n"
        "    refused = streams.events('Account', 'WithdrawalRefused')\n"
        "    rows = refused.apply(lambda e: {'account': e['aggregateId']})\n"
        f"    streams.to_topic(rows, {unique + '.refusals'!r})\n"
        f"pipeline = Pipeline({unique!r}, build, aggregates=monitoring.aggregates)\n"
    )
    spec = f"{module}:pipeline"
    env = {
        **os.environ,
        "KES_BOOTSTRAP_SERVERS": kafka_config.bootstrap_servers,
        "KES_NAMESPACE": kafka_config.ns,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path.cwd())]),
    }
    run = subprocess.Popen(
        [sys.executable, "-m", "kes.cli", "stream", "run", spec, "-n", "2", "--state-dir", "st"],
        env=env,
        cwd=tmp_path,
    )
    try:

        def status() -> dict[str, object]:
            out = subprocess.run(
                [sys.executable, "-m", "kes.cli", "stream", "status", spec, "--json"],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
            )
            assert out.returncode == 0, out.stderr
            result: dict[str, object] = json.loads(out.stdout)
            return result

        assert wait_until(lambda: len(outputs(kafka_config, "AccountRisk")) == 1, 120)
        assert wait_until(lambda: status()["members"] == 2 and status()["total_lag"] == 0, 60)
        st = status()
        assert st["pipeline"] == unique and st["group"] == kafka_config.stream_group(unique)
        assert st["dead_letters"] == 1 and st["late_records"] == 0
        assert {p["topic"] for p in st["partitions"]} >= {kafka_config.topic("Account")}  # type: ignore[attr-defined]
        human = subprocess.run(
            [sys.executable, "-m", "kes.cli", "stream", "status", spec],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert "1 dead letter" in human.stdout and "total lag 0" in human.stdout
        refusals = read_topic(kafka_config.bootstrap_servers, f"{unique}.refusals")
        assert [r.json() for r in refusals] == [{"account": "acct-risky"}] * 3
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(60)
    assert code == 0

    # The alert events read like any others: a SqlProjection keeps them, exactly once.
    alerts = type("Alerts", (OverdraftAlerts,), {"name": f"{unique}.alerts"})()
    db = tmp_path / "alerts.db"
    ProjectionRunner(alerts, kafka_config, database=f"sqlite:///{db}", until_caught_up=True).run()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT account_id, alert, refusals FROM overdraft_alerts").fetchall()
    assert rows == [("acct-risky", 1, 3)]
