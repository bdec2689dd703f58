"""Pipelines of the stream tests that the examples do not provide."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from examples.users.domain import User
from quixstreams.dataframe.windows import Count

from kes.streams import Pipeline, Streams

HOUR = timedelta(hours=1)


def _hourly_per_user(closing: str, output: str) -> Pipeline:
    def build(streams: Streams) -> None:
        signups = streams.events(User, "EmailChanged")
        hourly = streams.tumbling_window(signups, HOUR, timedelta(0), name="per-user-hourly")
        closed = hourly.agg(changes=Count()).final(closing_strategy=closing)  # type: ignore[arg-type]
        streams.emit(closed.apply(_row), output, "HourCounted", timestamp=lambda r: r["end"])

    return Pipeline(f"hourly-by-{closing}", build, aggregates=[User])


def _row(window: dict[str, Any]) -> dict[str, Any]:
    return {"start": window["start"], "end": window["end"], "changes": window["changes"]}


#: windows of every key of a partition close when the partition's time passes them
hourly_by_partition = _hourly_per_user("partition", "HourlyByPartition")
#: Quix's default: a key's window closes with that key's next event
hourly_by_key = _hourly_per_user("key", "HourlyByKey")


def _hourly_per_domain(streams: Streams) -> None:
    """Email changes per domain and hour: re-keyed through a repartition topic, whose
    records carry each event's time."""
    changes = streams.events(User, "EmailChanged")
    domain = streams.key_by(changes, lambda e: e["payload"]["email"].split("@")[1], "domain")
    hourly = streams.tumbling_window(domain, HOUR, timedelta(0), name="per-domain-hourly")
    closed = hourly.agg(changes=Count()).final()
    streams.emit(closed.apply(_row), "DomainHourly", "HourCounted", timestamp=lambda r: r["end"])


hourly_per_domain = Pipeline("hourly-per-domain", _hourly_per_domain, aggregates=[User])
