"""Operator side of pipelines: load one by ``MODULE:NAME``, run N processes, status."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kes import logs, metrics
from kes.errors import InvalidInputError, KesError
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import count_records
from kes.processes import Supervision, import_attribute, run_members
from kes.projections.admin import GroupStatus, group_status
from kes.streams.pipeline import Pipeline
from kes.streams.topics import internal_topic_problems

log = logging.getLogger("kes.streams")

LAG_EVERY_S = 5.0


def load_pipeline(spec: str) -> Pipeline:
    """``package.module:name`` to the :class:`Pipeline` (the current directory is importable)."""
    pipeline = import_attribute(spec, "examples.users.streams:signups_per_hour", InvalidInputError)
    if not isinstance(pipeline, Pipeline):
        raise InvalidInputError(f"{spec!r}: {pipeline!r} is not a kes.streams.Pipeline.")
    return pipeline


def member_state_dir(state_dir: str | Path, pipeline: Pipeline, index: int) -> Path:
    """Each process keeps its RocksDB state in its own folder (rebuilt from changelogs)."""
    return Path(state_dir) / pipeline.name / f"member-{index}"


def serve_metrics(config: KafkaConfig, pipeline: Pipeline, port: int, report_lag: bool) -> None:
    """Serve this process's metrics on ``port``; with ``report_lag``, keep the group's
    ``kes_consumer_lag`` (from its committed positions) up to date every few seconds."""
    metrics.serve(port)
    if report_lag:
        threading.Thread(
            target=_report_lag, args=(config, pipeline), name="kes-lag", daemon=True
        ).start()


def _report_lag(config: KafkaConfig, pipeline: Pipeline) -> None:
    group = pipeline.group(config)
    while True:
        try:
            st = group_status(config, group)
            metrics.lag(pipeline.name, [(p.topic, p.partition, p.lag) for p in st.partitions])
        except KesError as exc:
            log.info("pipeline %s: lag not known now: %s", pipeline.name, exc)
        time.sleep(LAG_EVERY_S)


def _run_child(
    spec: str,
    fields: dict[str, Any],
    state_dir: str,
    index: int,
    loglevel: str,
    metrics_port: int | None,
    heartbeat: Callable[[], None],
) -> None:
    logs.configure(loglevel)
    pipeline = load_pipeline(spec)
    config = KafkaConfig(**dict(fields, member_name=f"{fields['member_name']}-{index}"))
    if metrics_port is not None:
        serve_metrics(config, pipeline, metrics_port + index, index == 0)
    threading.Thread(
        target=_beat_when_caught_up,
        args=(config, pipeline, heartbeat),
        name="kes-heartbeat",
        daemon=True,
    ).start()
    streams = pipeline.application(
        config,
        state_dir=member_state_dir(state_dir, pipeline, index),
        loglevel=loglevel,
        on_message_processed=lambda *_: heartbeat(),
    )
    streams.app.run()


def _beat_when_caught_up(
    config: KafkaConfig, pipeline: Pipeline, heartbeat: Callable[[], None]
) -> None:
    """Beat while none of this member's partitions has anything left to read (its
    records beat as they are processed): idle is not stalled."""
    group = pipeline.group(config)
    checked = False
    while True:
        try:
            if not checked and group_status(config, group, must_exist=False).members:
                checked = True  # the member has started, its topics exist: check them once
                for problem in internal_topic_problems(config, group):
                    log.error("pipeline %s: internal topic %s", pipeline.name, problem)
            st = group_status(config, group, must_exist=False)
            if not any(p.lag for p in st.partitions if p.owner == config.member_name):
                heartbeat()
        except KesError as exc:
            log.info("pipeline %s: cannot tell whether it is caught up: %s", pipeline.name, exc)
        time.sleep(LAG_EVERY_S)


def run_processes(
    spec: str,
    config: KafkaConfig,
    processes: int,
    state_dir: str,
    loglevel: str = "WARNING",
    metrics_port: int | None = None,
    supervision: Supervision | None = None,
) -> int:
    """Run ``processes`` supervised members of the pipeline's group (member ``i`` serves
    its metrics on ``metrics_port + i``; member 0 reports the group's lag); returns the
    worst exit code."""
    if processes < 1:
        raise InvalidInputError(f"--processes must be >= 1, got {processes}.")
    load_pipeline(spec)  # fail here, once, rather than in every child
    fields = dataclasses.asdict(config)
    fields.pop("logger", None)
    args = [(spec, fields, state_dir, i, loglevel, metrics_port) for i in range(processes)]
    return run_members(_run_child, args, "kes-stream", supervision)


@dataclass
class PipelineStatus:
    pipeline: str
    group: GroupStatus
    late_records: int  # records in the late topic
    dead_letters: int  # records in the dead-letter topic
    topic_problems: list[str]  # internal topics below kes's replication rule

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "late_records": self.late_records,
            "dead_letters": self.dead_letters,
            "topic_problems": self.topic_problems,
            **self.group.as_dict(),
        }


def pipeline_status(config: KafkaConfig, pipeline: Pipeline) -> PipelineStatus:
    """Lag per source partition (the group's committed offsets) and the counts of
    late and dead-lettered records."""
    group = group_status(config, pipeline.group(config))
    return PipelineStatus(
        pipeline.name,
        group,
        count_records(config, pipeline.late_topic(config)),
        count_records(config, pipeline.dead_letter_topic(config)),
        internal_topic_problems(config, pipeline.group(config)),
    )
