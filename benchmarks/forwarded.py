"""Forwarded appends: the callers live in a second process with ``role="client"`` (a web
worker in a real deployment), own nothing, and forward every append through the request
topic to this process, which owns every partition. ``python -m benchmarks.forwarded`` is
that second process (a ``benchmarks.child``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import uuid
from typing import Any

from benchmarks.child import Child, serve
from benchmarks.harness import Bench
from benchmarks.stats import per_run_medians
from kes.store.kafka import KafkaConfig, KafkaEventStore

Cell = tuple[int, int, int, str]
QUANTILES = ("p50", "p95", "p99", "p99.9")
NAME = "conditional append, callers in a client process (forwarded)"


def measure_forwarded(
    bench: Bench,
    config: KafkaConfig,
    owner: KafkaEventStore,
    cells: tuple[Cell, ...],
    seconds: float,
) -> None:
    """Each cell's runs through a client process; the owner is ``owner`` (this process)."""
    client = dataclasses.replace(
        config,
        role="client",
        member_name=f"bench-client-{uuid.uuid4().hex[:6]}",
        index_dir=str(bench.scratch / "client-index"),
    )
    fields = json.dumps(dataclasses.asdict(client))
    with Child("benchmarks.forwarded", "--config", fields) as child:
        for n, (writers, batch, size, streams) in enumerate(cells):
            runs = []
            for r in range(bench.runs):
                before = owner.writer.stats.transactions
                result = child.call(
                    op="cell",
                    cell=f"f{n}r{r}",
                    writers=writers,
                    batch=batch,
                    size=size,
                    streams=streams,
                    seconds=seconds,
                )
                result["owner_transactions"] = owner.writer.stats.transactions - before
                runs.append(result)
            failures = [
                f"run {i + 1}: {r['errors']} appends failed ({'; '.join(r['error_sample'])})"
                for i, r in enumerate(runs)
                if r["errors"]
            ]
            bench.add(
                "append",
                NAME,
                "events/s",
                [r["events_per_s"] for r in runs],
                {"writers": writers, "batch": batch, "event_size": size, "streams": streams},
                failures=failures,
                appends_per_s=[r["appends_per_s"] for r in runs],
                conflicts=[r["conflicts"] for r in runs],
                conflict_rate=[r["conflict_rate"] for r in runs],
                latency_ms=per_run_medians([r["latency"] for r in runs], QUANTILES),
                latency_runs_ms={q: [r["latency"][q] for r in runs] for q in ("p50", "p99")},
                owner_transactions=[r["owner_transactions"] for r in runs],
            )


def main() -> None:
    from benchmarks.append import AGGREGATE, run_cell
    from benchmarks.baselines import new_event

    ap = argparse.ArgumentParser(prog="python -m benchmarks.forwarded")
    ap.add_argument("--config", required=True, help="KafkaConfig fields as JSON")
    args = ap.parse_args()
    config = KafkaConfig(**json.loads(args.config))
    store = KafkaEventStore(config)
    # Start-up, not timed: reply topic, metadata, the owner answering once.
    store.append(AGGREGATE, f"client-warm-up-{uuid.uuid4().hex[:6]}", [new_event(100)], 0)

    def handle(cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd["op"] != "cell":
            raise ValueError(f"unknown op {cmd['op']!r}")
        run_cell(
            store, f"{cmd['cell']}w", cmd["writers"], cmd["batch"], cmd["size"], cmd["streams"], 0.3
        )
        return run_cell(
            store,
            cmd["cell"],
            cmd["writers"],
            cmd["batch"],
            cmd["size"],
            cmd["streams"],
            cmd["seconds"],
        )

    try:
        serve(handle, {"role": store.role})
    finally:
        store.close()


if __name__ == "__main__":
    main()
