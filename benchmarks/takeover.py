"""Part of workload 4 (recovery): how long appends to a partition stop when its owner
dies, when its owner freezes inside a transaction (a zombie), and when one of three
brokers dies.

* **kill -9**: owner A (a child process) and B (this process) split the partitions; A is
  killed; the clock runs until B serves an append to a partition A owned.
* **zombie**: A owns every partition and appends; A stops itself (SIGSTOP) inside a
  commit, after its transaction's offsets were accepted (the worst moment: see
  docs/design.md). B starts; the clock runs from A's stop until B serves an append to a
  partition that frozen transaction wrote. A's session timeout is set below the
  transaction timeout, so what holds B back is A's open transaction.
* **broker kill** (needs ``--cluster3-dir``): 16 callers append to a 3-node cluster; the
  coordinator of the writer group is killed with SIGKILL; reported: the longest time no
  append completed in the 40 s after the kill, the appends that failed, and whether
  appends had resumed by then (if not, the measure fails). The node is restarted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.baselines import new_event
from benchmarks.common import ROOT
from benchmarks.harness import Bench
from kes import KesError
from kes.kafka.topics import Topics
from kes.partitioning import partition_for
from kes.store.kafka import KafkaConfig, KafkaEventStore

AGGREGATE = "BenchRecovery"
ZOMBIE_SESSION_MS = 6_000
KILL_OBSERVE_S = 40.0


def spawn_owner(config: KafkaConfig, *extra: str) -> subprocess.Popen[str]:
    """A writer child (``python -m benchmarks.recovery own --hold``); returns once it
    owns every partition."""
    from benchmarks.recovery import child_args

    cmd = [sys.executable, "-m", "benchmarks.recovery", "own", "--hold", *child_args(config)]
    child = subprocess.Popen([*cmd, *extra], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout is not None
    if not child.stdout.readline():  # ready: owns every partition
        child.wait()
        raise RuntimeError(f"writer child exited with {child.returncode} before owning")
    return child


def serve_time(store: KafkaEventStore, agg: str, since: float, limit: float) -> float:
    """Seconds from ``since`` (time.time()) until ``store`` owns ``agg``'s partition and
    an append to it succeeded there; NaN past ``limit`` seconds."""
    m = store.member(AGGREGATE)
    p = partition_for(agg, m.partitions)
    while time.time() - since < limit:
        if m.owner_of(p, 0.02) is not None:
            try:
                store.append(AGGREGATE, agg, [new_event(100)], store.stream_version(AGGREGATE, agg))
                return time.time() - since
            except KesError:
                pass
        time.sleep(0.01)
    return float("nan")


def _stop(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait()


def failover(bench: Bench, runs: int) -> None:
    times: list[float] = []
    for r in range(runs):
        config = bench.config(f"failover{r}")
        Topics(config).ensure_event_topic(AGGREGATE)
        child = spawn_owner(config)
        try:
            b_config = bench.config(
                f"failover{r}", request_timeout_s=1.0, index_dir=str(bench.scratch / f"fo{r}b")
            )
            with KafkaEventStore(b_config) as b:
                deadline = time.monotonic() + 60
                owned: list[int] = []
                while time.monotonic() < deadline:
                    owned = b.owned_partitions(AGGREGATE)
                    if len(owned) >= config.partitions // 2:
                        break
                    time.sleep(0.1)
                agg = next(
                    f"fo-{i}"
                    for i in range(10_000)
                    if partition_for(f"fo-{i}", config.partitions) not in owned
                )
                b.append(AGGREGATE, agg, [new_event(100)], 0)  # forwarded to A
                os.kill(child.pid, signal.SIGKILL)
                times.append(serve_time(b, agg, time.time(), 120))
        finally:
            _stop(child)
    session = KafkaConfig().session_timeout_ms
    bound = session / 1000 + 2
    bench.add(
        "recovery",
        "failover after kill -9 of an owner",
        "s",
        times,
        {"session_timeout_ms": session},
        bound_s=bound,
    )


def zombie(bench: Bench, runs: int) -> None:
    times: list[float] = []
    for r in range(runs):
        config = bench.config(f"zombie{r}", session_timeout_ms=ZOMBIE_SESSION_MS)
        Topics(config).ensure_event_topic(AGGREGATE)
        trigger = bench.scratch / f"zombie{r}.pause"
        child = spawn_owner(config, "--append-threads", "4", "--pause-in-commit", str(trigger))
        try:
            time.sleep(1.0)  # appending: a transaction in flight nearly all the time
            trigger.touch()
            paused = Path(f"{trigger}.paused")
            deadline = time.monotonic() + 30
            while not paused.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            if not paused.exists():
                raise RuntimeError("the owner did not pause inside a commit within 30 s")
            held = json.loads(paused.read_text())
            paused_at, partitions = float(held["at"]), set(held["partitions"])
            # An aggregate whose partition the frozen transaction wrote: the one it holds.
            agg = next(
                f"z-{r}-{i}"
                for i in range(100_000)
                if partition_for(f"z-{r}-{i}", config.partitions) in partitions
            )
            b_config = dataclasses.replace(
                config,
                index_dir=str(bench.scratch / f"zb{r}"),
                member_name=f"successor-{uuid.uuid4().hex[:6]}",
                request_timeout_s=1.0,
            )
            with KafkaEventStore(b_config) as b:
                times.append(serve_time(b, agg, paused_at, 120))
        finally:
            _stop(child)  # SIGKILL ends a stopped process too
    timeout = KafkaConfig().transaction_timeout_ms
    bench.add(
        "recovery",
        "takeover from an owner stopped inside its commit (zombie)",
        "s",
        times,
        {"transaction_timeout_ms": timeout, "session_timeout_ms": ZOMBIE_SESSION_MS},
        bound_s=timeout / 1000 + 2,
    )


def broker_kill(bench: Bench, runs: int) -> None:
    """Appends through the loss of one of three brokers (see the module docstring)."""
    from kes.broker.cluster import LocalCluster

    if not bench.cluster3_dir or not bench.cluster3:
        bench.note("broker kill: no 3-node cluster given (--cluster3-dir); not measured")
        return
    cluster = LocalCluster.load(bench.cluster3_dir)
    if cluster is None:
        raise RuntimeError(f"no cluster state in {bench.cluster3_dir}")
    stalls: list[float] = []
    details: list[dict[str, Any]] = []
    for r in range(runs):
        stall, detail = _kill_one(bench, cluster, r)
        stalls.append(stall)
        details.append(detail)
    bench.add(
        "recovery",
        "longest append stall after SIGKILL of 1 of 3 brokers (group coordinator)",
        "s",
        stalls,
        {"nodes": 3, "callers": 16},
        failures=[
            f"run {i + 1}: appends had not resumed {KILL_OBSERVE_S:.0f} s after the kill"
            for i, d in enumerate(details)
            if not d["resumed"]
        ],
        runs_detail=details,
        errors=[d["errors"] for d in details],
        window_s=KILL_OBSERVE_S,
    )


def _kill_one(bench: Bench, cluster: Any, r: int) -> tuple[float, dict[str, Any]]:
    """One run: callers appending, the writer group's coordinator killed, then restarted.
    The stall is the longest time without a completed append within ``KILL_OBSERVE_S``
    after the kill; if appends had not resumed by then, the stall is that long at least
    and the run says so."""
    assert bench.cluster3 is not None
    config = bench.config(f"brokerkill{r}", bootstrap_servers=bench.cluster3)
    done: list[float] = []
    errors: list[str] = []
    stop = threading.Event()
    with KafkaEventStore(config) as store:
        store.owned_partitions(AGGREGATE)

        def caller(i: int) -> None:
            version = 0
            agg = f"bk-{r}-{i}"
            while not stop.is_set():
                try:
                    version = store.append(AGGREGATE, agg, [new_event(100)], version).version
                    done.append(time.time())
                except KesError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:160])
                    time.sleep(0.05)
                    with contextlib.suppress(KesError):
                        version = store.stream_version(AGGREGATE, agg)

        threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(16)]
        for th in threads:
            th.start()
        time.sleep(3.0)
        victim = _group_coordinator(config, config.writer_group(AGGREGATE))
        leads = _leads(config, config.topic(AGGREGATE), victim)
        killed_at = time.time()
        cluster.kill(victim)
        time.sleep(KILL_OBSERVE_S)
        end = killed_at + KILL_OBSERVE_S
        stop.set()
        for th in threads:
            th.join(timeout=60)
    after = sorted(t for t in done if killed_at <= t <= end)
    marks = [killed_at, *after, end]
    stall = max(b - a for a, b in itertools.pairwise(marks))
    cluster.restart(victim)
    detail = {
        "killed_node": victim,
        "it_led_event_partitions": leads,
        "appends_in_window": len(after),
        "resumed": bool(after) and end - after[-1] < 2.0,
        "errors": len(errors),
        "error_sample": sorted(set(errors))[:3],
    }
    return stall, detail


def _leads(config: KafkaConfig, topic: str, node: int) -> list[int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": config.bootstrap_servers}).list_topics(topic, timeout=15)
    return sorted(p for p, info in md.topics[topic].partitions.items() if info.leader == node)


def _group_coordinator(config: KafkaConfig, group: str) -> int:
    """The node id coordinating ``group`` (the broker a kill hurts most)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": config.bootstrap_servers})
    (future,) = admin.describe_consumer_groups([group], request_timeout=15).values()
    return int(future.result(timeout=20).coordinator.id)
