from __future__ import annotations

import pytest

from kes import MemoryEventStore, MemorySnapshotStore
from kes.testing import EventStoreContract, SnapshotStoreContract


class TestMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> MemoryEventStore:
        return MemoryEventStore()


class TestMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self) -> MemorySnapshotStore:
        return MemorySnapshotStore()
