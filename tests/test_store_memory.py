from __future__ import annotations

from collections.abc import Iterator

import pytest

from kes import EventStore, MemoryEventStore, MemorySnapshotStore
from kes.aio import AsyncMemoryEventStore
from kes.testing import EventStoreContract, SnapshotStoreContract
from tests.aio import ThroughAsyncio


class TestMemoryEventStore(EventStoreContract):
    """The contract on the memory store, threaded and through kes.aio."""

    @pytest.fixture(params=["threaded", "asyncio"])
    def store(self, request: pytest.FixtureRequest) -> Iterator[EventStore]:
        if request.param == "threaded":
            yield MemoryEventStore()
            return
        through = ThroughAsyncio(AsyncMemoryEventStore())
        yield through
        through.close()


class TestMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def snapshots(self) -> MemorySnapshotStore:
        return MemorySnapshotStore()
