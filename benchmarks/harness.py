"""The state of one benchmark run: settings, Kafka configs, and the measures taken."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import Stat
from benchmarks.stats import run_failures

log = logging.getLogger("benchmarks")

DURABILITY = {"acks": "all", "enable.idempotence": True}


@dataclass
class Measure:
    """One measured quantity: the median (min-max) of ``runs`` runs, with its parameters."""

    workload: str
    name: str
    unit: str
    value: Stat
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # Why this measure cannot be trusted (a NaN run, an empty window, a missed rate...):
    # shown in the report, and the run exits non-zero.
    failures: list[str] = field(default_factory=list)

    def label(self) -> str:
        ps = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name} ({ps})" if ps else self.name

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Bench:
    """Settings shared by every workload, and what they measured."""

    bootstrap: str
    quick: bool = False
    runs: int = 3
    partitions: int = 12
    nodes: int = 1
    replication_factor: int = 1
    postgres_dsn: str | None = None
    # A 3-node local cluster (``kes broker start --nodes 3``): its bootstrap servers and
    # data folder (the harness kills and restarts one of its nodes). None: not measured.
    cluster3: str | None = None
    cluster3_dir: str | None = None
    measures: list[Measure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    scratch: Path = field(default_factory=lambda: Path(f"/tmp/kes-bench-{uuid.uuid4().hex[:6]}"))

    def add(
        self,
        workload: str,
        name: str,
        unit: str,
        runs: list[float] | Stat,
        params: dict[str, Any] | None = None,
        failures: list[str] | None = None,
        **extra: Any,
    ) -> Measure:
        """Record a measure; a missing or NaN run fails it (never silently dropped)."""
        value = runs if isinstance(runs, Stat) else Stat.of(runs)
        why = [*(failures or []), *run_failures(value.runs)]
        m = Measure(workload, name, unit, value, dict(params or {}), extra, why)
        self.measures.append(m)
        log.info("%s: %s = %s %s", workload, m.label(), value.fmt(), unit)
        for reason in why:
            log.warning("%s: %s FAILED: %s", workload, m.label(), reason)
        return m

    def find(self, workload: str, name: str, **params: Any) -> Measure | None:
        for m in self.measures:
            if (
                m.workload == workload
                and m.name == name
                and all(m.params.get(k) == v for k, v in params.items())
            ):
                return m
        return None

    def note(self, text: str) -> None:
        log.info("note: %s", text)
        self.notes.append(text)

    def config(self, name: str, **overrides: Any) -> Any:
        """A KafkaConfig with topics, groups and index files of its own."""
        from kes.store.kafka import KafkaConfig

        values: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "namespace": f"bench{self.tag}.{name}",
            "index_dir": str(self.scratch / name / "index"),
            "partitions": self.partitions,
        }
        values.update(overrides)
        return KafkaConfig(**values)

    def broker_settings(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap,
            "nodes": self.nodes,
            "replication_factor": self.replication_factor,
            "min_insync_replicas": max(1, self.replication_factor - 1),
            "acks": "all",
            "enable_idempotence": True,
            "kes_writes": "one transactional producer per writer process, group-fenced "
            "(KIP-447), read_committed",
            "partitions": self.partitions,
            "cluster3": self.cluster3 or "not given (3-node measures skipped)",
        }

    def cleanup(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


class Deadline:
    """A time budget: ``left()`` seconds remain; ``over()`` when it is spent."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def over(self) -> bool:
        return self.left() <= 0
