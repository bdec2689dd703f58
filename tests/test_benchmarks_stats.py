"""The harness's own statistics: a NaN run or an empty window fails its measure, tables
show medians per run, paired runs alternate, targets use cells fixed in advance. No
Kafka, no clock."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.common import Stat
from benchmarks.compare import closing_note
from benchmarks.harness import Bench, Measure
from benchmarks.report import also, render
from benchmarks.stats import (
    Window,
    never_falls,
    pairing_order,
    per_run_medians,
    rotate,
    run_failures,
    window_failures,
)
from benchmarks.targets import BATCHED_CELL, LATENCY_CELL, SINGLE_CELL, targets

NAN = float("nan")


def test_a_nan_or_missing_run_fails_the_measure() -> None:
    bench = Bench(bootstrap="unused:1")
    m = bench.add("replay", "lag", "ms p99", [32.7, 28.8, NAN])
    assert m.failures == ["run(s) 3 of 3 gave no value (NaN)"]
    assert bench.add("replay", "empty", "ms", []).failures == ["no run produced a value"]
    assert bench.add("replay", "fine", "ms", [1.0, 2.0, 3.0]).failures == []
    assert run_failures([1.0, math.inf]) != []


def test_the_old_lag_windows_fail_loudly() -> None:
    # What the previous report printed as "32.7 (28.8-32.7) ms p99": the third window was
    # empty and only 282 of the 500 events/s were achieved.
    windows = [Window(4002, 4002, 32.7), Window(2773, 2773, 28.8), Window(0, 0, NAN)]
    why = window_failures(windows, target_rate=500, window_s=8)
    assert "window 3: no event delivered" in why
    assert any(w.startswith("window 2:") and "below 90% of the target" in w for w in why)
    assert any(w.startswith("window 3:") and "below 90%" in w for w in why)


def test_undelivered_events_and_nan_percentiles_fail_a_window() -> None:
    assert window_failures([Window(400, 398, 10.0)], 50, 8) == [
        "window 1: 2 of 400 events never delivered"
    ]
    assert window_failures([Window(400, 400, NAN)], 50, 8) == ["window 1: p99 is NaN"]
    assert window_failures([], 50, 8) == ["no window was measured"]
    assert window_failures([Window(400, 400, 12.0)] * 3, 50, 8) == []


def test_paired_runs_alternate_which_side_goes_first() -> None:
    orders = [pairing_order(i) for i in range(4)]
    assert orders == [("kes", "raw"), ("raw", "kes"), ("kes", "raw"), ("raw", "kes")]
    assert [rotate("abcd", r)[0] for r in range(5)] == ["a", "b", "c", "d", "a"]
    assert rotate([], 3) == []


def test_tables_show_medians_per_run_never_sums() -> None:
    runs = [{"p50": 1.0, "p99": 9.0}, {"p50": 3.0, "p99": 30.0}, {"p50": 2.0, "p99": 12.0}]
    assert per_run_medians(runs, ("p50", "p99")) == {"p50": 2.0, "p99": 12.0}
    hot = Measure(
        "append",
        "conditional append",
        "events/s",
        Stat.of([70.0, 80.0, 60.0]),
        {"writers": 64, "batch": 1, "event_size": 100, "streams": "hot"},
        {
            "conflicts": [6000, 7000, 6860],
            "conflict_rate": [0.93, 0.95, 0.94],
            "latency_ms": {"p50": 16.0, "p99": 47.0},
            "refused_latency_ms": {"p50": 12.0, "p99": 40.0},
        },
    )
    text = also(hot)
    assert "conflicts 6,860/run (median), 94% of appends refused" in text
    assert "19,860" not in text  # the old report summed the runs
    assert "refused p50/p99 ms 12.0/40.0" in text


def test_throughput_series_verdict_is_computed_from_the_series() -> None:
    assert never_falls([(1, 100.0), (4, 300.0), (16, 290.0), (64, 900.0)])[0] is True
    ok, why = never_falls([(1, 100.0), (4, 300.0), (16, 200.0), (64, 900.0)])
    assert ok is False and "4->16 callers" in why
    assert never_falls([(1, 100.0), (4, NAN)])[0] is None


def _cell(params: dict[str, Any], value: float, **extra: Any) -> Measure:
    return Measure(
        "append", "conditional append", "events/s", Stat.of([value] * 3), dict(params), extra
    )


def _append_measures() -> list[Measure]:
    fixed = _cell(
        BATCHED_CELL,
        60_000,
        paired_ratio=[0.6, 0.5, 0.55],
        paired_raw_producer=[100_000.0, 120_000.0, 110_000.0],
        standalone_raw_median=150_000.0,
        standalone_ratio=[0.4, 0.4, 0.4],
        pair_order=["kes-raw", "raw-kes", "kes-raw"],
    )
    best = _cell(
        BATCHED_CELL | {"writers": 64},
        90_000,
        paired_ratio=[0.9, 0.9, 0.9],
        paired_raw_producer=[100_000.0] * 3,
    )
    latency = _cell(LATENCY_CELL, 400, latency_ms={"p50": 3.0, "p99": 9.0})
    single = _cell(SINGLE_CELL, 25_000, paired_ratio=[0.2] * 3, paired_raw_producer=[1e5] * 3)
    raw_txn = Measure(
        "append",
        "raw one-record transaction (begin, produce, commit)",
        "ms p50",
        Stat.of([2.0, 2.5, 3.0]),
        {"event_size": 100},
    )
    return [fixed, best, latency, single, raw_txn]


def test_targets_judge_the_cell_fixed_in_advance_not_the_best_one() -> None:
    ts = {t.claim: t for t in targets(_append_measures())}
    paired = next(t for c, t in ts.items() if c.startswith("batched appends (100"))
    assert paired.ratio == 0.55 and paired.met is True  # the 16-caller cell, not 0.9
    standalone = next(t for c, t in ts.items() if "standalone" in c)
    assert standalone.ratio == 0.4 and standalone.verdict == "NOT met"
    lat = next(t for c, t in ts.items() if c.startswith("one caller"))
    assert lat.ratio == 3.0 / 2.5 and lat.met is True
    assert next(t for c, t in ts.items() if "1 GiB" in c).verdict == "not measured"


def test_a_failed_measure_fails_its_target_and_the_report_says_so() -> None:
    ms = _append_measures()
    ms[0].failures.append("paired raw producer: 3 delivery errors")
    ts = targets(ms)
    assert ts[0].verdict == "FAILED"
    result = {"environment": {"date": "d", "commit": "c"}, "runs": 3, "notes": [], "timings": {}}
    text = render(result, ms, [], "python -m benchmarks")
    assert "## FAILED measures" in text and "3 delivery errors" in text
    assert "**FAILED**" in text


def test_report_keeps_the_previous_figures_next_to_the_new_ones() -> None:
    ms = _append_measures()
    old = {
        "command": "python -m benchmarks",
        "environment": {"date": "2026-11-26", "commit": "c38af75"},
        "measures": [
            {
                "workload": "append",
                "name": "conditional append",
                "unit": "events/s",
                "value": {"median": 35_634.0, "low": 35_093.0, "high": 41_805.0, "runs": []},
                "params": dict(BATCHED_CELL),
                "extra": {
                    "paired_ratio": [0.21, 0.19, 0.39],
                    "paired_raw_producer": [185_450.0, 90_898.0, 201_499.0],
                },
            }
        ],
    }
    result = {"environment": {"date": "d", "commit": "c"}, "runs": 3, "notes": [], "timings": {}}
    text = render(result, ms, [], "python -m benchmarks", previous=old)
    assert "| previous run |" in text and "35,634 (35,093-41,805)" in text
    note = closing_note(old, ms)
    row = next(line for line in note.splitlines() if "raw producer, paired |" in line)
    assert "0.21 (16 callers)" in row and "0.55 (16 callers)" in row
    assert closing_note(None, ms).startswith("No previous run")


def test_a_run_of_the_old_harness_still_renders() -> None:
    from benchmarks.compare import measures_of

    old = {
        "measures": [
            {
                "workload": "domain",
                "name": "commands (create/rename, one save each)",
                "unit": "commands/s",
                "value": {"median": 1476.0, "low": 1094.0, "high": 1727.0, "runs": []},
                "params": {"system": "kes (Kafka, acks=all, 1 node)", "callers": 16},
                "extra": {},
            },
            {
                "workload": "recovery",
                "name": "failover after kill -9 of an owner",
                "unit": "s",
                "value": {"median": 10.0, "low": 9.98, "high": 12.01, "runs": []},
                "params": {"session_timeout_ms": 10_000},
                "extra": {},
            },
        ]
    }
    ms = measures_of(old)
    assert [m.failures for m in ms] == [[], []]
    failover = next(t for t in targets(ms) if t.claim.startswith("failover"))
    assert failover.baseline == "12.0 s" and failover.verdict == "met"
    result = {"environment": {}, "runs": 3, "notes": [], "timings": {}}
    assert "## Closing note" in render(result, ms, [], "python -m benchmarks", previous=old)
