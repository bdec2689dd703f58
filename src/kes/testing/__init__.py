"""Contracts a backend proves itself with: test classes to subclass in your own tests
(they need pytest), the way kes tests its own memory, Kafka, SQLite and PostgreSQL
backends. Each subclass provides one fixture: ``store``, ``snapshots`` or ``checkpoints``.
"""

from kes.testing.checkpoint_store import CheckpointStoreContract
from kes.testing.event_store import EventStoreContract
from kes.testing.snapshot_store import SnapshotStoreContract

__all__ = ["CheckpointStoreContract", "EventStoreContract", "SnapshotStoreContract"]
