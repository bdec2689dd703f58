"""Turn a run's measures into targets (kes / baseline ratios), Markdown and PNG plots.

Pure: tested without Kafka. The plots are in ``benchmarks/plots.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.common import ENV_KEYS, Stat, fmt_num, markdown_table
from benchmarks.harness import Measure


@dataclass
class Target:
    """A claim of kes and whether this run met it."""

    claim: str
    measured: str
    baseline: str
    ratio: float | None
    met: bool | None  # None: not measured in this run
    how: str


def _find(measures: Iterable[Measure], workload: str, name: str, **params: Any) -> Measure | None:
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


def targets(measures: Sequence[Measure]) -> list[Target]:
    out: list[Target] = []
    # 1. batched appends vs a raw producer writing the same bytes
    claim = (
        "batched appends >= 50% of a raw confluent-kafka producer "
        "(same bytes, acks=all, idempotent)"
    )
    cells = [
        m
        for m in measures
        if m.workload == "append"
        and m.params.get("batch") == 100
        and m.params.get("event_size") == 100
        and m.params.get("streams") == "uniform"
        and m.extra.get("paired_ratio")
    ]
    if cells:
        best = max(cells, key=lambda m: m.value.median)
        ratio = Stat.of(best.extra["paired_ratio"])
        paired_raw = Stat.of(best.extra["paired_raw_producer"])
        out.append(
            Target(
                claim,
                f"{best.value.fmt()} events/s",
                f"{paired_raw.fmt()} events/s",
                ratio.median,
                ratio.median >= 0.5,
                f"best cell of batch=100, 100 B, 10k uniform streams ({best.params['writers']} "
                f"writers); each kes run paired with a raw-producer run right after it; ratio = "
                f"median of the per-run ratios ({ratio.fmt(2)})",
            )
        )
    else:
        out.append(_missing(claim, "append workload not run"))
    # 2. single-event appends, 64 callers
    claim = "single-event appends with 64 callers >= 20,000 events/s"
    m = _find(
        measures,
        "append",
        "conditional append",
        writers=64,
        batch=1,
        event_size=100,
        streams="uniform",
    )
    if m:
        out.append(
            Target(
                claim,
                f"{m.value.fmt()} events/s",
                "20,000 events/s",
                m.value.median / 20_000,
                m.value.median >= 20_000,
                "64 writers, batch 1, 100 B, 10k uniform streams",
            )
        )
    else:
        out.append(_missing(claim, "append workload not run"))
    # 3. read_stream of 1k events
    claim = "read_stream of 1k events p99 <= 20 ms"
    m = _find(measures, "rehydrate", "read_stream", stream_length=1000)
    if m:
        out.append(
            Target(
                claim,
                f"{m.value.fmt(1)} ms",
                "20 ms",
                m.value.median / 20,
                m.value.median <= 20,
                "median of the runs' p99",
            )
        )
    else:
        out.append(_missing(claim, "rehydrate workload not run"))
    # 4. writer owning 1M aggregates
    claim = "writer owning 1M aggregates: peak RSS <= 1 GiB"
    m = _find(measures, "recovery", "writer peak RSS", aggregates=1_000_000)
    if m:
        out.append(
            Target(
                claim,
                f"{fmt_num(m.value.high)} MiB (max)",
                "1024 MiB",
                m.value.high / 1024,
                m.value.high <= 1024,
                "child writer process, 1M one-event aggregates, 12 partitions",
            )
        )
    else:
        sizes = [x for x in measures if x.workload == "recovery" and x.name == "writer peak RSS"]
        why = "1M aggregates only in the full run"
        if sizes:
            top = max(sizes, key=lambda x: x.params["aggregates"])
            why += f"; this run: {fmt_num(top.value.high)} MiB at {top.params['aggregates']:,}"
        out.append(_missing(claim, why))
    # 5. cached load
    claim = "cached load p99 <= 1 ms"
    m = _find(measures, "rehydrate", "load, cached")
    if m:
        out.append(
            Target(
                claim,
                f"{m.value.fmt(3)} ms",
                "1 ms",
                m.value.median / 1,
                m.value.median <= 1,
                "Repository cache hit, 100-event user",
            )
        )
    else:
        out.append(_missing(claim, "rehydrate workload not run"))
    # 6. replay rate
    claim = "replay >= 200k events/s decoded and dispatched"
    m = _find(measures, "replay", "no-op projection (ProjectionRunner, at_least_once)")
    raw = _find(measures, "replay", "raw confluent-kafka consumer")
    if m:
        ceiling = (
            f"; a raw consumer of the same topic reads {raw.value.fmt()}/s here" if raw else ""
        )
        out.append(
            Target(
                claim,
                f"{m.value.fmt()} events/s",
                "200,000 events/s",
                m.value.median / 200_000,
                m.value.median >= 200_000,
                "ProjectionRunner, no-op handler, from first batch to end" + ceiling,
            )
        )
    else:
        out.append(_missing(claim, "replay workload not run"))
    # 7. no-op projection vs raw consumer
    claim = "no-op projection >= 40% of raw consume rate"
    if m and raw:
        r = m.value.median / raw.value.median
        out.append(
            Target(
                claim,
                f"{m.value.fmt()} events/s",
                f"{raw.value.fmt()} events/s",
                r,
                r >= 0.4,
                "same topic, read_committed, no decode in the baseline",
            )
        )
    else:
        out.append(_missing(claim, "replay workload not run"))
    return out


def _met(t: Target) -> str:
    return "not measured" if t.met is None else ("**met**" if t.met else "**NOT met**")


def targets_table(ts: Sequence[Target]) -> str:
    rows = [
        [
            t.claim,
            t.measured,
            t.baseline,
            "-" if t.ratio is None else f"{t.ratio:.2f}",
            _met(t),
            t.how,
        ]
        for t in ts
    ]
    return markdown_table(["target", "kes", "baseline / bound", "ratio", "verdict", "how"], rows)


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


def measures_table(measures: Sequence[Measure]) -> str:
    keys: list[str] = []
    for m in measures:
        keys += [k for k in m.params if k not in keys]
    rows = []
    for m in measures:
        extra = []
        lat = m.extra.get("latency_ms")
        if isinstance(lat, dict):
            extra.append(
                "p50/p95/p99/p99.9 ms " + "/".join(fmt_num(float(v)) for v in lat.values())
            )
        if "conflicts" in m.extra:
            extra.append(f"conflicts {sum(m.extra['conflicts']):,}")
        if "ratio_to_raw_consumer" in m.extra:
            extra.append(f"{m.extra['ratio_to_raw_consumer']:.2f} of the raw consumer")
        if "p50_ms" in m.extra:
            extra.append(
                f"p50 {fmt_num(sorted(m.extra['p50_ms'])[len(m.extra['p50_ms']) // 2], 2)} ms"
            )
        rows.append(
            [
                m.name,
                *[m.params.get(k, "") for k in keys],
                f"{m.value.fmt()} {m.unit}",
                "; ".join(extra),
            ]
        )
    return markdown_table(["measure", *keys, "median (min-max)", "also"], rows)


METHOD = """\
## How these numbers were made

- **Same run, same machine, same durability.** kes writes with a transactional,
  idempotent producer (acks=all) and reads `read_committed`; the raw confluent-kafka
  producer sends kes's exact record bytes (value, key, headers) with acks=all and
  idempotence; Kafka's Java `ProducerPerformance` (from the broker's jars) sends random
  values of the same size, without key or headers, acks=all, idempotent. On a one-node
  broker acks=all means the leader alone: the replication factor is in the environment.
- **Conditional append**: writer threads in one process, one `KafkaEventStore` owning all
  partitions; each append carries the expected version last seen for its stream, a
  conflict takes the actual version from the `ConcurrencyError` and moves on. Latency
  percentiles are over the successful appends of a run; the table shows the median of the
  runs' percentiles.
- **Rehydrate**: `Application.get` with the repository cache off (`cache_size=0`), with
  and without a `KafkaSnapshotStore` snapshot at the head; the writer of the partition is
  this process, so the index lookup is local. The cached load is a repository cache hit
  (it still asks the index for newer events).
- **Replay** uses kes's public projection API (`kes.projections.ProjectionRunner`, a
  no-op `Projection` at least once, a `SqlProjection` exactly once into a SQLite file);
  rates run from the first batch to the last, so the consumer-group join (reported as
  wall time in results.json) is left out, as it is for the raw consumer (same topic,
  read_committed, fetch.wait.max.ms=10 as kes's readers, no decoding). `read_all` +
  decode + dict dispatch is the store-level replay without a consumer group.
- **Recovery**: writers run as child processes; the log of N one-event aggregates is
  written in kes's wire format by a raw producer (faster to set up; the writer cannot
  tell). Start time runs from creating the store until it owns all partitions.
  Failover: two writer processes split the partitions, one is killed with SIGKILL, and
  the time runs until an append to one of its partitions succeeds through the other.
- **kes vs eventsourcing**: the same users workload (create, four renames, one save per
  command; then load each user without cache) on kes and on the `eventsourcing` package
  with its SQLite (file, WAL) and PostgreSQL persistence modules. The architectures
  differ: eventsourcing commits a local SQL transaction per save; kes commits a Kafka
  transaction through the partition's single writer, replicated when the cluster has
  replicas. The ratio is what that design costs or buys on this machine, not a verdict.
"""


def domain_ratios(measures: Sequence[Measure]) -> str:
    """kes / eventsourcing for each backend and caller count, when both ran."""
    rows = []
    kes = [
        m for m in measures if m.workload == "domain" and str(m.params["system"]).startswith("kes")
    ]
    for k in kes:
        for o in measures:
            if (
                o.workload == "domain"
                and o.name == k.name
                and o.params["callers"] == k.params["callers"]
                and str(o.params["system"]).startswith("eventsourcing")
            ):
                r = k.value.median / o.value.median if o.value.median else float("nan")
                rows.append([k.name, k.params["callers"], o.params["system"], f"{r:.2f}"])
    if not rows:
        return ""
    header = ["measure", "callers", "vs", "kes / eventsourcing"]
    note = (
        "Ratios of medians: for commands/s above 1 means kes is faster; for load p99 above 1 "
        "means kes is slower."
    )
    return markdown_table(header, rows) + "\n\n" + note


def render(
    result: dict[str, Any], measures: Sequence[Measure], plots: Sequence[str], command: str
) -> str:
    """RESULTS.md: command, environment, targets, every measure, plots, notes."""
    env = result["environment"]
    ts = targets(measures)
    runs = result.get("runs", 3)
    by_workload: dict[str, list[Measure]] = {}
    for m in measures:
        by_workload.setdefault(m.workload, []).append(m)
    parts = [
        "# kes benchmark results",
        "",
        f"Produced by `{command}` on {env.get('date', '?')} at commit `{env.get('commit', '?')}`"
        + (" (with uncommitted changes)" if env.get("dirty") else "")
        + f". Every figure is the median of {runs} runs with (min-max); every ratio compares"
        " two measures taken in this one run on this one machine. Load average at start and"
        f" end: {env.get('load_average', '?')} / {result.get('load_average_end', '?')}"
        " (the machine was shared; numbers are noisy).",
        "",
        "## Targets",
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
        "domain": "kes vs the eventsourcing package (same domain workload)",
    }
    for key, title in titles.items():
        ms = by_workload.get(key)
        if not ms:
            continue
        parts += [f"## {title}", "", measures_table(ms), ""]
        if key == "domain":
            parts += [domain_ratios(ms), ""]
        parts += [f"![{key}](results/{p})" for p in plots if p.startswith(key)]
        parts.append("")
    parts += [METHOD, "## Notes", ""] + [f"- {n}" for n in result.get("notes", [])]
    parts.append("")
    timings = result.get("timings", {})
    if timings:
        parts.append(
            "Workload wall times: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) + "."
        )
        parts.append("")
    return "\n".join(parts)
