"""Workload 1, conditional append: writers x batch x event size x stream distribution,
next to raw baselines run in a child process in the same run.

Each writer thread appends to a stream picked from the distribution with the version it
last saw for that stream (shared by all writers, as a cache of the store would be). A
``ConcurrencyError`` counts as a conflict (its latency is kept apart); the writer takes
the actual version from it and goes on (it does not retry the same events).

Baselines (``benchmarks/raw.py``, its own process, same window, start-up excluded):
every run of a uniform cell of batch 1 or 100 is paired with a raw-producer run over the
same bytes, the order alternating (kes first, then raw first, ...); the standalone raw
producer runs before the store is opened; the one-caller one-event cell is paired with
raw one-record transactions, plain and fenced as kes fences. Forwarded cells run their
callers in a second process with ``role="client"``.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

from benchmarks.baselines import create_topic, new_event
from benchmarks.common import latency_ms
from benchmarks.harness import Bench
from benchmarks.raw import RawBaseline
from benchmarks.stats import KES, pairing_order, per_run_medians, ratio
from kes import ConcurrencyError, KesError, NewEvent
from kes.store.kafka import KafkaEventStore

AGGREGATE = "BenchAppend"
STREAMS = {"hot": 1, "uniform": 10_000, "zipf": 10_000}
ZIPF_S = 1.0
WRITERS = (1, 4, 16, 64)
# The one-caller, one-event cell: paired with raw one-record transactions.
LATENCY_CELL = (1, 1, 100, "uniform")
# Callers in a second process (role client) forwarding to this one.
FORWARDED = ((1, 1, 100, "uniform"), (64, 1, 100, "uniform"))

Cell = tuple[int, int, int, str]  # writers, batch, event size, streams


def window(bench: Bench) -> float:
    """Seconds of each append run (and of each raw baseline run: the same window)."""
    return 1.0 if bench.quick else 1.5


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
    """One run: ``writers`` threads appending for ``seconds``; rates, latencies of the
    appends that succeeded and of those refused, conflicts and other errors."""
    known: dict[str, int] = {}
    latencies: list[list[float]] = [[] for _ in range(writers)]
    refused: list[list[float]] = [[] for _ in range(writers)]
    errors: list[str] = []
    events_done = [0] * writers
    start = threading.Barrier(writers + 1)
    stop_at = [0.0]

    def writer(i: int) -> None:
        pick = stream_picker(streams, seed=zlib.crc32(f"{cell}/{i}".encode()))
        lat, ref = latencies[i], refused[i]
        start.wait()
        while time.perf_counter() < stop_at[0]:
            sid = f"{cell}-{next(pick)}"
            events: list[NewEvent] = [new_event(size) for _ in range(batch)]
            expected = known.get(sid, 0)
            t = time.perf_counter()
            try:
                result = store.append(AGGREGATE, sid, events, expected)
            except ConcurrencyError as exc:
                ref.append(time.perf_counter() - t)
                known[sid] = max(known.get(sid, 0), exc.actual)
                continue
            except KesError as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            lat.append(time.perf_counter() - t)
            events_done[i] += batch
            if result.version > known.get(sid, 0):
                known[sid] = result.version

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
    for th in threads:
        th.start()
    stats = getattr(getattr(store, "writer", None), "stats", None)
    before = (stats.transactions, stats.events) if stats is not None else (0, 0)
    stop_at[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    start.wait()
    for th in threads:
        th.join(timeout=seconds + 120)
    elapsed = time.perf_counter() - started
    flat = [x for lat in latencies for x in lat]
    flat_refused = [x for ref in refused for x in ref]
    tried = len(flat) + len(flat_refused)
    txns = (stats.transactions - before[0]) if stats is not None else 0
    txn_events = (stats.events - before[1]) if stats is not None else 0
    return {
        "events_per_s": sum(events_done) / elapsed,
        "appends_per_s": len(flat) / elapsed,
        "conflicts": len(flat_refused),
        "conflict_rate": len(flat_refused) / tried if tried else float("nan"),
        "errors": len(errors),
        "error_sample": errors[:3],
        "latency": latency_ms(flat),
        "refused_latency": latency_ms(flat_refused),
        # The writer's transactions in this run (all of this process's appends; forwarded
        # runs count on the owner's side)
        "transactions": txns,
        "events_per_transaction": txn_events / txns if txns else float("nan"),
    }


def matrix(quick: bool) -> list[Cell]:
    if quick:
        cells = [(w, b, 100, "uniform") for b in (1, 100) for w in WRITERS]
        return cells + [(w, b, 100, s) for s in ("hot", "zipf") for b in (1, 100) for w in (1, 64)]
    return [
        (w, b, size, s)
        for size in (100, 1000)
        for s in ("hot", "uniform", "zipf")
        for b in (1, 10, 100)
        for w in WRITERS
    ]


def paired(cell: Cell) -> bool:
    """Cells whose every run is paired with a raw-producer run over the same bytes."""
    _, batch, size, streams = cell
    return streams == "uniform" and (batch == 100 or (batch == 1 and size == 100))


QUANTILES = ("p50", "p95", "p99", "p99.9")


def _quantiles(runs: list[dict[str, float]]) -> dict[str, float]:
    return per_run_medians(runs, QUANTILES)


class _Pairs:
    """The raw baselines of the workload, and the counter that alternates their order."""

    def __init__(self, bench: Bench, raw: RawBaseline) -> None:
        self.bench = bench
        self.raw = raw
        self.count = 0
        self.topics: dict[int, str] = {}
        self.standalone: dict[int, float] = {}

    def topic(self, size: int) -> str:
        if size not in self.topics:
            self.topics[size] = create_topic(self.bench, f"paired{size}")
        return self.topics[size]

    def measure_standalone(self, sizes: set[int], seconds: float) -> None:
        """The raw producer with no kes store open anywhere: the standalone median."""
        for size in sorted(sizes):
            runs = [
                self.raw.produce(self.topic(size), size, seconds) for _ in range(self.bench.runs)
            ]
            errors = sum(r["errors"] for r in runs)
            m = self.bench.add(
                "append",
                "raw producer, standalone (no store open)",
                "events/s",
                [r["rate"] for r in runs],
                {"event_size": size},
                failures=[f"{errors} delivery errors"] if errors else [],
                window_s=seconds,
            )
            self.standalone[size] = m.value.median


def run(bench: Bench) -> None:
    seconds = window(bench)
    cells = matrix(bench.quick)
    config = bench.config("append")
    with RawBaseline(bench) as raw:
        pairs = _Pairs(bench, raw)
        pairs.measure_standalone({c[2] for c in cells if paired(c)}, seconds)
        txn_topic = create_topic(bench, "txn")
        fence_topic = create_topic(bench, "fence")
        with KafkaEventStore(config) as store:
            store.owned_partitions(AGGREGATE)  # group join and takeovers: not timed
            store.append(AGGREGATE, "warm-up", [new_event(100)], 0)
            run_cell(store, "warm", 4, 1, 100, "uniform", 0.5)  # as the raw side: warm
            for n, cell in enumerate(cells):
                _measure_cell(bench, store, pairs, n, cell, seconds, txn_topic, fence_topic)
            from benchmarks.forwarded import measure_forwarded

            measure_forwarded(bench, config, store, FORWARDED, seconds)


def _measure_cell(
    bench: Bench,
    store: KafkaEventStore,
    pairs: _Pairs,
    n: int,
    cell: Cell,
    seconds: float,
    txn_topic: str,
    fence_topic: str,
) -> None:
    writers, batch, size, streams = cell
    runs: list[dict[str, Any]] = []
    raws: list[dict[str, Any]] = []
    txns: dict[str, list[dict[str, Any]]] = {"plain": [], "fenced": []}
    orders: list[str] = []
    for r in range(bench.runs):
        order: tuple[str, ...] = (KES,)
        if paired(cell):
            order = pairing_order(pairs.count)
            pairs.count += 1
            orders.append("-".join(order))
        for side in order:
            if side == KES:
                runs.append(run_cell(store, f"c{n}r{r}", writers, batch, size, streams, seconds))
            else:
                raws.append(pairs.raw.produce(pairs.topic(size), size, seconds))
                if cell == LATENCY_CELL:
                    txns["plain"].append(pairs.raw.transactions(txn_topic, size, seconds))
                    txns["fenced"].append(
                        pairs.raw.transactions(txn_topic, size, seconds, fenced_by=fence_topic)
                    )
    params = {"writers": writers, "batch": batch, "event_size": size, "streams": streams}
    failures = [
        f"run {i + 1}: {r['errors']} appends failed ({'; '.join(r['error_sample'])})"
        for i, r in enumerate(runs)
        if r["errors"]
    ]
    failures += [
        f"run {i + 1}: no append succeeded" for i, r in enumerate(runs) if not r["appends_per_s"]
    ]
    extra: dict[str, Any] = {
        "appends_per_s": [r["appends_per_s"] for r in runs],
        "conflicts": [r["conflicts"] for r in runs],
        "conflict_rate": [r["conflict_rate"] for r in runs],
        "latency_ms": _quantiles([r["latency"] for r in runs]),
        "latency_runs_ms": {q: [r["latency"][q] for r in runs] for q in ("p50", "p99")},
        "transactions": [r["transactions"] for r in runs],
        "events_per_transaction": [r["events_per_transaction"] for r in runs],
    }
    if any(r["conflicts"] for r in runs):
        extra["refused_latency_ms"] = _quantiles([r["refused_latency"] for r in runs])
    if raws:
        raw_errors = sum(x["errors"] for x in raws)
        if raw_errors:
            failures.append(f"paired raw producer: {raw_errors} delivery errors")
        extra["pair_order"] = orders
        extra["paired_raw_producer"] = [x["rate"] for x in raws]
        extra["paired_ratio"] = [
            ratio(r["events_per_s"], x["rate"]) for r, x in zip(runs, raws, strict=True)
        ]
        alone = pairs.standalone.get(size, float("nan"))
        extra["standalone_raw_median"] = alone
        extra["standalone_ratio"] = [ratio(r["events_per_s"], alone) for r in runs]
    for kind, results in txns.items():
        if results:
            extra[f"raw_txn_{kind}_latency_ms"] = _quantiles([x["latency_ms"] for x in results])
            extra[f"raw_txn_{kind}_p50_runs_ms"] = [x["latency_ms"]["p50"] for x in results]
    bench.add(
        "append",
        "conditional append",
        "events/s",
        [r["events_per_s"] for r in runs],
        params,
        failures=failures,
        **extra,
    )
    if txns["plain"]:
        for kind, label in (
            ("plain", "raw one-record transaction (begin, produce, commit)"),
            (
                "fenced",
                "raw one-record transaction, fenced as kes (produce, flush, "
                "send_offsets_to_transaction, commit)",
            ),
        ):
            bench.add(
                "append",
                label,
                "ms p50",
                [x["latency_ms"]["p50"] for x in txns[kind]],
                {"event_size": size},
                latency_ms=_quantiles([x["latency_ms"] for x in txns[kind]]),
                transactions=[x["transactions"] for x in txns[kind]],
            )
