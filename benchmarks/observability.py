"""What kes's Prometheus metrics cost on the append path: the same appends with recording
on and off, interleaved in one process.

    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 python -m benchmarks.observability [--quick]

Each round appends ``--appends`` single-event conditional appends from ``--threads``
threads (one stream per append: the path where a per-append cost shows most), once with
``kes.metrics`` recording and once without, in alternating order; ``--rounds`` rounds.
The ratio is on / off events/s, the median of the per-round ratios (1.0: free).
``recording_us_per_append`` is the CPU time of the recording calls an append makes,
clocked alone, and ``recording_core_share`` that times the measured rate (the part of
one core recording takes): on a busy machine, where the Kafka round trips swing, it
bounds the cost apart from the noise. Prints one JSON
document with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from kes import KafkaConfig, KafkaEventStore, NewEvent, metrics


def appends_per_s(store: KafkaEventStore, type_: str, n: int, threads: int) -> float:
    run = uuid.uuid4().hex[:8]

    def one(i: int) -> None:
        event = NewEvent(event_type="Ticked", payload={"i": i})
        store.append(type_, f"{run}-{i}", [event], 0)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - started)


def recording_us() -> float:
    """CPU microseconds of what one append records (its outcome, and its share of a
    transaction of 10 appends)."""
    n = 200_000
    started = time.process_time()
    for i in range(n):
        metrics.append_finished("Bench", "written")
        if i % 10 == 0:
            metrics.transaction_committed(0.004, {"Bench": 10})
            metrics.index_size("kes.events.Bench", 0, i)
    return (time.process_time() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1,000 appends")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--appends", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    rounds, n = (3, 1000) if args.quick else (args.rounds, args.appends)
    load_before = os.getloadavg()
    config = KafkaConfig.from_env(namespace="bench" + uuid.uuid4().hex[:8], partitions=4)
    store = KafkaEventStore(config)
    type_ = "Metered"
    try:
        appends_per_s(store, type_, 200, args.threads)  # ownership taken, warm
        on: list[float] = []
        off: list[float] = []
        for r in range(rounds):
            for enabled in (True, False) if r % 2 == 0 else (False, True):
                metrics.set_enabled(enabled)
                rate = appends_per_s(store, type_, n, args.threads)
                (on if enabled else off).append(rate)
        metrics.set_enabled(True)
    finally:
        store.close()
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    per_append_us = recording_us()
    result = {
        "workload": f"{n} single-event appends x {rounds} rounds, {args.threads} threads",
        "metrics_on_events_per_s": round(statistics.median(on)),
        "metrics_off_events_per_s": round(statistics.median(off)),
        "ratio_on_off": round(statistics.median(ratios), 3),
        "ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
        "recording_us_per_append": round(per_append_us, 2),
        # the share of one core recording takes at the measured rate
        "recording_core_share": round(per_append_us * statistics.median(off) / 1e6, 4),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
