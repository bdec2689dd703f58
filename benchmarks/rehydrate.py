"""Workload 2, rehydrate: load latency of a User vs its stream length, without snapshots,
with a snapshot at the head, and from the repository's cache; and raw read_stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from examples.users.domain import User

from benchmarks.common import latency_ms
from benchmarks.harness import Bench
from kes import Application
from kes.snapshots import take_snapshot
from kes.store.kafka import KafkaEventStore, KafkaSnapshotStore

CHUNK = 500  # events per append while building a long stream


def build_user(app: Application, length: int) -> User:
    """A user whose stream has ``length`` events (1 created + renames)."""
    user = User(user_id=f"u-{length}-{uuid.uuid4().hex[:8]}", username="u0", email="u@x")
    pending = 1
    for i in range(1, length):
        user.rename(f"u{i}")
        pending += 1
        if pending >= CHUNK:
            app.save(user)
            pending = 0
    app.save(user)
    return user


def lat_runs(bench: Bench, fn: Callable[[], Any], loads: int) -> list[dict[str, float]]:
    out = []
    for _ in range(bench.runs):
        lat = []
        for _ in range(loads):
            t = time.perf_counter()
            fn()
            lat.append(time.perf_counter() - t)
        out.append(latency_ms(lat))
    return out


def record(bench: Bench, name: str, params: dict[str, Any], runs: list[dict[str, float]]) -> None:
    bench.add(
        "rehydrate",
        name,
        "ms p99",
        [r["p99"] for r in runs],
        params,
        p50_ms=[r["p50"] for r in runs],
        p95_ms=[r["p95"] for r in runs],
        p999_ms=[r["p99.9"] for r in runs],
        loads_per_run=int(runs[0]["n"]),
    )


def run(bench: Bench) -> None:
    config = bench.config("rehydrate")
    lengths = (10, 100, 1000, 10_000)
    with KafkaEventStore(config) as store:
        snaps = KafkaSnapshotStore(config)
        try:
            writer = Application(store, cache_size=0)
            plain = Application(store, cache_size=0)
            snapped = Application(store, snapshots=snaps, cache_size=0)
            cached = Application(store, cache_size=1000)
            for length in lengths:
                user = build_user(writer, length)
                snaps.put(take_snapshot(user))
                loads = 10 if length >= 10_000 else (20 if bench.quick else 50)
                if length >= 10_000 and bench.quick:
                    loads = 5
                uid = user.id
                params: dict[str, Any] = {"stream_length": length}
                plain.get(User, uid)  # warm the reader pool for this partition
                record(
                    bench,
                    "read_stream",
                    params,
                    lat_runs(bench, partial(store.read_stream, "User", uid), loads),
                )
                record(
                    bench,
                    "load, no snapshot",
                    params,
                    lat_runs(bench, partial(plain.get, User, uid), loads),
                )
                snapped.get(User, uid)
                record(
                    bench,
                    "load, snapshot at head",
                    params,
                    lat_runs(bench, partial(snapped.get, User, uid), loads),
                )
                if length == 100:
                    cached.get(User, uid)
                    record(
                        bench,
                        "load, cached",
                        params,
                        lat_runs(
                            bench, partial(cached.get, User, uid), 300 if bench.quick else 2000
                        ),
                    )
        finally:
            snaps.close()
