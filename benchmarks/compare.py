"""The previous run next to this one: its figures beside every row both runs have, and a
closing note that puts the old and new figures of the rows issue 14 changed side by side.

The previous run is ``results/previous.json``: the committed ``results.json``, copied
there when a full run starts (``--quick`` reads the committed one in place). Pure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Stat, fmt_num, markdown_table
from benchmarks.harness import Measure
from benchmarks.stats import median, ratio

Key = tuple[str, str, str]


def key(m: Measure) -> Key:
    return (m.workload, m.name, json.dumps(m.params, sort_keys=True, default=str))


def load(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (OSError, ValueError):
        return None


def measures_of(result: dict[str, Any] | None) -> list[Measure]:
    if not result:
        return []
    out = []
    for m in result.get("measures", []):
        fields = {k: v for k, v in m.items() if k in Measure.__dataclass_fields__}
        fields["value"] = Stat(**m["value"])
        out.append(Measure(**fields))
    return out


def previous_values(previous: dict[str, Any] | None) -> dict[Key, Stat]:
    return {key(m): m.value for m in measures_of(previous)}


# ---- the closing note -------------------------------------------------------------------


def _find(ms: Sequence[Measure], workload: str, name: str, **params: Any) -> Measure | None:
    for m in ms:
        if (
            m.workload == workload
            and m.name == name
            and all(m.params.get(k) == v for k, v in params.items())
        ):
            return m
    return None


def _batched(ms: Sequence[Measure], fixed: bool) -> Measure | None:
    """The cell a report judged batched appends by: the fixed cell (new), or the best
    cell by kes's median (what the old report did)."""
    if fixed:
        from benchmarks.targets import BATCHED_CELL

        return _find(ms, "append", "conditional append", **BATCHED_CELL)
    cells = [
        m
        for m in ms
        if m.workload == "append"
        and m.name == "conditional append"
        and m.params.get("batch") == 100
        and m.params.get("event_size") == 100
        and m.params.get("streams") == "uniform"
        and m.extra.get("paired_ratio")
    ]
    return max(cells, key=lambda m: m.value.median) if cells else None


def _standalone(ms: Sequence[Measure]) -> Measure | None:
    return _find(ms, "append", "raw producer, standalone (no store open)", event_size=100) or _find(
        ms, "baselines", "raw confluent-kafka producer", event_size=100
    )


def _num(x: float, digits: int | None = None) -> str:
    return fmt_num(x, digits)


Row = tuple[str, Callable[[Sequence[Measure], bool], str], str]


def _paired_ratio(ms: Sequence[Measure], new: bool) -> str:
    m = _batched(ms, new)
    if m is None:
        return "-"
    cell = f"{m.params['writers']} callers"
    return f"{median(m.extra['paired_ratio']):.2f} ({cell})"


def _standalone_ratio(ms: Sequence[Measure], new: bool) -> str:
    m, raw = _batched(ms, new), _standalone(ms)
    if m is None or raw is None:
        return "-"
    return f"{ratio(m.value.median, raw.value.median):.2f}"


def _paired_raw(ms: Sequence[Measure], new: bool) -> str:
    m = _batched(ms, new)
    return "-" if m is None else Stat.of(m.extra["paired_raw_producer"]).fmt()


def _alone(ms: Sequence[Measure], new: bool) -> str:
    raw = _standalone(ms)
    return "-" if raw is None else raw.value.fmt()


def _single(ms: Sequence[Measure], new: bool) -> str:
    m = _find(
        ms, "append", "conditional append", writers=64, batch=1, event_size=100, streams="uniform"
    )
    return "-" if m is None else m.value.fmt()


def _conflicts(ms: Sequence[Measure], new: bool) -> str:
    m = _find(
        ms, "append", "conditional append", writers=64, batch=1, event_size=100, streams="hot"
    )
    if m is None:
        return "-"
    runs = m.extra.get("conflicts", [])
    if not new:
        return f"{sum(runs):,} (sum of {len(runs)} runs)"
    rate = median(m.extra.get("conflict_rate", []))
    return f"{_num(median(runs), 0)} per run (median), {rate:.0%} of appends refused"


def _reader(name: str) -> Callable[[Sequence[Measure], bool], str]:
    def get(ms: Sequence[Measure], new: bool) -> str:
        m = next((x for x in ms if x.workload == "replay" and x.name == name), None)
        if m is None:
            return "-"
        return f"{m.value.fmt()} ({m.params.get('events', 0):,} events)"

    return get


def _lag(ms: Sequence[Measure], new: bool) -> str:
    m = next(
        (x for x in ms if x.workload == "replay" and x.name.startswith("end-to-end lag")), None
    )
    if m is None:
        return "-"
    p99s = ", ".join(_num(x) for x in m.value.runs)
    counts = m.extra.get("delivered_per_window") or m.extra.get("events_per_window") or []
    achieved = m.extra.get("achieved_events_per_s")
    rate = (
        ", ".join(_num(float(x), 0) for x in achieved)
        if isinstance(achieved, list)
        else _num(float(achieved or float("nan")), 0)
    )
    state = f"; FAILED: {m.failures[0]}" if m.failures else ""
    return f"{m.value.fmt()} (windows {p99s}; events {counts}; {rate}/s achieved{state})"


def _users(ms: Sequence[Measure], new: bool) -> str:
    if not new:
        name = "commands (create/rename, one save each)"
        k = next(
            (
                m
                for m in ms
                if m.workload == "domain"
                and m.name == name
                and str(m.params.get("system", "")).startswith("kes")
                and m.params.get("callers") == 16
            ),
            None,
        )
        pg = next(
            (
                m
                for m in ms
                if m.workload == "domain"
                and m.name == name
                and "PostgreSQL" in str(m.params.get("system", ""))
                and m.params.get("callers") == 16
            ),
            None,
        )
        if k is None or pg is None:
            return "-"
        r = ratio(k.value.median, pg.value.median)
        return f"{r:.2f} (16 callers, no load, unequal durability)"
    from benchmarks.targets import targets

    out = [
        f"{t.ratio:.2f} (durability {t.claim[-2]}, 64 callers)"
        for t in targets(ms)
        if t.claim.startswith("users") and t.ratio is not None
    ]
    return "; ".join(out) or "-"


def _failover(ms: Sequence[Measure], new: bool) -> str:
    m = _find(ms, "recovery", "failover after kill -9 of an owner")
    return "-" if m is None else f"{m.value.fmt(2)} s"


ROWS: list[Row] = [
    (
        "batched appends / raw producer, paired",
        _paired_ratio,
        "fixed cell (16 callers), not the best one; raw in its own process, order alternating",
    ),
    (
        "batched appends / raw producer, standalone median",
        _standalone_ratio,
        "reported next to the paired ratio",
    ),
    (
        "raw producer paired with the batched cell, events/s",
        _paired_raw,
        "no longer held down by the store's process",
    ),
    (
        "raw producer standalone, events/s",
        _alone,
        "same window as the append cells, start-up excluded",
    ),
    ("single-event appends, 64 callers, events/s", _single, "write path v2"),
    (
        "conflicts, 64 callers, hot stream",
        _conflicts,
        "a per-run median and a rate, not a sum over runs",
    ),
    (
        "raw consumer, events/s",
        _reader("raw confluent-kafka consumer"),
        "timed from subscribe; bigger topic; readers alternate",
    ),
    (
        "no-op projection, events/s",
        _reader("no-op projection (ProjectionRunner, at_least_once)"),
        "timed from subscribe (join inside)",
    ),
    (
        "SQLite projection, events/s",
        _reader("SQLite projection (SqlProjection, exactly_once, 1 row/event)"),
        "timed from subscribe",
    ),
    ("end-to-end lag p99, ms", _lag, "an empty window or a missed rate now fails the measure"),
    (
        "users: kes / eventsourcing PostgreSQL",
        _users,
        "commands load, decide, save; equal durability (a) and (b)",
    ),
    (
        "failover after kill -9",
        _failover,
        "timed to the first append served (was: retried every request timeout)",
    ),
]


def closing_note(previous: dict[str, Any] | None, measures: Sequence[Measure]) -> str:
    """Old and new figures of the rows whose method issue 14 changed."""
    if not previous:
        return "No previous run (results/previous.json) to compare with."
    old = measures_of(previous)
    when = previous.get("environment", {}).get("date", "?")
    commit = previous.get("environment", {}).get("commit", "?")
    rows = [[label, get(old, False), get(measures, True), why] for label, get, why in ROWS]
    head = (
        f"Previous run: {when} at commit `{commit}` (`{previous.get('command', '?')}`), "
        "made by the harness before issue 14."
    )
    return head + "\n\n" + markdown_table(["row", "previous run", "this run", "what changed"], rows)
