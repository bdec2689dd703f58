"""The window group fencing opens: a writer paused inside its commit, after its
transaction's offsets were accepted. Its successor must serve only once that transaction
is decided, whichever way it goes. Checked with a plain read_committed consumer."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kes.store.kafka import KafkaConfig
from tests.faults import (
    check_acknowledged,
    check_streams,
    outcomes,
    read_log,
    spawn_appender,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _pause_owner(
    config: KafkaConfig, tmp_path: Path
) -> tuple[subprocess.Popen[bytes], Path, float, float]:
    """Start an owner of every partition and stop it inside a commit; (process, its
    outcomes file, when it stopped, when the transaction it stopped in began)."""
    trigger, out = tmp_path / "pause", tmp_path / "a.jsonl"
    a = spawn_appender(
        config,
        out,
        seconds=45,  # the pause included: some 20 s of appends after the resume
        threads=4,
        ready=tmp_path / "a.ready",
        own_only=True,
        index_dir=str(tmp_path / "idx-a"),
        pause_in_commit=trigger,
    )
    assert wait_for(tmp_path / "a.ready")["owned"] == list(range(config.partitions))
    time.sleep(2)  # appending, a transaction in flight nearly all the time
    trigger.touch()
    paused = wait_for(Path(f"{trigger}.paused"), timeout=30)
    return a, out, float(paused["at"]), float(paused["begun"])


def test_successor_waits_for_a_paused_owners_transaction_and_counts_its_events(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    """The paused owner resumes before its transaction times out: its commit succeeds,
    so the successor must index those events before its own first append."""
    slow = dataclasses.replace(kafka_config, transaction_timeout_ms=40_000)
    a, out_a, paused_at, _ = _pause_owner(slow, tmp_path)
    out_b = tmp_path / "b.jsonl"
    b = spawn_appender(
        kafka_config,
        out_b,
        seconds=15,
        threads=2,
        ready=tmp_path / "b.ready",
        index_dir=str(tmp_path / "idx-b"),
    )
    # Past A's session (the group moves its partitions to B), well before its transaction's
    # timeout: B is taking over, held back by A's open transaction.
    time.sleep(kafka_config.session_timeout_ms / 1000 + 4)
    assert not (tmp_path / "b.ready").exists(), "B served while A's transaction was open"
    resumed_at = time.time()
    os.kill(a.pid, signal.SIGCONT)
    ready_b = wait_for(tmp_path / "b.ready", timeout=120)
    # (A, back, may rejoin the group and get some partitions again.)
    assert ready_b["owned"], "B took over nothing"
    assert ready_b["at"] >= resumed_at, "B was ready before A's transaction was decided"
    assert b.wait(timeout=120) == 0
    assert a.wait(timeout=120) == 0

    records = read_log(
        kafka_config.bootstrap_servers, kafka_config.topic("Race"), kafka_config.partitions
    )
    check_streams(records)  # B appended after A's events, never over them
    by_id = check_acknowledged(records, outcomes(out_a, out_b))
    result_a = outcomes(out_a)
    committed_in_pause = [r for r in result_a.ok if r["t0"] < paused_at < r["t1"]]
    assert committed_in_pause, "no append of A was acknowledged by the commit it paused in"
    assert all(r["id"] in by_id for r in committed_in_pause)
    assert outcomes(out_b).ok, "B acknowledged nothing"
    print(
        f"\ntakeover held {ready_b['at'] - paused_at:.1f}s by a transaction paused for "
        f"{resumed_at - paused_at:.1f}s; {len(committed_in_pause)} appends committed in it"
    )


def test_a_paused_owners_transaction_times_out_and_nothing_of_it_appears(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    """The paused owner stays stopped past its transaction timeout: the coordinator aborts
    the transaction, the successor serves after that, and the resumed owner's commit
    fails as fenced; nothing it wrote in that transaction, or after, is visible."""
    a, out_a, paused_at, begun_at = _pause_owner(kafka_config, tmp_path)
    out_b = tmp_path / "b.jsonl"
    b = spawn_appender(
        kafka_config,
        out_b,
        seconds=20,
        threads=2,
        ready=tmp_path / "b.ready",
        index_dir=str(tmp_path / "idx-b"),
    )
    ready_b = wait_for(tmp_path / "b.ready", timeout=120)
    assert ready_b["owned"] == list(range(kafka_config.partitions))
    took = ready_b["at"] - paused_at
    # The coordinator times the transaction from its first partition, after begin(): it
    # aborts no earlier than this. (On a slow machine a transaction can be seconds old
    # when its commit starts, so the pause itself is not the reference.)
    timeout_s = kafka_config.transaction_timeout_ms / 1000
    open_for = ready_b["at"] - begun_at
    assert open_for >= timeout_s - 0.5, (
        f"B served {open_for:.1f}s after A's transaction began ({took:.1f}s after the "
        f"pause), before that transaction could time out ({timeout_s:.0f}s)"
    )
    time.sleep(3)  # B appends to what A owned
    os.kill(a.pid, signal.SIGCONT)
    assert b.wait(timeout=120) == 0
    assert a.wait(timeout=120) == 0

    records = read_log(
        kafka_config.bootstrap_servers, kafka_config.topic("Race"), kafka_config.partitions
    )
    check_streams(records)
    by_id = check_acknowledged(records, outcomes(out_a, out_b))
    result_a = outcomes(out_a)
    in_pause = [r for r in result_a.ok + result_a.error if r["t0"] < paused_at < r["t1"]]
    assert in_pause, "A had no append in the transaction it paused in"
    assert all(r["id"] not in by_id for r in in_pause), "the timed-out transaction is visible"
    assert all(r["error"] == "FencedError" for r in in_pause if "error" in r)
    # Once back, A learns it lost its partitions and forwards to B: what was acknowledged
    # is in the log (checked above); what failed is not.
    assert all(r["id"] not in by_id for r in result_a.error)
    print(
        f"\ntakeover after a paused owner: {took:.1f}s, {open_for:.1f}s after its "
        f"transaction began (transaction timeout "
        f"{kafka_config.transaction_timeout_ms / 1000:.0f}s, session "
        f"{kafka_config.session_timeout_ms / 1000:.0f}s)"
    )
