from __future__ import annotations

import pytest

from kes import MemoryEventStore
from tests.contract import EventStoreContract


class TestMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> MemoryEventStore:
        return MemoryEventStore()
