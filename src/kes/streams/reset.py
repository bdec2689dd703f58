"""Start a pipeline over: ``kes stream reset``.

A pipeline's results live in several places: its output topics (``emit`` and
``to_topic``), Quix's changelog and repartition topics (the state and the re-keyed
records), its late and dead-letter topics, its consumer group's positions, and each
member's local state folder (a RocksDB cache of the changelogs). :func:`plan` lists them
all; :func:`reset` deletes them, refused while the group has members, and waits until
Kafka no longer knows the topics: a run started on a topic whose deletion is still in
progress would restore the old state from it. The next ``kes stream run`` recomputes
everything from the source topics.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from kes.errors import InvalidInputError, StoreUnavailableError
from kes.kafka.config import KafkaConfig
from kes.kafka.errors import translate
from kes.kafka.topics import Topics
from kes.projections.admin import group_status
from kes.streams.pipeline import Pipeline


@dataclass(frozen=True)
class ResetPlan:
    pipeline: str
    group: str
    outputs: list[str]  # result topics (their readers must be reset too)
    internal: list[str]  # Quix's changelog and repartition topics
    reports: list[str]  # the late and dead-letter topics
    state_dir: Path  # every member's local state

    def topics(self) -> list[str]:
        return [*self.outputs, *self.internal, *self.reports]

    def describe(self) -> str:
        lines = [f"pipeline {self.pipeline} (group {self.group}):"]
        for title, names in (
            ("output topics", self.outputs),
            ("internal topics", self.internal),
            ("late and dead-letter topics", self.reports),
        ):
            lines.append(f"  {title}: {', '.join(names) if names else 'none'}")
        lines.append(f"  consumer group {self.group} and local state {self.state_dir}")
        return "\n".join(lines)


def plan(config: KafkaConfig, pipeline: Pipeline, state_dir: str | Path) -> ResetPlan:
    """What a reset of ``pipeline`` deletes. Its outputs are found by building it (as a
    run does, without starting it); ``state_dir`` is the one its runs are given."""
    with tempfile.TemporaryDirectory() as scratch:
        streams = pipeline.application(config, state_dir=scratch)
        outputs = sorted(set(streams.output_topics))
        streams.keys.close()
    topics = Topics(config)
    group = pipeline.group(config)
    internal = sorted(
        name
        for prefix in (f"changelog__{group}--", f"repartition__{group}--")
        for name in topics.names(prefix)
    )
    reports = [
        t
        for t in (pipeline.late_topic(config), pipeline.dead_letter_topic(config))
        if topics.describe(t) is not None
    ]
    return ResetPlan(
        pipeline.name, group, outputs, internal, reports, Path(state_dir) / pipeline.name
    )


def reset(config: KafkaConfig, planned: ResetPlan, wait_s: float = 60.0) -> None:
    """Delete what ``planned`` lists. Refused, deleting nothing, while the group has
    members; returns once no broker lists the deleted topics any more."""
    status = group_status(config, planned.group, must_exist=False)
    if status.members:
        raise InvalidInputError(
            f"group {planned.group!r} has {status.members} running member(s); stop the "
            "pipeline first (a running member would write its state back)."
        )
    topics = Topics(config)
    names = planned.topics()
    topics.delete(names)
    deadline = time.monotonic() + wait_s
    while left := [n for n in names if n in set(topics.names())]:
        if time.monotonic() > deadline:
            raise StoreUnavailableError(
                f"Kafka still lists {', '.join(left)} {wait_s:.0f}s after deleting them; "
                "run the reset again before starting the pipeline."
            )
        time.sleep(0.5)
    try:
        future = topics.admin.delete_consumer_groups([planned.group], request_timeout=30)
        future[planned.group].result(timeout=40)
    except KafkaException as exc:
        if "GROUP_ID_NOT_FOUND" not in str(exc):
            raise translate(exc, f"deleting consumer group {planned.group}") from exc
    shutil.rmtree(planned.state_dir, ignore_errors=True)
