"""Stream processing over kes event topics, on Quix Streams (see docs/streams.md)."""

from kes.streams.pipeline import Pipeline, Streams, latest_fields
from kes.streams.source import BadRecord, StreamEvent

__all__ = ["BadRecord", "Pipeline", "StreamEvent", "Streams", "latest_fields"]
