"""Workload 1, conditional append: writers x batch x event size x stream distribution.

Each writer thread appends to a stream picked from the distribution with the version it
last saw for that stream (shared by all writers, as a cache of the store would be). A
``ConcurrencyError`` counts as a conflict; the writer takes the actual version from it
and goes on (it does not retry the same events).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

from benchmarks.baselines import create_topic, kes_record, new_event, raw_produce
from benchmarks.common import latency_ms, percentile
from benchmarks.harness import Bench
from kes import ConcurrencyError, NewEvent
from kes.store.kafka import KafkaEventStore

AGGREGATE = "BenchAppend"
STREAMS = {"hot": 1, "uniform": 10_000, "zipf": 10_000}
ZIPF_S = 1.0


def stream_picker(kind: str, seed: int) -> Iterator[int]:
    """Endless stream indexes: always 0 (hot), uniform over 10k, or Zipf(s=1) over 10k."""
    rng = random.Random(seed)
    n = STREAMS[kind]
    if kind == "hot":
        return itertools.repeat(0)
    if kind == "uniform":
        return (rng.randrange(n) for _ in itertools.count())
    cum = list(itertools.accumulate(1 / (k + 1) ** ZIPF_S for k in range(n)))
    ranks = list(range(n))
    rng.shuffle(ranks)  # hot streams spread over partitions, not all at the low ids
    sample = rng.choices(ranks, cum_weights=cum, k=50_000)
    return itertools.cycle(sample)


def run_cell(
    store: KafkaEventStore,
    cell: str,
    writers: int,
    batch: int,
    size: int,
    streams: str,
    seconds: float,
) -> dict[str, Any]:
    known: dict[str, int] = {}
    latencies: list[list[float]] = [[] for _ in range(writers)]
    conflicts = [0] * writers
    events_done = [0] * writers
    start = threading.Barrier(writers + 1)
    stop_at = [0.0]

    def writer(i: int) -> None:
        pick = stream_picker(streams, seed=zlib.crc32(f"{cell}/{i}".encode()))
        lat = latencies[i]
        start.wait()
        while time.perf_counter() < stop_at[0]:
            sid = f"{cell}-{next(pick)}"
            events: list[NewEvent] = [new_event(size) for _ in range(batch)]
            expected = known.get(sid, 0)
            t = time.perf_counter()
            try:
                result = store.append(AGGREGATE, sid, events, expected)
            except ConcurrencyError as exc:
                conflicts[i] += 1
                known[sid] = max(known.get(sid, 0), exc.actual)
                continue
            lat.append(time.perf_counter() - t)
            events_done[i] += batch
            if result.version > known.get(sid, 0):
                known[sid] = result.version

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
    for th in threads:
        th.start()
    stop_at[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    start.wait()
    for th in threads:
        th.join(timeout=seconds + 120)
    elapsed = time.perf_counter() - started
    flat = [x for lat in latencies for x in lat]
    return {
        "events_per_s": sum(events_done) / elapsed,
        "appends_per_s": len(flat) / elapsed,
        "conflicts": sum(conflicts),
        "conflicts_per_s": sum(conflicts) / elapsed,
        "latency": latency_ms(flat),
    }


def matrix(quick: bool) -> list[tuple[int, int, int, str]]:
    if quick:
        return [
            (w, b, 100, s) for w in (1, 64) for b in (1, 100) for s in ("hot", "uniform", "zipf")
        ]
    return [
        (w, b, size, s)
        for size in (100, 1000)
        for s in ("hot", "uniform", "zipf")
        for b in (1, 10, 100)
        for w in (1, 4, 16, 64)
    ]


def paired(writers: int, batch: int, streams: str) -> bool:
    """Cells whose every run is followed by a raw-producer run over the same bytes."""
    return batch == 100 and streams == "uniform"


def run(bench: Bench) -> None:
    seconds = 0.6 if bench.quick else 1.5
    config = bench.config("append", max_batch_events=2_000)
    raw_topics: dict[int, str] = {}
    with KafkaEventStore(config) as store:
        store.owned_partitions(AGGREGATE)
        store.append(AGGREGATE, "warm-up", [new_event(100)], 0)
        for n, (writers, batch, size, streams) in enumerate(matrix(bench.quick)):
            runs, raws = [], []
            pair = paired(writers, batch, streams)
            if pair and size not in raw_topics:
                raw_topics[size] = create_topic(bench, f"paired{size}")
            for r in range(bench.runs):
                runs.append(run_cell(store, f"c{n}r{r}", writers, batch, size, streams, seconds))
                if pair:  # the baseline right after, under the same machine load
                    value, hs = kes_record(size)
                    raws.append(raw_produce(bench, raw_topics[size], value, hs, seconds))
            params = {"writers": writers, "batch": batch, "event_size": size, "streams": streams}
            lat = {q: [r["latency"][q] for r in runs] for q in ("p50", "p95", "p99", "p99.9")}
            extra: dict[str, Any] = {}
            if raws:
                extra["paired_raw_producer"] = raws
                extra["paired_ratio"] = [
                    r["events_per_s"] / raw for r, raw in zip(runs, raws, strict=True)
                ]
            bench.add(
                "append",
                "conditional append",
                "events/s",
                [r["events_per_s"] for r in runs],
                params,
                appends_per_s=[r["appends_per_s"] for r in runs],
                conflicts=[r["conflicts"] for r in runs],
                latency_ms={q: percentile(v, 50) for q, v in lat.items()},
                latency_runs_ms=lat,
                **extra,
            )
