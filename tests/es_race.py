"""Processes of the eventsourcing bank example race on the same accounts; then the log is
checked by a plain Kafka consumer (no kes code): used by tests and scripts/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from examples.eventsourcing_bank.application import BankAccounts

from tests.faults import read_topic

ROOT = Path(__file__).resolve().parent.parent
INITIAL = Decimal(100)
EVENTS_PER_OK = {"deposit": 1, "withdraw": 1, "transfer": 2}


@dataclass
class Race:
    accounts: list[str]
    outcomes: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    records: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def run_race(
    env: dict[str, str],
    workdir: Path,
    *,
    processes: int = 2,
    threads: int = 4,
    commands: int = 25,
    accounts: int = 3,
    seed: int = 0,
    timeout_s: float = 180,
    ops: str | None = None,
    kill_after_s: float | None = None,
) -> Race:
    """Open ``accounts`` (100 each), run ``processes`` workers of ``threads`` threads doing
    ``commands`` commands each on them, and return the outcomes and the raw log.

    ``ops``: the commands to pick from (comma-separated); ``kill_after_s``: kill -9 the
    first worker that long after the race starts (its in-flight commands are unknown)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with BankAccounts(env=env) as bank:
        ids = [bank.open_account(f"Holder {i}", f"holder{i}@example.com") for i in range(accounts)]
        for account in ids:
            bank.deposit(account, INITIAL)
    race = Race([str(a) for a in ids])
    go = workdir / "go"
    procs = []
    for n in range(processes):
        cmd = [
            sys.executable,
            "-m",
            "tests.workers.es_bank",
            "--accounts",
            json.dumps(race.accounts),
            "--commands",
            str(commands),
            "--threads",
            str(threads),
            "--seed",
            str(seed * 100 + n),
            "--out",
            str(workdir / f"out-{n}.jsonl"),
            "--ready",
            str(workdir / f"ready-{n}"),
            "--go",
            str(go),
        ]
        if ops is not None:
            cmd += ["--ops", ops]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}))
    deadline = time.monotonic() + 90
    while not all((workdir / f"ready-{n}").exists() for n in range(processes)):
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            for p in procs:
                p.kill()
            raise RuntimeError("a bank worker did not start; see its stderr above")
        time.sleep(0.05)
    started = time.monotonic()
    go.write_text("go")
    if kill_after_s is not None:
        time.sleep(kill_after_s)
        procs[0].kill()
    for p in procs:
        p.wait(timeout=timeout_s)
    race.seconds = time.monotonic() - started
    survivors = procs[1:] if kill_after_s is not None else procs
    assert all(p.returncode == 0 for p in survivors), [p.returncode for p in procs]
    for n in range(processes):
        for line in (workdir / f"out-{n}.jsonl").read_text().splitlines():
            row = json.loads(line)
            race.outcomes[row["outcome"]].append(row)
    return race


def read_bank_log(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [r.json() for r in read_topic(bootstrap, topic, seconds=120)]


def check_race(race: Race) -> dict[str, Any]:
    """Assert what a correct store guarantees after the race; return a summary."""
    errors = race.outcomes.get("error", []) + race.outcomes.get("unavailable", [])
    assert errors == [], f"commands failed with something other than IntegrityError: {errors[:5]}"
    records = race.records
    n = len(records)
    # The log is gapless: kes versions and notification ids are both 1..n in log order.
    assert [r["version"] for r in records] == list(range(1, n + 1))
    assert [int(r["metadata"]["notificationId"]) for r in records] == list(range(1, n + 1))
    # Each account's versions are 1..k in log order: no lost and no doubled update.
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_account[r["metadata"]["originatorId"]].append(r)
    assert sorted(by_account) == sorted(race.accounts)
    for account, events in by_account.items():
        versions = [int(e["metadata"]["originatorVersion"]) for e in events]
        assert versions == list(range(1, len(events) + 1)), f"{account}: {versions}"
    # Exactly the commands that succeeded are in the log, and money is conserved.
    ok = race.outcomes.get("ok", [])
    opening = 2 * len(race.accounts)  # Opened, then the initial deposit
    assert n == opening + sum(EVENTS_PER_OK[c["op"]] for c in ok)
    expected = {a: INITIAL for a in race.accounts}
    for c in ok:
        amount = Decimal(c["amount"])
        if c["op"] == "deposit":
            expected[c["a"]] += amount
        elif c["op"] == "withdraw":
            expected[c["a"]] -= amount
        else:
            expected[c["a"]] -= amount
            expected[c["b"]] += amount
    assert log_balances(records) == expected
    return {
        "commands": sum(len(v) for v in race.outcomes.values()),
        "ok": len(ok),
        "conflict": len(race.outcomes.get("conflict", [])),
        "refused": len(race.outcomes.get("refused", [])),
        "events": n,
        "seconds": round(race.seconds, 2),
        "conflict_errors": sorted({c["error"] for c in race.outcomes.get("conflict", [])}),
    }


def log_balances(records: list[dict[str, Any]]) -> dict[str, Decimal]:
    """Each account's balance, summed from the raw records (credits minus debits)."""
    balances: dict[str, Decimal] = defaultdict(Decimal)
    for r in records:
        account = r["metadata"]["originatorId"]
        kind = r["eventType"].rsplit(".", 1)[-1]
        if kind in ("Credited", "Debited"):
            amount = Decimal(r["payload"]["amount"]["_data_"])
            balances[account] += amount if kind == "Credited" else -amount
    return dict(balances)


def check_transfers_only(race: Race) -> dict[str, Any]:
    """After a race of transfers only, with a worker killed mid-way: the log is gapless,
    each account's versions are 1..n, every debit is followed by its credit in the same
    insert, and no money appeared or vanished; the survivors saw no unexpected error."""
    errors = race.outcomes.get("error", [])
    assert errors == [], f"unexpected errors: {errors[:5]}"
    records = race.records
    n = len(records)
    assert [r["version"] for r in records] == list(range(1, n + 1))
    assert [int(r["metadata"]["notificationId"]) for r in records] == list(range(1, n + 1))
    by_account: dict[str, list[int]] = defaultdict(list)
    for r in records:
        by_account[r["metadata"]["originatorId"]].append(int(r["metadata"]["originatorVersion"]))
    for account, versions in by_account.items():
        assert versions == list(range(1, len(versions) + 1)), f"{account}: {versions}"
    opening = 2 * len(race.accounts)
    transfers = records[opening:]
    assert len(transfers) % 2 == 0, "a transfer was recorded in half"
    for debit, credit in zip(transfers[0::2], transfers[1::2], strict=True):
        assert debit["eventType"].endswith(".Debited"), debit
        assert credit["eventType"].endswith(".Credited"), credit
        assert debit["payload"]["amount"] == credit["payload"]["amount"]
    assert sum(log_balances(records).values()) == INITIAL * len(race.accounts)
    ok = race.outcomes.get("ok", [])
    assert len(ok) <= len(transfers) // 2  # every acknowledged transfer is in the log
    return {
        "transfers_in_log": len(transfers) // 2,
        "acknowledged": len(ok),
        "conflict": len(race.outcomes.get("conflict", [])),
        "refused": len(race.outcomes.get("refused", [])),
        "unavailable": len(race.outcomes.get("unavailable", [])),
        "unavailable_outcomes": sorted({u["error"] for u in race.outcomes.get("unavailable", [])}),
        "seconds": round(race.seconds, 2),
    }
