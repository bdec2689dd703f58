"""Workload 4, recovery: writer restart time vs index size (cold: index rebuilt from the
log; warm: saved index, caught up from its checkpoint), the peak RSS of a writer process
owning N aggregates; failover after ``kill -9`` of an owner, takeover from an owner
frozen inside its commit, and appends through the loss of a broker (``takeover.py``).

Writers run in child processes (``python -m benchmarks.recovery own ...``), so that RSS is that
of a writer alone; start time runs from creating the store to owning every partition
(group join, fencing, index load or rebuild, catch-up). The log of N aggregates
(one event each) is written with a raw producer, in kes's wire format, to save time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from benchmarks.baselines import new_event
from benchmarks.common import ROOT, peak_rss_mib
from benchmarks.harness import DURABILITY, Bench
from kes import KesError
from kes.envelope import encode, headers, to_envelope
from kes.kafka.topics import Topics
from kes.partitioning import partition_for
from kes.store.kafka import KafkaConfig, KafkaEventStore

AGGREGATE = "BenchRecovery"


def fill_log(config: KafkaConfig, aggregates: int) -> float:
    """``aggregates`` one-event streams in the event topic; seconds taken."""
    info = Topics(config).ensure_event_topic(AGGREGATE)
    producer = Producer(
        {
            "bootstrap.servers": config.bootstrap_servers,
            **DURABILITY,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
        }
    )
    started = time.perf_counter()
    ev = new_event(100)
    for a in range(aggregates):
        agg = f"{uuid.UUID(int=a)}"
        env = to_envelope(AGGREGATE, agg, 1, ev)
        p = partition_for(agg, info.partitions)
        while True:
            try:
                producer.produce(info.name, encode(env), agg, partition=p, headers=headers(env))
                break
            except BufferError:
                producer.poll(0.01)
        if a % 1000 == 0:
            producer.poll(0)
    producer.flush(300)
    return time.perf_counter() - started


def child_args(config: KafkaConfig) -> list[str]:
    return [
        "--session-timeout-ms",
        str(config.session_timeout_ms),
        "--bootstrap",
        config.bootstrap_servers,
        "--prefix",
        config.ns,
        "--index-dir",
        config.index_dir,
        "--partitions",
        str(config.partitions),
    ]


def run_child(config: KafkaConfig) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.recovery", "own", *child_args(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"recovery child failed (exit {proc.returncode}): {proc.stderr[-800:]}")


def restart(bench: Bench, sizes: list[int]) -> None:
    for n in sizes:
        config = bench.config(f"recovery{n}")
        took = fill_log(config, n)
        bench.note(f"recovery: {n:,} one-event aggregates written raw in {took:.1f}s")
        cold, warm = [], []
        for _ in range(bench.runs):
            shutil.rmtree(config.index_dir, ignore_errors=True)
            cold.append(run_child(config))
        for _ in range(bench.runs):
            warm.append(run_child(config))  # the previous run saved the index on close
        params = {"aggregates": n}
        bench.add(
            "recovery",
            "writer start, index rebuilt from the log (cold)",
            "s",
            [r["ready_s"] for r in cold],
            params,
        )
        bench.add(
            "recovery",
            "writer restart, saved index (warm)",
            "s",
            [r["ready_s"] for r in warm],
            params,
        )
        bench.add(
            "recovery",
            "writer peak RSS",
            "MiB",
            [r["peak_rss_mib"] for r in cold + warm],
            params,
            indexed_aggregates=[r["aggregates"] for r in cold],
        )


def run(bench: Bench) -> None:
    from benchmarks.takeover import broker_kill, failover, zombie

    sizes = [100_000] if bench.quick else [10_000, 100_000, 1_000_000]
    restart(bench, sizes)
    runs = 1 if bench.quick else bench.runs
    failover(bench, runs)
    zombie(bench, runs)
    broker_kill(bench, 1 if bench.quick else min(2, bench.runs))
    if bench.quick:
        bench.note(
            "recovery: --quick runs failover, zombie takeover and broker kill once each "
            "(each run waits out a timeout)"
        )


# ---- the child process ------------------------------------------------------------


def own(args: argparse.Namespace) -> None:
    if args.pause_in_commit:
        pause_in_commit(args.pause_in_commit)
    config = KafkaConfig(
        bootstrap_servers=args.bootstrap,
        namespace=args.prefix,
        index_dir=args.index_dir,
        partitions=args.partitions,
        session_timeout_ms=args.session_timeout_ms,
    )
    store = KafkaEventStore(config)
    t = time.perf_counter()
    deadline = time.monotonic() + 300
    while len(store.owned_partitions(AGGREGATE)) < args.partitions:
        if time.monotonic() > deadline:
            raise SystemExit("did not own every partition within 300 s")
        time.sleep(0.02)
    ready = time.perf_counter() - t
    member = store.member(AGGREGATE)
    aggregates = sum(len(w.index) for w in member.owned().values())
    print(
        json.dumps(
            {
                "ready_s": ready,
                "aggregates": aggregates,
                "peak_rss_mib": peak_rss_mib(),
            }
        ),
        flush=True,
    )
    for i in range(args.append_threads):
        threading.Thread(target=keep_appending, args=(store, i), daemon=True).start()
    if args.hold:
        while True:
            time.sleep(1)
    store.close()


def keep_appending(store: KafkaEventStore, i: int) -> None:
    """One caller appending single events to its own aggregates, forever."""
    versions: dict[str, int] = {}
    n = 0
    while True:
        agg = f"z{i}-{n % 50}"
        n += 1
        try:
            versions[agg] = store.append(
                AGGREGATE, agg, [new_event(100)], versions.get(agg, 0)
            ).version
        except KesError:
            time.sleep(0.05)


def pause_in_commit(trigger: str) -> None:
    """The first commit after ``trigger`` appears stops the whole process (SIGSTOP),
    after the transaction's offsets were accepted: a GC pause or a frozen VM at the worst
    moment for a successor. Writes ``{"at": time, "partitions": [...]}`` (the partitions
    that transaction wrote) to ``TRIGGER.paused`` first."""
    from kes.kafka.produce import TransactionalProducer

    commit, send_offsets = TransactionalProducer.commit, TransactionalProducer.send_offsets
    sent: list[int] = []

    def recording_send_offsets(self: TransactionalProducer, offsets: Any, *args: Any) -> None:
        sent[:] = [tp.partition for tp in offsets]
        send_offsets(self, offsets, *args)

    def paused_commit(self: TransactionalProducer) -> None:
        if os.path.exists(trigger) and sent:
            os.remove(trigger)
            tmp = f"{trigger}.tmp"
            Path(tmp).write_text(json.dumps({"at": time.time(), "partitions": sorted(sent)}))
            os.replace(tmp, f"{trigger}.paused")
            os.kill(os.getpid(), signal.SIGSTOP)
        commit(self)

    TransactionalProducer.send_offsets = recording_send_offsets  # type: ignore[method-assign,assignment]
    TransactionalProducer.commit = paused_commit  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.recovery")
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("own", help="(internal) own every partition, print JSON, exit or hold")
    o.add_argument("--bootstrap", required=True)
    o.add_argument("--prefix", required=True)
    o.add_argument("--index-dir", required=True)
    o.add_argument("--partitions", type=int, default=12)
    o.add_argument("--hold", action="store_true")
    o.add_argument("--session-timeout-ms", type=int, default=KafkaConfig().session_timeout_ms)
    o.add_argument("--append-threads", type=int, default=0)
    o.add_argument(
        "--pause-in-commit", help="SIGSTOP inside the first commit after this file appears"
    )
    args = ap.parse_args()
    Path(args.index_dir).mkdir(parents=True, exist_ok=True)
    own(args)


if __name__ == "__main__":
    main()
