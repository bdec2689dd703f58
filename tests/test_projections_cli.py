"""The example read models, and `kes project` / `kes dlq` against real Kafka."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from examples.bank.domain import Account
from examples.bank.read_models import AccountBalances, balance
from examples.users.domain import User
from examples.users.read_models import UserDirectory, find_by_email

from kes import ANY, NewEvent
from kes.application import Application
from kes.cli.dlq import dlq
from kes.cli.project import project
from kes.projections import ProjectionRunner, SqliteCheckpointStore
from kes.store.kafka import KafkaConfig, KafkaEventStore

pytestmark = [pytest.mark.kafka]


@click.group()
def cli() -> None:
    """The commands under test, as they will be registered in kes.cli."""


cli.add_command(project)
cli.add_command(dlq)


def env(config: KafkaConfig) -> dict[str, str | None]:
    return {
        "KES_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "KES_NAMESPACE": config.ns,
    }


def invoke(config: KafkaConfig, *args: str) -> str:
    env = {
        "KES_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "KES_NAMESPACE": config.ns,
    }
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_user_directory_and_account_balances_follow_the_examples(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path
) -> None:
    app = Application(kafka_store)
    ann = User("u1", "ann", "ann@example.com")
    ann.change_email("ann@example.org")
    app.save(ann, User("u2", "bob", "bob@example.com"))
    acct = Account("acc-1", owner="ann")
    acct.deposit(Decimal("100.10"))
    acct.withdraw(Decimal("30.05"))
    app.save(acct)

    users = SqliteCheckpointStore(tmp_path / "users.db")
    ProjectionRunner(UserDirectory(), kafka_config, database=users, until_caught_up=True).run()
    users = SqliteCheckpointStore(tmp_path / "users.db")
    with users.transaction() as tx:
        assert find_by_email(tx, "ann@example.org") == [("u1", "ann", True)]
        assert find_by_email(tx, "ann@example.com") == []
    users.close()

    bank = str(tmp_path / "bank.db")
    ProjectionRunner(AccountBalances(), kafka_config, database=bank, until_caught_up=True).run()
    store = SqliteCheckpointStore(bank)
    with store.transaction() as tx:
        assert balance(tx, "acc-1") == Decimal("70.05")
    store.close()


def test_every_command_has_help() -> None:
    for args in (
        [],
        ["project"],
        ["project", "run"],
        ["project", "replay"],
        ["project", "status"],
        ["project", "derive"],
        ["dlq"],
        ["dlq", "list"],
        ["dlq", "replay"],
    ):
        out = CliRunner().invoke(cli, [*args, "--help"])
        assert out.exit_code == 0 and "Usage:" in out.output, args


def test_replay_rebuilds_status_shows_lag_and_dlq_lists_parked_records(
    kafka_config: KafkaConfig,
    kafka_store: KafkaEventStore,
    tmp_path: Path,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for i in range(40):
        payload = {"amount": i, "poison": i == 7}
        kafka_store.append(
            "Acct", f"a{i % 4}", [NewEvent(event_type="Added", payload=payload)], ANY
        )
    db = str(tmp_path / "rm.db")
    # A module of this test's own, so that its group and dead-letter topic are its own.
    (tmp_path / f"proj_{unique}.py").write_text(
        "from tests.workers.projector import totals_class\n"
        f"Totals = totals_class({unique!r}, 'Acct', 'totals')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = f"proj_{unique}:Totals"
    invoke(kafka_config, "project", "replay", spec, "--from-beginning", "-y", "--database", db)
    with sqlite3.connect(db) as conn:
        n, total = conn.execute("SELECT sum(n), sum(amount) FROM totals").fetchone()
    assert (n, total) == (39, sum(range(40)) - 7)

    status = json.loads(
        invoke(kafka_config, "project", "status", unique, "--json", "--database", db)
    )
    assert status["total_lag"] == 0 and len(status["partitions"]) == kafka_config.partitions
    status = json.loads(invoke(kafka_config, "project", "status", unique, "--json"))
    assert {p["topic"] for p in status["partitions"]} == {kafka_config.topic("Acct")}

    parked = json.loads(invoke(kafka_config, "dlq", "list", unique, "--json"))
    assert [p["errorType"] for p in parked] == ["ValueError"]
    # The handler still refuses it: replay stops with the reason and keeps it parked.
    result = CliRunner().invoke(
        cli,
        ["dlq", "replay", spec, "--database", db],
        env=env(kafka_config),
    )
    assert result.exit_code != 0 and "still fails" in str(result.exception)
    assert len(json.loads(invoke(kafka_config, "dlq", "list", unique, "--json"))) == 1
    # Replaying again gives the same read model, not twice the totals.
    invoke(kafka_config, "project", "replay", spec, "-y", "--database", db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT sum(n) FROM totals").fetchone()[0] == 39
