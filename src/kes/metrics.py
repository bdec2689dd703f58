"""Prometheus metrics of a kes process: writers, projections, pipelines.

Every metric lives in prometheus_client's default registry, next to an application's own.
Expose them with :func:`serve` (``kes.metrics.serve(9464)``), at ``/metrics`` of ``kes
serve``, or with ``--metrics-port`` on ``kes project run`` and ``kes stream run``.
docs/operations.md lists each metric with what it counts.

Recording is on by default and cheap (a counter add per transaction or batch, never per
event); ``KES_METRICS=off`` or :func:`set_enabled` turns it off (for measuring its cost).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

__all__ = ["enabled", "serve", "set_enabled"]

_on = os.environ.get("KES_METRICS", "on").lower() not in ("off", "0", "false", "no")


def enabled() -> bool:
    return _on


def set_enabled(on: bool) -> None:
    """Turn recording on or off for this process (what was recorded stays)."""
    global _on
    _on = on


_served: dict[tuple[str, int], object] = {}
_serve_lock = threading.Lock()


def serve(port: int, host: str | None = None) -> None:
    """Serve the process's metrics at ``http://host:port/metrics`` from a daemon thread
    (once per address). ``host`` defaults to ``KES_METRICS_HOST``, else 127.0.0.1."""
    from kes.errors import InvalidInputError

    host = host or os.environ.get("KES_METRICS_HOST") or "127.0.0.1"
    if not 0 < port < 65536:
        raise InvalidInputError(f"metrics port must be 1..65535, got {port}.")
    with _serve_lock:
        if (host, port) in _served:
            return
        try:
            _served[(host, port)] = start_http_server(port, addr=host, registry=REGISTRY)
        except OSError as exc:
            raise InvalidInputError(
                f"cannot serve metrics on {host}:{port}: {exc}. Choose another port."
            ) from exc


# ---- writers -------------------------------------------------------------------------------

APPENDS = Counter(
    "kes_appends",
    "Appends decided by this process's writer, by outcome: written, duplicate (a retry "
    "found already stored), conflict (expected version not met), moved (the partition "
    "is owned elsewhere now), failed.",
    ["aggregate_type", "outcome"],
)
EVENTS = Counter(
    "kes_events_appended", "Events written by this process's writer.", ["aggregate_type"]
)
TRANSACTIONS = Counter(
    "kes_writer_transactions", "Writer transactions, by outcome (committed, aborted).", ["outcome"]
)
TRANSACTION_SECONDS = Histogram(
    "kes_writer_transaction_seconds",
    "Time from a writer transaction's begin to its commit.",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TRANSACTION_EVENTS = Histogram(
    "kes_writer_transaction_events",
    "Events per committed writer transaction.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
RECOVERIES = Counter(
    "kes_writer_recoveries",
    "Times the writer replaced its producer (fenced, or a commit of unknown outcome).",
)
OWNED_PARTITIONS = Gauge(
    "kes_owned_partitions", "Partitions this process owns (serves appends for).", ["aggregate_type"]
)
TAKEOVERS = Counter(
    "kes_takeovers",
    "Partitions taken over by this process, by outcome (done, failed).",
    ["aggregate_type", "outcome"],
)
TAKEOVER_SECONDS = Histogram(
    "kes_takeover_seconds",
    "Time to take a partition over (index loaded, log read to its end).",
    ["aggregate_type"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
FORWARDED = Counter(
    "kes_forwarded_requests",
    "Requests forwarded between processes: sent (to an owner) or served (here, as owner).",
    ["aggregate_type", "direction"],
)
INDEX_AGGREGATES = Gauge(
    "kes_index_aggregates",
    "Aggregates in the version index of an owned partition.",
    ["topic", "partition"],
)


_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once (labels() takes a lock, builds a key)."""
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def append_finished(aggregate_type: str, outcome: str) -> None:
    if _on:
        _child(APPENDS, aggregate_type, outcome).inc()


def transaction_committed(seconds: float, events_by_type: dict[str, int]) -> None:
    if not _on:
        return
    _child(TRANSACTIONS, "committed").inc()
    TRANSACTION_SECONDS.observe(seconds)
    TRANSACTION_EVENTS.observe(sum(events_by_type.values()))
    for t, n in events_by_type.items():
        _child(EVENTS, t).inc(n)


def transaction_aborted() -> None:
    if _on:
        TRANSACTIONS.labels("aborted").inc()


def takeover(aggregate_type: str, seconds: float | None, owned_now: int) -> None:
    """A takeover finished (``seconds``) or failed (None)."""
    if not _on:
        return
    if seconds is None:
        TAKEOVERS.labels(aggregate_type, "failed").inc()
        return
    TAKEOVERS.labels(aggregate_type, "done").inc()
    TAKEOVER_SECONDS.labels(aggregate_type).observe(seconds)
    OWNED_PARTITIONS.labels(aggregate_type).set(owned_now)


def owned(aggregate_type: str, owned_now: int) -> None:
    if _on:
        OWNED_PARTITIONS.labels(aggregate_type).set(owned_now)


def forwarded(aggregate_type: str, direction: str) -> None:
    if _on:
        FORWARDED.labels(aggregate_type, direction).inc()


def writer_recovered() -> None:
    if _on:
        RECOVERIES.inc()


def index_size(topic: str, partition: int, aggregates: int) -> None:
    if _on:
        _child(INDEX_AGGREGATES, topic, str(partition)).set(aggregates)


def forget_partition(topic: str, partition: int) -> None:
    """An owned partition is gone: drop its per-partition series."""
    _children.pop((INDEX_AGGREGATES, topic, str(partition)), None)
    with contextlib.suppress(KeyError):
        INDEX_AGGREGATES.remove(topic, str(partition))


# ---- projections and pipelines -------------------------------------------------------------

PROJECTION_EVENTS = Counter(
    "kes_projection_events", "Records a projection read (handled or skipped).", ["projection"]
)
PROJECTION_BATCH_SECONDS = Histogram(
    "kes_projection_batch_seconds",
    "Time a projection took to handle one batch, commit included.",
    ["projection"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PROJECTION_RETRIES = Counter(
    "kes_projection_retries", "Handler calls retried after a failure.", ["projection"]
)
DEAD_LETTERS = Counter(
    "kes_dead_letters",
    "Records parked in a dead-letter topic, by consumer (projection or pipeline).",
    ["consumer"],
)
LAG = Gauge(
    "kes_consumer_lag",
    "Offsets between a consumer's position and the end of a partition (records and "
    "commit markers; updated between batches, at most every second), by consumer "
    "(projection or pipeline).",
    ["consumer", "topic", "partition"],
)
LATE_RECORDS = Counter(
    "kes_pipeline_late_records", "Records a pipeline's windows had closed for.", ["pipeline"]
)


def batch_handled(projection: str, records: int, seconds: float) -> None:
    if _on:
        PROJECTION_EVENTS.labels(projection).inc(records)
        PROJECTION_BATCH_SECONDS.labels(projection).observe(seconds)


def retried(projection: str) -> None:
    if _on:
        PROJECTION_RETRIES.labels(projection).inc()


def parked(consumer: str) -> None:
    if _on:
        DEAD_LETTERS.labels(consumer).inc()


def late_record(pipeline: str) -> None:
    if _on:
        LATE_RECORDS.labels(pipeline).inc()


def lag(consumer: str, lags: Iterable[tuple[str, int, int]]) -> None:
    """Set ``consumer``'s lag per (topic, partition, records behind)."""
    if _on:
        for topic, partition, behind in lags:
            LAG.labels(consumer, topic, str(partition)).set(behind)


def forget_lag(consumer: str, partitions: Iterable[tuple[str, int]]) -> None:
    """Partitions no longer assigned here: their lag is someone else's to report."""
    for topic, partition in partitions:
        with contextlib.suppress(KeyError):
            LAG.remove(consumer, topic, str(partition))
