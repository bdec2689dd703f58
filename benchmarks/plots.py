"""PNG plots of a run's measures (matplotlib, imported only when plotting)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import Measure
from benchmarks.targets import BATCHED_CELL


def _err(ms: Sequence[Measure]) -> tuple[list[float], list[list[float]]]:
    y = [m.value.median for m in ms]
    lo = [max(0.0, m.value.median - m.value.low) for m in ms]
    hi = [max(0.0, m.value.high - m.value.median) for m in ms]
    return y, [lo, hi]


def plot(measures: Sequence[Measure], out: Path) -> list[str]:
    """PNG files (names relative to ``out``) for the workloads that ran."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    made: list[str] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        made.append(name)

    app = [m for m in measures if m.workload == "append" and m.name == "conditional append"]
    if app:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
        for ax, streams in zip(axes, ("hot", "uniform", "zipf"), strict=True):
            for size, style in ((100, "-"), (1000, "--")):
                for batch in (1, 10, 100):
                    ms = sorted(
                        (
                            m
                            for m in app
                            if m.params["streams"] == streams
                            and m.params["batch"] == batch
                            and m.params["event_size"] == size
                        ),
                        key=lambda m: m.params["writers"],
                    )
                    if ms:
                        y, err = _err(ms)
                        ax.errorbar(
                            [m.params["writers"] for m in ms],
                            y,
                            yerr=err,
                            fmt=style + "o",
                            capsize=3,
                            label=f"batch {batch}, {size} B",
                        )
            ax.set_title(f"streams: {streams}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("writers (threads)")
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("events/s (median, min-max)")
        axes[-1].legend(fontsize=7)
        save(fig, "append_throughput.png")
        fig, ax = plt.subplots(figsize=(6, 4))
        for batch in (1, 10, 100):
            ms = sorted(
                (
                    m
                    for m in app
                    if m.params["streams"] == "uniform"
                    and m.params["batch"] == batch
                    and m.params["event_size"] == 100
                ),
                key=lambda m: m.params["writers"],
            )
            if ms:
                ax.plot(
                    [m.params["writers"] for m in ms],
                    [m.extra["latency_ms"]["p99"] for m in ms],
                    "o-",
                    label=f"p99, batch {batch}",
                )
                ax.plot(
                    [m.params["writers"] for m in ms],
                    [m.extra["latency_ms"]["p50"] for m in ms],
                    "x:",
                    label=f"p50, batch {batch}",
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("writers")
        ax.set_ylabel("append latency, ms")
        ax.set_title("append latency (100 B, 10k uniform streams)")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
        save(fig, "append_latency.png")
    reh = [m for m in measures if m.workload == "rehydrate" and m.name != "load, cached"]
    if reh:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in ("read_stream", "load, no snapshot", "load, snapshot at head"):
            ms = sorted((m for m in reh if m.name == name), key=lambda m: m.params["stream_length"])
            if ms:
                y, err = _err(ms)
                ax.errorbar(
                    [m.params["stream_length"] for m in ms],
                    y,
                    yerr=err,
                    fmt="o-",
                    capsize=3,
                    label=name,
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("stream length (events)")
        ax.set_ylabel("p99 latency, ms")
        ax.set_title("rehydrate")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        save(fig, "rehydrate.png")
    users = [m for m in measures if m.workload == "domain" and "callers" in m.params]
    if users:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
        for ax, letter in zip(axes, ("a", "b"), strict=True):
            group = [m for m in users if str(m.params.get("durability", "")).startswith(letter)]
            for system in sorted({str(m.params["system"]) for m in group}):
                for cache, style in (("off", "-"), ("on", ":")):
                    line = sorted(
                        (
                            m
                            for m in group
                            if m.params["system"] == system and m.params.get("cache") == cache
                        ),
                        key=lambda m: m.params["callers"],
                    )
                    if line:
                        y, err = _err(line)
                        ax.errorbar(
                            [m.params["callers"] for m in line],
                            y,
                            yerr=err,
                            fmt=style + "o",
                            capsize=3,
                            label=f"{system}, cache {cache}",
                        )
            ax.set_title(f"durability ({letter})")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("callers (threads)")
            ax.grid(True, alpha=0.3)
            if group:
                ax.legend(fontsize=6)
        axes[0].set_ylabel("load-decide-save commands/s")
        save(fig, "domain.png")
    for key, unit_name in (
        ("replay", "events/s"),
        ("baselines", "events/s"),
    ):
        ms = [m for m in measures if m.workload == key and m.unit == unit_name]
        labels = [m.label() for m in ms]
        if key == "baselines":
            ms, labels = [], []
            for size in (100, 1000):
                cell = next(
                    (
                        m
                        for m in app
                        if all(
                            m.params.get(k) == v
                            for k, v in BATCHED_CELL.items()
                            if k != "event_size"
                        )
                        and m.params.get("event_size") == size
                    ),
                    None,
                )
                if cell is not None:
                    ms.append(cell)
                    p = cell.params
                    labels.append(f"kes, {size} B ({p['writers']} callers x {p['batch']} events)")
                for m in measures:
                    if m.workload == "baselines" and m.params.get("event_size") == size:
                        ms.append(m)
                        labels.append(f"{m.name.replace(' (Java)', '')}, {size} B")
        if not ms:
            continue
        fig, ax = plt.subplots(figsize=(11, 0.5 * len(ms) + 1.5))
        y, err = _err(ms)
        ax.barh(range(len(ms)), y, xerr=err, capsize=3)
        ax.set_yticks(range(len(ms)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(unit_name)
        ax.grid(True, axis="x", alpha=0.3)
        save(fig, f"{key}.png")
    rec = [
        m
        for m in measures
        if m.workload == "recovery" and m.unit == "s" and "aggregates" in m.params
    ]
    if rec:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name in sorted({m.name for m in rec}):
            ms = sorted((m for m in rec if m.name == name), key=lambda m: m.params["aggregates"])
            y, err = _err(ms)
            ax.errorbar(
                [m.params["aggregates"] for m in ms], y, yerr=err, fmt="o-", capsize=3, label=name
            )
        ax.set_xscale("log")
        ax.set_xlabel("aggregates in the index")
        ax.set_ylabel("seconds to own all 12 partitions")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
        save(fig, "recovery.png")
    return made
