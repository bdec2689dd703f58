"""`kes project run -n 2` supervises its members, against real Kafka: a member killed with
kill -9 is started again, a frozen one (SIGSTOP) is detected by its silence and replaced,
and the read model still holds every event of the log; a member that keeps failing makes
the command give up with status 1. Checked through the supervisor's state file, `kes
project alive` and a plain read of the log."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kes import ANY, NewEvent
from kes.processes import read_state
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import read_log
from tests.serve_support import ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

STALL_S = 8


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def env_for(config: KafkaConfig, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KES_BOOTSTRAP_SERVERS": config.bootstrap_servers,
        "KES_NAMESPACE": config.ns,
        "KES_SESSION_TIMEOUT_MS": str(config.session_timeout_ms),
        "KES_STATE_DIR": str(tmp_path / "run"),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }


def append(store: KafkaEventStore, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        store.append("Acct", f"a{i % 40}", [NewEvent(event_type="Added", payload={"i": i})], ANY)


def applied(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as conn:
        try:
            return [r[0] for r in conn.execute("SELECT event_id FROM applied")]
        except sqlite3.OperationalError:
            return []


def test_killed_and_frozen_members_are_replaced_and_nothing_is_missed(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    db = tmp_path / "applied.db"
    name = f"{unique}.applied"
    (tmp_path / f"sup_{unique}.py").write_text(
        "from tests.workers.projector import applied_class\n"
        f"Applied = applied_class({name!r}, 'Acct', {str(db)!r}, 'at_least_once')\n"
    )
    append(kafka_store, 200)
    env = env_for(kafka_config, tmp_path)
    state_path = tmp_path / "run" / f"project-{name}.json"
    cmd = [sys.executable, "-m", "kes.cli", "project", "run", f"sup_{unique}:Applied"]
    run = subprocess.Popen(
        [*cmd, "-n", "2", "--stall-timeout", str(STALL_S), "--max-restarts", "3"],
        env=env,
        cwd=tmp_path,
    )

    def state() -> dict[str, Any]:
        return read_state(state_path) or {"members": []}

    def alive_code() -> int:
        probe = [sys.executable, "-m", "kes.cli", "project", "alive", name]
        return subprocess.run(probe, env=env, cwd=tmp_path, capture_output=True).returncode

    try:
        until(lambda: len(set(applied(db))) == 200, 90, "the two members applied the log")
        members = state()["members"]
        assert [m["alive"] for m in members] == [True, True]
        assert alive_code() == 0

        # kill -9: the supervisor starts the member again.
        first = members[0]["pid"]
        os.kill(first, signal.SIGKILL)
        until(
            lambda: (m := state()["members"][0])["pid"] != first and m["alive"],
            60,
            "member 0 restarted after kill -9",
        )
        assert state()["members"][0]["restarts"] == 1
        assert state()["members"][0]["last_exit"] == -9

        # SIGSTOP: silent while the log grows; killed and replaced after STALL_S.
        frozen = state()["members"][1]["pid"]
        os.kill(frozen, signal.SIGSTOP)
        stopped_at = time.monotonic()
        append(kafka_store, 200, start=200)
        until(
            lambda: (m := state()["members"][1])["pid"] != frozen and m["alive"],
            STALL_S + 60,
            "the frozen member replaced",
        )
        replaced_after = time.monotonic() - stopped_at
        member = state()["members"][1]
        assert member["restarts"] == 1 and member["last_exit"] == -9
        assert member["last_error"].startswith("stalled: no progress for")
        with pytest.raises(ProcessLookupError):
            os.kill(frozen, 0)  # the frozen process is gone, not left stopped

        log_ids = {
            r["eventId"]
            for r in read_log(kafka_config.bootstrap_servers, kafka_config.topic("Acct"), 4)
        }
        assert len(log_ids) == 400
        until(lambda: log_ids <= set(applied(db)), 90, "every event applied after the faults")
        assert alive_code() == 0
        print(f"\nfrozen member replaced {replaced_after:.1f}s after SIGSTOP (stall {STALL_S}s)")
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(60)
    assert code == 0
    assert json.loads(state_path.read_text())["stopping"] is True
    assert alive_code() == 1  # stopped: a probe says so
    assert set(applied(db)) <= log_ids  # nothing applied that is not in the log


def test_a_member_that_keeps_failing_stops_the_command_with_status_1(
    kafka_config: KafkaConfig, tmp_path: Path, unique: str
) -> None:
    (tmp_path / f"bad_{unique}.py").write_text(
        "from kes.projections import Projection\n"
        "class Broken(Projection):\n"
        f"    name = {unique + '.broken'!r}\n"
        "    aggregate_types = ('Acct',)\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('the read model database is unreachable')\n"
    )
    env = env_for(kafka_config, tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kes.cli",
            "project",
            "run",
            f"bad_{unique}:Broken",
            "--supervise",
            "--max-restarts",
            "2",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "giving up" in done.stderr
    state = read_state(tmp_path / "run" / f"project-{unique}.broken.json")
    assert state is not None
    (member,) = state["members"]
    assert member["restarts"] == 2 and member["last_exit"] == 1
    assert member["last_error"] == "RuntimeError: the read model database is unreachable"


def test_a_frozen_pipeline_member_is_replaced_and_results_stay_exact(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    """`kes stream run -n 2`: SIGSTOP one member while events keep coming; the supervisor
    replaces it after the stall timeout, and the outputs equal a recomputation from the
    source topic (exactly once through the freeze, the kill and the restart)."""
    from tests.test_streams import BankTraffic, bank_results, expected_bank

    (tmp_path / f"pipe_{unique}.py").write_text(
        "from examples.bank.streams import monitoring\n"
        "from kes.streams import Pipeline\n"
        f"pipeline = Pipeline({unique!r}, monitoring.build, aggregates=monitoring.aggregates)\n"
    )
    env = env_for(kafka_config, tmp_path)
    state_path = tmp_path / "run" / f"stream-{unique}.json"
    traffic = BankTraffic(kafka_store, kafka_config, accounts=6)
    run = subprocess.Popen(
        [
            *[sys.executable, "-m", "kes.cli", "stream", "run", f"pipe_{unique}:pipeline"],
            *["-n", "2", "--stall-timeout", "15", "--state-dir", str(tmp_path / "st")],
        ],
        env=env,
        cwd=tmp_path,
    )

    def members() -> list[dict[str, Any]]:
        state = read_state(state_path) or {"members": []}
        listed: list[dict[str, Any]] = state["members"]
        return listed

    try:
        until(lambda: sum(bank_results(kafka_config)[0].values()) > 0, 120, "first results")
        frozen = members()[1]["pid"]
        os.kill(frozen, signal.SIGSTOP)
        until(
            lambda: (m := members()[1])["pid"] != frozen and m["alive"],
            120,
            "the frozen pipeline member replaced",
        )
        assert members()[1]["last_error"].startswith("stalled: no progress for")
        traffic.stop()
        expected = expected_bank(kafka_config)
        until(lambda: bank_results(kafka_config) == expected, 120, "results equal the log's")
        time.sleep(2)
        assert bank_results(kafka_config) == expected  # nothing doubled later
    finally:
        traffic.stop()
        run.send_signal(signal.SIGTERM)
        code = run.wait(90)
    assert code == 0
