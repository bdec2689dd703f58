"""Event store backends and their shared contract."""

from kes.store.base import ANY, NO_STREAM, AppendResult, EventStore, ExpectedVersion
from kes.store.memory import MemoryEventStore

__all__ = ["ANY", "NO_STREAM", "AppendResult", "EventStore", "ExpectedVersion", "MemoryEventStore"]
