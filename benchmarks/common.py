"""Shared helpers: percentiles, repeated runs, environment, result rows and tables.

Pure (no Kafka): the smoke test imports this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q / 100 * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_ms(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/p99.9 of latencies given in seconds, in milliseconds."""
    return {f"p{q:g}": percentile(values, q) * 1000 for q in (50, 95, 99, 99.9)} | {
        "n": float(len(values))
    }


@dataclass
class Stat:
    """The median of several runs, with their min and max."""

    median: float
    low: float
    high: float
    runs: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, runs: Sequence[float]) -> Stat:
        if not runs:
            return cls(float("nan"), float("nan"), float("nan"), [])
        return cls(statistics.median(runs), min(runs), max(runs), list(runs))

    def fmt(self, digits: int | None = None) -> str:
        """``median (min-max)``, all with the precision that suits the median."""
        if digits is None:
            digits = auto_digits(self.median)
        low, high = fmt_num(self.low, digits), fmt_num(self.high, digits)
        return f"{fmt_num(self.median, digits)} ({low}-{high})"


def auto_digits(x: float) -> int:
    ax = abs(x) if x == x else 0.0
    return 3 if ax < 1 else 2 if ax < 10 else 1 if ax < 100 else 0


def fmt_num(x: float, digits: int | None = None) -> str:
    if x != x:  # NaN
        return "-"
    return f"{x:,.{auto_digits(x) if digits is None else digits}f}"


def repeat(fn: Callable[[], float], runs: int) -> Stat:
    return Stat.of([fn() for _ in range(runs)])


def peak_rss_mib() -> float:
    """Peak RSS of this process (VmHWM: unlike ru_maxrss, not inherited from the parent
    that forked it, so a child's figure is its own)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, check=False, cwd=ROOT, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _version(module: str) -> str:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return ""


def environment(broker: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a reader needs to judge the numbers: machine, versions, commit, broker."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    load = [round(x, 2) for x in os.getloadavg()]
    try:
        import confluent_kafka

        ck, rdk = _version("confluent-kafka"), confluent_kafka.libversion()[0]
    except ImportError:
        ck = rdk = ""
    java = _run("java", "-version") or subprocess_stderr("java", "-version")
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "kes": _version("kes"),
        "confluent_kafka": ck,
        "librdkafka": rdk,
        "eventsourcing": _version("eventsourcing"),
        "java": java.splitlines()[0] if java else "",
        "commit": _run("git", "rev-parse", "--short", "HEAD"),
        "dirty": bool(_run("git", "status", "--porcelain", "--untracked-files=no")),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_average": load,
        "broker": broker or {},
    }


def subprocess_stderr(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stderr.strip()
    except OSError:
        return ""


ENV_KEYS = (
    "cpu",
    "cores",
    "memory_gib",
    "os",
    "python",
    "kes",
    "confluent_kafka",
    "librdkafka",
    "eventsourcing",
    "java",
    "commit",
    "dirty",
    "date",
    "load_average",
    "broker",
)


@dataclass
class Row:
    """One measure, optionally next to its baseline and target (store.py's tables)."""

    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.value / self.baseline


def write(name: str, rows: list[Row], settings: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "environment": environment(),
                "settings": settings,
                "rows": [asdict(r) | {"ratio": r.ratio} for r in rows],
            },
            indent=2,
        )
    )
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; ``|`` in cells is escaped."""

    def cell(x: object) -> str:
        return str(x).replace("|", "\\|")

    lines = [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    body = []
    for r in rows:
        base = "" if r.baseline is None else f"{r.baseline:,.1f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        met = "" if r.met is None else ("met" if r.met else "NOT met")
        body.append([r.name, f"{r.value:,.2f} {r.unit}", base, ratio, r.target, met])
    return markdown_table(["measure", "value", "baseline", "ratio", "target", "met"], body)
