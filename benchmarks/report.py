"""RESULTS.md from a run's measures: failures first, then targets, environment, every
measure next to the previous run's figure, the method, and a closing note with the old
and new figures of the rows issue 14 changed. Pure: tested without Kafka. Targets are in
``benchmarks/targets.py``, the previous run in ``benchmarks/compare.py``, plots in
``benchmarks/plots.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchmarks.common import ENV_KEYS, Stat, fmt_num, markdown_table
from benchmarks.compare import closing_note, key, previous_values
from benchmarks.harness import Measure
from benchmarks.stats import median
from benchmarks.targets import Target, targets


def _verdict(t: Target) -> str:
    v = t.verdict
    return f"**{v}**" if v in ("met", "NOT met", "FAILED") else v


def targets_table(ts: Sequence[Target]) -> str:
    rows = [
        [
            t.claim,
            t.measured,
            t.baseline,
            "-" if t.ratio is None else f"{t.ratio:.2f}",
            _verdict(t),
            t.how + ("".join(f" FAILED: {f}." for f in t.failures)),
        ]
        for t in ts
    ]
    return markdown_table(["target", "kes", "baseline / bound", "ratio", "verdict", "how"], rows)


def fixed_cells() -> str:
    """The cells the targets are judged on, as fixed in ``benchmarks/targets.py``."""
    from benchmarks.targets import BATCHED_CELL, LATENCY_CELL, SINGLE_CELL

    def cell(c: dict[str, Any]) -> str:
        return f"{c['writers']} callers x {c['batch']} events of {c['event_size']} B"

    return (
        "Cells fixed before the run (`benchmarks/targets.py`), never chosen after it: batched "
        f"{cell(BATCHED_CELL)}, single-event {cell(SINGLE_CELL)}, latency "
        f"{cell(LATENCY_CELL)}, all on 10k uniform streams; the users workload at 64 callers, "
        "cache off. Verdicts: met, NOT met (a result), FAILED (a measure failed: the run "
        "exits non-zero), not measured, reported (no bound)."
    )


def environment_table(env: dict[str, Any]) -> str:
    rows: list[list[object]] = []
    for k in ENV_KEYS:
        v = env.get(k, "")
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        elif isinstance(v, list):
            v = " / ".join(str(x) for x in v)
        rows.append([k, v])
    return markdown_table(["", "value"], rows)


def _lat(lat: Any) -> str:
    if not isinstance(lat, dict):
        return ""
    qs = [q for q in ("p50", "p95", "p99", "p99.9") if q in lat]
    return f"{'/'.join(qs)} ms " + "/".join(fmt_num(float(lat[q])) for q in qs)


def also(m: Measure) -> str:
    """The extra figures a reader needs next to a measure's median."""
    e = m.extra
    out = []
    if "latency_ms" in e:
        out.append(_lat(e["latency_ms"]))
    rates = e.get("conflict_rate")
    if isinstance(rates, list) and any(isinstance(r, float) and r > 0 for r in rates):
        out.append(
            f"conflicts {fmt_num(median(e['conflicts']), 0)}/run (median), "
            f"{median(rates):.0%} of appends refused"
        )
        if "refused_latency_ms" in e:
            out.append("refused " + _lat(e["refused_latency_ms"]))
    ept = [
        x for x in e.get("events_per_transaction", []) if isinstance(x, float) and math.isfinite(x)
    ]
    if ept:
        out.append(f"{fmt_num(median(ept), 1)} events/transaction")
    if "paired_ratio" in e:
        out.append(f"{median(e['paired_ratio']):.3f} of the paired raw producer")
    if "ratio_to_raw_consumer" in e:
        out.append(f"{e['ratio_to_raw_consumer']:.2f} of the raw consumer")
    joins = [x for x in e.get("join_s", []) if isinstance(x, float) and math.isfinite(x)]
    if joins:
        out.append(f"group join {fmt_num(median(joins), 2)} s inside")
    if "p50_ms" in e and "latency_ms" not in e:
        out.append(f"p50 {fmt_num(median(e['p50_ms']), 2)} ms")
    if "delivered_per_window" in e:
        out.append(
            f"appended/delivered per window {e['appended_per_window']}/{e['delivered_per_window']}"
        )
    if e.get("settings"):
        out.append(", ".join(f"{k}: {v}" for k, v in e["settings"].items()))
    for d in e.get("runs_detail", []):
        out.append(
            f"node {d['killed_node']} killed (it led event partitions "
            f"{d['it_led_event_partitions']}); {d['appends_in_window']} appends in the "
            f"{fmt_num(float(e.get('window_s', 0)), 0)} s after; "
            f"{'resumed' if d['resumed'] else 'NOT resumed'}; {d['errors']} failed"
            + (f" ({d['error_sample'][0]})" if d["error_sample"] else "")
        )
    if m.failures:
        out.append("**FAILED**: " + "; ".join(m.failures))
    return "; ".join(x for x in out if x)


def measures_table(measures: Sequence[Measure], previous: dict[Any, Stat]) -> str:
    keys: list[str] = []
    for m in measures:
        keys += [k for k in m.params if k not in keys]
    rows = []
    for m in measures:
        before = previous.get(key(m))
        rows.append(
            [
                m.name,
                *[m.params.get(k, "") for k in keys],
                f"{m.value.fmt()} {m.unit}",
                before.fmt() if before is not None else "",
                also(m),
            ]
        )
    return markdown_table(["measure", *keys, "median (min-max)", "previous run", "also"], rows)


def pairs_table(measures: Sequence[Measure]) -> str:
    """Every paired cell's ratios (not only the target's cell)."""
    rows = []
    for m in measures:
        if m.workload != "append" or "paired_ratio" not in m.extra:
            continue
        p = m.params
        rows.append(
            [
                p["writers"],
                p["batch"],
                p["event_size"],
                m.value.fmt(),
                Stat.of(m.extra["paired_raw_producer"]).fmt(),
                Stat.of(m.extra["paired_ratio"]).fmt(3),
                Stat.of(m.extra.get("standalone_ratio", [])).fmt(3),
                ", ".join(m.extra.get("pair_order", [])),
            ]
        )
    if not rows:
        return ""
    header = ["callers", "batch", "event B", "kes events/s", "paired raw events/s"]
    header += ["kes / paired raw", "kes / standalone raw median", "order per run"]
    return "Every paired cell (10k uniform streams):\n\n" + markdown_table(header, rows)


def domain_table(measures: Sequence[Measure]) -> str:
    """kes / each peer of the same durability, per cache mode and caller count."""
    users = [m for m in measures if m.workload == "domain"]
    rows = []
    for k in users:
        if not str(k.params.get("system", "")).startswith("kes"):
            continue
        for o in users:
            if (
                o is not k
                and not str(o.params.get("system", "")).startswith("kes")
                and o.params.get("durability") == k.params.get("durability")
                and o.params.get("cache") == k.params.get("cache")
                and o.params.get("callers") == k.params.get("callers")
            ):
                r = k.value.median / o.value.median if o.value.median else float("nan")
                rows.append(
                    [
                        str(k.params.get("durability", "-"))[:1],
                        k.params.get("cache", "-"),
                        k.params["callers"],
                        k.params["system"],
                        o.params["system"],
                        f"{r:.2f}",
                    ]
                )
    if not rows:
        return ""
    header = ["durability", "cache", "callers", "kes", "vs", "kes / peer (commands/s)"]
    return markdown_table(header, rows) + "\n\nAbove 1: kes runs more commands per second."


METHOD = """\
## How these numbers were made

- **Same run, same machine, same durability.** kes writes with one transactional,
  idempotent producer per writer process (acks=all, group-fenced, KIP-447) and reads
  `read_committed`. Raw baselines run in a **child process** (`benchmarks/raw.py`), so
  they share neither the GIL nor the client threads of the kes store: an idempotent
  acks=all producer sending kes's exact record bytes (value, key, headers), its delivery
  errors counted (a run with any fails); one-record transactions, plain (begin, produce,
  commit) and fenced as kes fences (produce, flush, `send_offsets_to_transaction` with a
  group member's metadata, commit). Start-up is excluded on both sides: kes's store owns
  its partitions and has appended before any clock starts; the raw producer has its
  producer id, the topic's metadata and one acknowledged record.
- **Paired runs.** Each run of a paired cell (10k uniform streams, batch 1 or 100) is
  paired with a raw-producer run of the same window; the order alternates (kes first,
  then raw first, ...). The standalone raw producer runs before any kes store is open.
  Targets are judged on cells fixed in advance (`benchmarks/targets.py`); every paired
  cell's ratio is shown.
- **Conditional append**: writer threads share one `KafkaEventStore` owning all
  partitions; each append carries the expected version last seen for its stream; a
  conflict takes the actual version from the `ConcurrencyError` and moves on. Latency
  percentiles are over the appends that succeeded, the refused ones apart; every column
  is the median of the runs' values (conflicts too: per run, never summed), with the
  share of appends refused. Forwarded cells: the callers are a second process with
  `role="client"`, the owner is the harness process.
- **Rehydrate**: `Application.get` with the repository cache off, with and without a
  snapshot at the head; the cached load is a repository cache hit.
- **Replay**: the topic is written by kes (batched appends), then the store is closed.
  Every reader (raw consumer in a fresh group, `read_all`, a no-op `ProjectionRunner`, a
  `SqlProjection` into SQLite) is timed from subscribe, so its group join (also shown on
  its own) and first fetch are inside the clock; the readers take turns going first.
  Lag: 16 threads append at a steady rate while a no-op projection follows; each event
  belongs to the window its append started in; a window with no event, an event never
  delivered or an append rate below 90% of the target fails the measure.
- **Recovery**: writers are child processes; the log of N one-event aggregates is
  written in kes's wire format by a raw producer. Failover, zombie takeover and the
  broker kill: `benchmarks/takeover.py`.
- **kes vs eventsourcing** (`benchmarks/es_compare.py`): each command loads the user,
  renames it and saves it; cache off, then on, for both; fresh users each run, created
  before the clock (which also opens the peer's pool). (a) equal single-machine
  durability: kes on one node vs SQLite `synchronous=NORMAL` and PostgreSQL
  `synchronous_commit=off`; (b) kes on 3 nodes (RF 3, min ISR 2) vs SQLite
  `synchronous=FULL` and PostgreSQL `synchronous_commit=on`, `fsync=on`. The settings in
  effect are read back from a connection and shown.
- **Failures are loud.** A NaN run, an empty window, a missed rate, a failed append or
  delivery error marks its measure FAILED here and makes the run exit non-zero; a target
  that is merely NOT met does not.
"""


def failures_section(measures: Sequence[Measure], result: dict[str, Any]) -> list[str]:
    failed = [m for m in measures if m.failures]
    workloads = [n for n in result.get("notes", []) if n.startswith("workload ")]
    if not failed and not workloads:
        return []
    lines = ["## FAILED measures", ""]
    lines += [f"- {m.workload}: {m.label()}: {'; '.join(m.failures)}" for m in failed]
    lines += [f"- {n}" for n in workloads]
    return [*lines, ""]


def render(
    result: dict[str, Any],
    measures: Sequence[Measure],
    plots: Sequence[str],
    command: str,
    previous: dict[str, Any] | None = None,
) -> str:
    """RESULTS.md: command, failures, targets, environment, every measure, plots, notes."""
    env = result["environment"]
    ts = targets(measures)
    runs = result.get("runs", 3)
    before = previous_values(previous)
    by_workload: dict[str, list[Measure]] = {}
    for m in measures:
        by_workload.setdefault(m.workload, []).append(m)
    parts = [
        "# kes benchmark results",
        "",
        f"Produced by `{command}` on {env.get('date', '?')} at commit `{env.get('commit', '?')}`"
        + (" (with uncommitted changes)" if env.get("dirty") else "")
        + f". Every figure is the median of {runs} runs with (min-max); every ratio compares"
        ' two measures taken in this one run on this one machine; "previous run" is the'
        " last committed run. Load average at start and end: "
        f"{env.get('load_average', '?')} / {result.get('load_average_end', '?')}"
        " (1, 5, 15 min; the machine has "
        f"{env.get('cores', '?')} cores).",
        "",
        *failures_section(measures, result),
        "## Targets",
        "",
        fixed_cells(),
        "",
        targets_table(ts),
        "",
        "## Environment",
        "",
        environment_table(env),
        "",
    ]
    titles = {
        "baselines": "Baselines (same bytes, acks=all, idempotent)",
        "append": "1. Conditional append",
        "rehydrate": "2. Rehydrate",
        "replay": "3. Replay and catch-up",
        "recovery": "4. Recovery",
        "streams": "5. Stream processing (kes.streams on Quix Streams)",
        "domain": "kes vs the eventsourcing package (load, decide, save; equal durability)",
    }
    for k, title in titles.items():
        ms = by_workload.get(k)
        if not ms:
            continue
        parts += [f"## {title}", "", measures_table(ms, before), ""]
        if k == "append":
            parts += [pairs_table(ms), ""]
        if k == "domain":
            parts += [domain_table(ms), ""]
        parts += [f"![{k}](results/{p})" for p in plots if p.startswith(k)]
        parts.append("")
    parts += [METHOD, "## Notes", ""] + [f"- {n}" for n in result.get("notes", [])]
    parts.append("")
    timings = result.get("timings", {})
    if timings:
        parts.append(
            "Workload wall times: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) + "."
        )
        parts.append("")
    parts += [
        "## Closing note: the rows issue 14 changed, previous and new figures",
        "",
        closing_note(previous, measures),
        "",
    ]
    return "\n".join(parts)
