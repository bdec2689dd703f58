"""What the web browser shows operators about projections: which exist, their lag per
partition (:func:`kes.projections.admin.group_status`) and their dead letters
(:func:`kes.projections.read_parked`). Blocking: called through the gateway's threads."""

from __future__ import annotations

import base64
import itertools
from typing import Any

from kes.kafka.config import DEFAULT_NAMESPACE, KafkaConfig
from kes.kafka.errors import kafka_errors
from kes.kafka.topics import Topics
from kes.projections.admin import group_status
from kes.projections.dlq import read_parked
from kes.projections.errors import ProjectionError
from kes.serve.problems import Problem

__all__ = ["dead_letters", "projection_names", "projection_status"]


def _name_of_group(config: KafkaConfig, group: str) -> str | None:
    """The projection a consumer group belongs to; None for kes's own groups."""
    ns = config.ns
    own = ("kes-reader-", f"{ns}.reader.", f"{ns}.writers.", f"{ns}.derive.", f"{ns}.stream.")
    if group.startswith(own):
        return None
    if ns == DEFAULT_NAMESPACE:
        return group
    return group[len(ns) + 1 :] if group.startswith(f"{ns}.") else None


def projection_names(config: KafkaConfig) -> list[dict[str, Any]]:
    """Projections seen on the cluster: consumer groups of this namespace, and dead-letter
    topics (a projection that parked records but whose group is gone still shows)."""
    admin = Topics(config).admin
    with kafka_errors("listing consumer groups"):
        listed = admin.list_consumer_groups().result(timeout=10)
        topics = admin.list_topics(timeout=10).topics
    groups = {
        name: str(g.state).split(".")[-1]
        for g in listed.valid
        if (name := _name_of_group(config, g.group_id)) is not None
    }
    dlq_prefix = config.dlq_topic("")
    parked = {t[len(dlq_prefix) :] for t in topics if t.startswith(dlq_prefix)}
    return [
        {"name": n, "state": groups.get(n, "UNKNOWN"), "deadLetterTopic": n in parked}
        for n in sorted(set(groups) | parked)
    ]


def projection_status(config: KafkaConfig, name: str) -> dict[str, Any]:
    try:
        return group_status(config, config.group_id(name)).as_dict()
    except ProjectionError as exc:
        raise Problem(404, "No such projection", str(exc), code="not_found") from None


def dead_letters(config: KafkaConfig, name: str, start: int, limit: int) -> dict[str, Any]:
    """Up to ``limit`` parked records from DLQ offset ``start``, with ``next``."""
    records: list[dict[str, Any]] = []
    last = -1
    parked_records = read_parked(config, name, start)
    try:
        for parked in itertools.islice(parked_records, limit):
            records.append(
                {
                    "dlqOffset": parked.dlq_offset,
                    "topic": parked.topic,
                    "partition": parked.partition,
                    "offset": parked.offset,
                    "error": parked.error,
                    "errorType": parked.error_type,
                    "attempts": parked.attempts,
                    "parkedAtMs": parked.parked_at_ms,
                    "key": _text(parked.key),
                    "value": _text(parked.value),
                }
            )
            last = parked.dlq_offset
    finally:
        close = getattr(parked_records, "close", None)
        if close is not None:
            close()  # the reader's consumer, now rather than at garbage collection
    nxt = last + 1 if len(records) == limit else None
    return {"projection": name, "topic": config.dlq_topic(name), "records": records, "next": nxt}


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()
