"""The targets a run is judged by: each a ratio (or a bound) measured in the same run, on
a cell fixed here in advance, never chosen after the fact. Pure: tested without Kafka.

Verdicts: **met**, **NOT met** (an honest result: the run still succeeds), *not
measured* (the workload did not run), and **FAILED** when a measure the target needs
failed (a NaN run, an empty window, delivery errors...): that run exits non-zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import Stat, fmt_num
from benchmarks.harness import Measure
from benchmarks.stats import median, never_falls, ratio

# The cells, fixed before any run (writers, batch, event size, streams).
BATCHED_CELL = {"writers": 16, "batch": 100, "event_size": 100, "streams": "uniform"}
SINGLE_CELL = {"writers": 64, "batch": 1, "event_size": 100, "streams": "uniform"}
LATENCY_CELL = {"writers": 1, "batch": 1, "event_size": 100, "streams": "uniform"}
SERIES_CALLERS = (1, 4, 16, 64)
FALL_TOLERANCE = 0.05
APPEND = "conditional append"
FORWARDED = "conditional append, callers in a client process (forwarded)"
RAW_TXN = "raw one-record transaction (begin, produce, commit)"
RAW_TXN_FENCED = (
    "raw one-record transaction, fenced as kes (produce, flush, send_offsets_to_transaction, "
    "commit)"
)
USERS = "users: load, decide, save"


@dataclass
class Target:
    """A claim of kes and whether this run met it."""

    claim: str
    measured: str
    baseline: str
    ratio: float | None
    met: bool | None  # None: not measured, or reported without a bound
    how: str
    failures: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.failures:
            return "FAILED"
        if self.met is None:
            return "not measured" if self.measured == "-" else "reported"
        return "met" if self.met else "NOT met"


def find(measures: Sequence[Measure], workload: str, name: str, **params: Any) -> Measure | None:
    for m in measures:
        if (
            m.workload == workload
            and m.name == name
            and all(m.params.get(k) == v for k, v in params.items())
        ):
            return m
    return None


def _missing(claim: str, why: str) -> Target:
    return Target(claim, "-", "-", None, None, why)


def _failed(*ms: Measure | None) -> list[str]:
    return [f"{m.label()}: {f}" for m in ms if m is not None for f in m.failures]


def _cell(c: dict[str, Any]) -> str:
    return f"{c['writers']} callers, batch {c['batch']}, {c['event_size']} B, 10k uniform streams"


def _p50(m: Measure, key: str = "latency_ms") -> float:
    lat = m.extra.get(key)
    return float(lat["p50"]) if isinstance(lat, dict) else float("nan")


def _checked(t: Target) -> Target:
    """A ratio that is not a number cannot be met: it fails the target."""
    if t.ratio is not None and not math.isfinite(t.ratio) and not t.failures:
        t.failures.append("the ratio is not a number")
        t.met = False
    return t


def batched(ms: Sequence[Measure]) -> list[Target]:
    claim_p = "batched appends (100 events each) >= 0.5 of the raw idempotent producer, paired runs"
    claim_s = "batched appends >= 0.5 of the raw producer's standalone median"
    m = find(ms, "append", APPEND, **BATCHED_CELL)
    if m is None or "paired_ratio" not in m.extra:
        return [
            _missing(claim_p, "append workload not run"),
            _missing(claim_s, "append workload not run"),
        ]
    paired = Stat.of(m.extra["paired_ratio"])
    raw = Stat.of(m.extra["paired_raw_producer"])
    alone = float(m.extra.get("standalone_raw_median", float("nan")))
    standalone = Stat.of(m.extra.get("standalone_ratio", []))
    orders = ", ".join(m.extra.get("pair_order", []))
    fails = _failed(m)
    return [
        _checked(
            Target(
                claim_p,
                f"{m.value.fmt()} events/s",
                f"{raw.fmt()} events/s (paired)",
                paired.median,
                paired.median >= 0.5,
                f"fixed cell: {_cell(BATCHED_CELL)}; each run paired with a raw-producer run "
                f"in a child process, same bytes and window, order alternating ({orders}); "
                f"ratio = median of the per-run ratios ({paired.fmt(2)}); all cells' ratios: "
                "append section",
                list(fails),
            )
        ),
        _checked(
            Target(
                claim_s,
                f"{m.value.fmt()} events/s",
                f"{fmt_num(alone)} events/s (standalone median)",
                ratio(m.value.median, alone),
                ratio(m.value.median, alone) >= 0.5,
                "same cell; raw producer alone (child process, no kes store open), same "
                f"window, median of {len(standalone.runs)} runs",
                list(fails),
            )
        )
        if "standalone_raw_median" in m.extra
        else _missing(claim_s, "no standalone raw producer run"),
    ]


def single(ms: Sequence[Measure]) -> list[Target]:
    claim_a = "single-event appends, 64 callers >= 20,000 events/s"
    claim_r = "single-event appends, 64 callers >= 0.1 of the raw producer (paired)"
    m = find(ms, "append", APPEND, **SINGLE_CELL)
    if m is None:
        return [
            _missing(claim_a, "append workload not run"),
            _missing(claim_r, "append workload not run"),
        ]
    paired = Stat.of(m.extra.get("paired_ratio", []))
    raw = Stat.of(m.extra.get("paired_raw_producer", []))
    fails = _failed(m)
    return [
        _checked(
            Target(
                claim_a,
                f"{m.value.fmt()} events/s",
                "20,000 events/s",
                m.value.median / 20_000,
                m.value.median >= 20_000,
                f"fixed cell: {_cell(SINGLE_CELL)}",
                list(fails),
            )
        ),
        _checked(
            Target(
                claim_r,
                f"{m.value.fmt()} events/s",
                f"{raw.fmt()} events/s (paired)",
                paired.median,
                paired.median >= 0.1,
                "same cell, each run paired with a raw-producer run (order alternating); ratio "
                f"= median of the per-run ratios ({paired.fmt(3)})",
                list(fails),
            )
        )
        if "paired_ratio" in m.extra
        else _missing(claim_r, "no paired raw-producer runs"),
    ]


def latency(ms: Sequence[Measure]) -> Target:
    claim = "one caller, one event: p50 <= 1.2x a raw one-record transaction (same run)"
    m = find(ms, "append", APPEND, **LATENCY_CELL)
    plain = find(ms, "append", RAW_TXN)
    fenced = find(ms, "append", RAW_TXN_FENCED)
    if m is None or plain is None:
        return _missing(claim, "append workload not run")
    kes = _p50(m)
    r = ratio(kes, plain.value.median)
    fence = ""
    if fenced is not None:
        price = ratio(fenced.value.median, plain.value.median)
        fence = (
            "; a raw transaction fenced as kes's (produce, flush, send_offsets_to_transaction, "
            f"commit): {fenced.value.fmt(2)} ms p50, {price:.2f}x the plain one (the price of "
            "the fence)"
        )
    return _checked(
        Target(
            claim,
            f"{fmt_num(kes, 2)} ms p50",
            f"{plain.value.fmt(2)} ms p50 (begin, produce, commit)",
            r,
            r <= 1.2,
            f"fixed cell: {_cell(LATENCY_CELL)}; each kes run paired with raw transaction runs "
            f"in a child process (same window){fence}",
            _failed(m, plain, fenced),
        )
    )


def users(ms: Sequence[Measure]) -> list[Target]:
    out = []
    for letter, kes_name, pg_name in (
        ("a", "kes, 1 node (RF 1)", "eventsourcing, PostgreSQL synchronous_commit=off"),
        ("b", "kes, 3 nodes (RF 3, min ISR 2)", "eventsourcing, PostgreSQL synchronous_commit=on"),
    ):
        claim = (
            f"users (load, decide, save) at 64 callers >= 10x eventsourcing on PostgreSQL at its "
            f"best caller count, equal durability ({letter})"
        )
        k = find(ms, "domain", USERS, system=kes_name, cache="off", callers=64)
        pgs = [m for m in ms if m.workload == "domain" and m.name == USERS]
        pgs = [
            m for m in pgs if m.params.get("system") == pg_name and m.params.get("cache") == "off"
        ]
        if k is None or not pgs:
            why = "domain workload not run" if not pgs else f"no {kes_name} (needs --cluster3-dir)"
            out.append(_missing(claim, why))
            continue
        best = max(pgs, key=lambda m: m.value.median)
        r = ratio(k.value.median, best.value.median)
        out.append(
            _checked(
                Target(
                    claim,
                    f"{k.value.fmt()} commands/s ({kes_name})",
                    f"{best.value.fmt()} commands/s ({pg_name}, {best.params['callers']} callers)",
                    r,
                    r >= 10,
                    "cache off for both; the peer's best of "
                    f"{'/'.join(str(m.params['callers']) for m in pgs)} callers; each command "
                    "loads the user, renames it, saves it",
                    _failed(k, best),
                )
            )
        )
    return out


def forwarded(ms: Sequence[Measure]) -> Target:
    claim = "forwarded appends (callers in a role=client process): p50 <= 3x a local append"
    f = find(ms, "append", FORWARDED, **LATENCY_CELL)
    local = find(ms, "append", APPEND, **LATENCY_CELL)
    if f is None or local is None:
        return _missing(claim, "append workload not run")
    lat = f.extra.get("latency_ms", {})
    r = ratio(_p50(f), _p50(local))
    return _checked(
        Target(
            claim,
            f"{fmt_num(_p50(f), 2)} ms p50, {fmt_num(float(lat.get('p99', math.nan)), 2)} ms p99",
            f"{fmt_num(_p50(local), 2)} ms p50 (local, same cell)",
            r,
            r <= 3,
            f"fixed cell: {_cell(LATENCY_CELL)}; the owner is the harness process, the callers a "
            "second process with role=client (request topic, reply topic); 64 callers in the "
            "append table",
            _failed(f, local),
        )
    )


def series(ms: Sequence[Measure]) -> list[Target]:
    out = []
    for batch, what in ((100, "batched (100 events)"), (1, "single-event")):
        claim = f"{what} append throughput never falls as callers grow (1, 4, 16, 64)"
        cells = [
            find(ms, "append", APPEND, writers=w, batch=batch, event_size=100, streams="uniform")
            for w in SERIES_CALLERS
        ]
        found = [c for c in cells if c is not None]
        if not found:
            out.append(_missing(claim, "append workload not run"))
            continue
        ok, shape = never_falls(
            [(int(c.params["writers"]), c.value.median) for c in found], FALL_TOLERANCE
        )
        if ok is None:
            out.append(_missing(claim, shape))
            continue
        out.append(
            Target(
                claim,
                f"{shape} events/s",
                "each point >= the previous one",
                None,
                ok,
                f"medians at {', '.join(str(c.params['writers']) for c in found)} callers, 100 B, "
                f"10k uniform streams; a drop of more than {FALL_TOLERANCE:.0%} counts as a fall",
                _failed(*found),
            )
        )
    return out


def bound(ms: Sequence[Measure], claim: str, name: str, how: str, timeout: str) -> Target:
    """A time measure against its bound: the ``timeout`` parameter (ms) plus 2 s."""
    m = find(ms, "recovery", name)
    if m is None:
        return _missing(claim, "recovery workload not run")
    limit = float(m.extra.get("bound_s") or m.params.get(timeout, math.nan) / 1000 + 2)
    return _checked(
        Target(
            claim,
            f"{m.value.fmt(2)} s",
            f"{fmt_num(limit, 1)} s",
            ratio(m.value.median, limit),
            m.value.median <= limit,
            how,
            _failed(m),
        )
    )


def recovery(ms: Sequence[Measure]) -> list[Target]:
    out = [
        bound(
            ms,
            "failover after kill -9 <= session timeout + 2 s",
            "failover after kill -9 of an owner",
            "two writer processes split the partitions; one is killed; time until the other "
            "serves an append to a partition the dead one owned",
            "session_timeout_ms",
        ),
        bound(
            ms,
            "takeover held by a zombie's open transaction <= transaction timeout + 2 s",
            "takeover from an owner stopped inside its commit (zombie)",
            "the owner SIGSTOPs itself inside a commit (offsets accepted); session timeout 6 s "
            "< transaction timeout 10 s; time from the stop until the successor serves a "
            "partition that frozen transaction wrote",
            "transaction_timeout_ms",
        ),
    ]
    claim = "appends through the loss of 1 of 3 brokers: the stall (reported)"
    k = next(
        (m for m in ms if m.workload == "recovery" and m.name.startswith("longest append stall")),
        None,
    )
    if k is None:
        out.append(_missing(claim, "needs --cluster3-dir"))
    else:
        out.append(
            Target(
                claim,
                f"{k.value.fmt(2)} s",
                "-",
                None,
                None,
                f"16 callers, single events; the writer group's coordinator SIGKILLed; longest "
                f"time without a completed append; failed appends per run: {k.extra.get('errors')}",
                _failed(k),
            )
        )
    m = find(ms, "recovery", "writer peak RSS", aggregates=1_000_000)
    claim = "writer owning 1M aggregates: peak RSS <= 1 GiB"
    if m is None:
        sizes = [x for x in ms if x.workload == "recovery" and x.name == "writer peak RSS"]
        why = "1M aggregates only in the full run"
        if sizes:
            top = max(sizes, key=lambda x: x.params["aggregates"])
            why += f"; this run: {fmt_num(top.value.high)} MiB at {top.params['aggregates']:,}"
        out.append(_missing(claim, why))
    else:
        out.append(
            _checked(
                Target(
                    claim,
                    f"{fmt_num(m.value.high)} MiB (max)",
                    "1024 MiB",
                    m.value.high / 1024,
                    m.value.high <= 1024,
                    "child writer process, 1M one-event aggregates, 12 partitions",
                    _failed(m),
                )
            )
        )
    return out


def reads(ms: Sequence[Measure]) -> list[Target]:
    out: list[Target] = []
    specs: list[tuple[str, Measure | None, float, Callable[[float], bool], str]] = [
        (
            "read_stream of 1k events p99 <= 20 ms",
            find(ms, "rehydrate", "read_stream", stream_length=1000),
            20.0,
            lambda v: v <= 20,
            "median of the runs' p99",
        ),
        (
            "cached load p99 <= 1 ms",
            find(ms, "rehydrate", "load, cached"),
            1.0,
            lambda v: v <= 1,
            "Repository cache hit, 100-event user",
        ),
    ]
    for claim, m, limit, ok, how in specs:
        if m is None:
            out.append(_missing(claim, "rehydrate workload not run"))
            continue
        out.append(
            _checked(
                Target(
                    claim,
                    f"{m.value.fmt(3)} ms",
                    f"{limit:g} ms",
                    m.value.median / limit,
                    ok(m.value.median),
                    how,
                    _failed(m),
                )
            )
        )
    noop = find(ms, "replay", "no-op projection (ProjectionRunner, at_least_once)")
    raw = find(ms, "replay", "raw confluent-kafka consumer")
    claim = "replay >= 200k events/s decoded and dispatched"
    if noop is None or raw is None:
        return [
            *out,
            _missing(claim, "replay workload not run"),
            _missing("no-op projection >= 0.4 of the raw consumer", "replay workload not run"),
        ]
    join = median(noop.extra.get("join_s", []))
    out.append(
        _checked(
            Target(
                claim,
                f"{noop.value.fmt()} events/s",
                "200,000 events/s",
                noop.value.median / 200_000,
                noop.value.median >= 200_000,
                f"ProjectionRunner, no-op handler, {noop.params.get('events', 0):,} events, "
                f"timed from subscribe (group join {fmt_num(join, 2)} s inside); readers take "
                "turns going first",
                _failed(noop),
            )
        )
    )
    r = ratio(noop.value.median, raw.value.median)
    out.append(
        _checked(
            Target(
                "no-op projection >= 0.4 of the raw consumer",
                f"{noop.value.fmt()} events/s",
                f"{raw.value.fmt()} events/s",
                r,
                r >= 0.4,
                "same topic, both in a fresh group timed from subscribe, read_committed, no "
                "decode in the baseline",
                _failed(noop, raw),
            )
        )
    )
    return out


def targets(ms: Sequence[Measure]) -> list[Target]:
    return [
        *batched(ms),
        *single(ms),
        latency(ms),
        *users(ms),
        forwarded(ms),
        *series(ms),
        *recovery(ms),
        *reads(ms),
    ]
