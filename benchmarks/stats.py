"""The harness's own statistics: what makes a measure fail, the order of paired runs,
and verdicts computed from series. Pure (no Kafka, no clock): tested by
``tests/test_benchmarks_stats.py``.

A benchmark that silently drops a number lies by omission. So: a run that gave NaN or
nothing fails its measure; a lag window with no events, with events appended but never
delivered, or below its target rate fails the measure; every column of a table is a
median *per run* (never a sum over runs); paired runs alternate which side goes first.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

KES, RAW = "kes", "raw"


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values (never a silent 0)."""
    return statistics.median(values) if values else float("nan")


def per_run_medians(runs: Sequence[Mapping[str, float]], keys: Sequence[str]) -> dict[str, float]:
    """Each key's median over runs (each run reports its own percentiles, counts...): the
    figure a table shows for a measure of several runs, never a sum or a pooled value."""
    return {k: median([float(r[k]) for r in runs]) for k in keys}


def run_failures(runs: Sequence[float]) -> list[str]:
    """Why a measure's runs cannot stand for it: none at all, or a NaN / infinite run."""
    if not runs:
        return ["no run produced a value"]
    bad = [i for i, x in enumerate(runs) if not math.isfinite(x)]
    if bad:
        return [f"run(s) {', '.join(str(i + 1) for i in bad)} of {len(runs)} gave no value (NaN)"]
    return []


def pairing_order(i: int) -> tuple[str, str]:
    """Which side of the ``i``-th paired run goes first: kes, then raw on even ``i``, the
    other way round on odd ``i`` (so that neither always runs on a warmer or a more
    loaded machine)."""
    return (KES, RAW) if i % 2 == 0 else (RAW, KES)


def rotate(items: Sequence[T], r: int) -> list[T]:
    """``items`` rotated left by ``r``: run ``r`` of readers that share a topic starts with
    a different one each time."""
    if not items:
        return []
    k = r % len(items)
    return [*items[k:], *items[:k]]


@dataclass(frozen=True)
class Window:
    """One measurement window of a steady-load test."""

    appended: int  # events appended with a send time inside the window
    delivered: int  # of those, delivered to the follower
    p99_ms: float  # over the delivered ones


def window_failures(
    windows: Sequence[Window], target_rate: float, window_s: float, min_fraction: float = 0.9
) -> list[str]:
    """Why a steady-load measure failed: a window with no events, an undelivered event, a
    NaN percentile, or an append rate below ``min_fraction`` of the target."""
    out: list[str] = []
    if not windows:
        return ["no window was measured"]
    floor = target_rate * window_s * min_fraction
    for i, w in enumerate(windows, 1):
        if w.delivered == 0:
            out.append(f"window {i}: no event delivered")
        elif not math.isfinite(w.p99_ms):
            out.append(f"window {i}: p99 is NaN")
        if w.delivered < w.appended:
            out.append(
                f"window {i}: {w.appended - w.delivered} of {w.appended} events never delivered"
            )
        if w.appended < floor:
            out.append(
                f"window {i}: {w.appended / window_s:,.0f} events/s appended, below "
                f"{min_fraction:.0%} of the target {target_rate:,.0f}/s"
            )
    return out


def never_falls(
    series: Sequence[tuple[int, float]], tolerance: float = 0.05
) -> tuple[bool | None, str]:
    """Does a throughput series (callers, median) never fall as callers grow? A step
    counts as a fall when the median drops by more than ``tolerance`` of the previous one.
    None when fewer than two finite points were measured."""
    points = sorted((c, v) for c, v in series if math.isfinite(v))
    if len(points) < 2:
        return None, "fewer than two points measured"
    falls = [
        f"{a}->{b} callers: {va:,.0f} -> {vb:,.0f} ({vb / va - 1:+.0%})"
        for (a, va), (b, vb) in itertools.pairwise(points)
        if vb < va * (1 - tolerance)
    ]
    shape = " -> ".join(f"{v:,.0f}" for _, v in points)
    if falls:
        return False, f"{shape}; falls: {'; '.join(falls)}"
    return True, shape


def ratio(a: float, b: float) -> float:
    """``a / b``; NaN when ``b`` is zero or either is not finite."""
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return float("nan")
    return a / b
