"""The eventsourcing bank example, unchanged, on kes: moved by its environment alone, its
events readable by a plain Kafka consumer, and two processes racing on its accounts."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from examples.eventsourcing_bank.application import BankAccounts

from kes.integrations.eventsourcing._shared import close_all
from tests.es_race import (
    ROOT,
    check_race,
    check_transfers_only,
    log_balances,
    read_bank_log,
    run_race,
)
from tests.faults import read_topic

pytestmark = pytest.mark.kafka


def kes_env(bootstrap: str, tmp_path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "kes.integrations.eventsourcing",
        "KES_BOOTSTRAP_SERVERS": bootstrap,
        "KES_NAMESPACE": "bank" + uuid.uuid4().hex[:8],
        "KES_INDEX_DIR": str(tmp_path / "index"),
        "KES_SESSION_TIMEOUT_MS": "6000",
    }


def run_demo(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "PERSISTENCE_MODULE"}
    out = subprocess.run(
        [sys.executable, "-m", "examples.eventsourcing_bank.demo"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_demo_prints_the_same_on_kes_as_in_memory(bootstrap_servers: str, tmp_path: Path) -> None:
    env = kes_env(bootstrap_servers, tmp_path)
    in_memory = run_demo({})
    on_kafka = run_demo(env)
    assert "Alice 70.00, Bob -40.00" in in_memory
    assert on_kafka == in_memory
    records = read_topic(bootstrap_servers, f"{env['KES_NAMESPACE']}.events.BankAccounts")
    assert len(records) == 7  # the demo's seven events: nothing refused was recorded


def test_plain_consumer_reads_each_event_with_its_originator_and_state(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    env = kes_env(bootstrap_servers, tmp_path)
    with BankAccounts(env=env) as bank:
        alice = bank.open_account("Alice", "alice@example.com")
        bank.deposit(alice, Decimal("12.50"))
    records = read_topic(bootstrap_servers, f"{env['KES_NAMESPACE']}.events.BankAccounts")
    assert len(records) == 2
    opened, credited = (r.json() for r in records)
    assert records[1].headers["eventType"] == (
        b"examples.eventsourcing_bank.domain:BankAccount.Credited"
    )
    assert opened["eventType"].endswith("BankAccount.Opened")
    assert opened["payload"]["full_name"] == "Alice"  # the state is JSON, not bytes
    assert credited["payload"]["amount"] == {"_type_": "decimal_str", "_data_": "12.50"}
    assert credited["metadata"] == {
        "originatorId": str(alice),
        "originatorIdType": "uuid",
        "originatorVersion": "2",
        "notificationId": "2",
    }
    assert [r.key for r in records] == [b"events", b"events"]
    assert [o["version"] for o in (opened, credited)] == [1, 2]
    assert log_balances([opened, credited]) == {str(alice): Decimal("12.50")}
    close_all()


def test_two_processes_racing_on_the_same_accounts_leave_a_gapless_log_and_every_refusal_is_an_integrity_error(  # noqa: E501
    bootstrap_servers: str, tmp_path: Path
) -> None:
    env = kes_env(bootstrap_servers, tmp_path)
    race = run_race(env, tmp_path / "race", processes=2, threads=4, commands=15, accounts=3)
    race.records = read_bank_log(bootstrap_servers, f"{env['KES_NAMESPACE']}.events.BankAccounts")
    summary = check_race(race)
    print(summary)
    assert summary["conflict"] > 0, "the processes never collided: the race proved nothing"
    assert summary["conflict_errors"] == ["EventExistsError"]
    with BankAccounts(env=env) as bank:  # the library's own view agrees with the raw log
        assert {a: bank.get_balance(uuid.UUID(a)) for a in race.accounts} == log_balances(
            race.records
        )
    close_all()


@pytest.mark.slow
def test_transfers_stay_whole_and_acknowledged_ones_stay_recorded_when_a_racing_process_is_killed(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    env = kes_env(bootstrap_servers, tmp_path)
    race = run_race(
        env,
        tmp_path / "race",
        processes=2,
        threads=4,
        commands=60,
        accounts=6,
        ops="transfer",
        kill_after_s=1.0,
    )
    race.records = read_bank_log(bootstrap_servers, f"{env['KES_NAMESPACE']}.events.BankAccounts")
    summary = check_transfers_only(race)
    print(summary)
    assert summary["transfers_in_log"] > 0
    close_all()
