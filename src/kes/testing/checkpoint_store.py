"""The CheckpointStore contract: the compare-and-set advance that makes SQL read models
exactly once, and the reset of a replay, as tests.

Subclass :class:`CheckpointStoreContract` and provide a ``checkpoints`` fixture (a store
on an empty database per test)."""

from __future__ import annotations

import pytest

from kes.projections.checkpoints import CheckpointStore
from kes.projections.errors import CheckpointConflictError

P0, P1 = ("kes.events.A", 0), ("kes.events.A", 1)


class CheckpointStoreContract:
    """Subclasses provide a ``checkpoints`` fixture."""

    def test_a_projection_starts_with_no_offsets(self, checkpoints: CheckpointStore) -> None:
        with checkpoints.transaction() as tx:
            assert checkpoints.load(tx, "p") == {}

    def test_advances_are_stored_and_read_back(self, checkpoints: CheckpointStore) -> None:
        with checkpoints.transaction() as tx:
            checkpoints.advance(tx, "p", {P0: (None, 10), P1: (None, 4)})
        with checkpoints.transaction() as tx:
            checkpoints.advance(tx, "p", {P0: (10, 25)})
        with checkpoints.transaction() as tx:
            assert checkpoints.load(tx, "p") == {P0: 25, P1: 4}
            assert checkpoints.load(tx, "other") == {}

    def test_a_stale_advance_is_refused_and_changes_nothing(
        self, checkpoints: CheckpointStore
    ) -> None:
        with checkpoints.transaction() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS rm (n INTEGER)")
            checkpoints.advance(tx, "p", {P0: (None, 10)})
        with checkpoints.transaction() as tx:
            checkpoints.advance(tx, "p", {P0: (10, 20)})  # another process got there
        refused = pytest.raises(CheckpointConflictError, match="no longer at offset 10")
        with refused, checkpoints.transaction() as tx:
            tx.execute("INSERT INTO rm (n) VALUES (?)", (1,))
            checkpoints.advance(tx, "p", {P1: (None, 3), P0: (10, 30)})
        with checkpoints.transaction() as tx:
            assert checkpoints.load(tx, "p") == {P0: 20}  # P1's insert rolled back too
            assert tx.query("SELECT count(*) FROM rm")[0][0] == 0

    def test_a_second_first_advance_is_refused(self, checkpoints: CheckpointStore) -> None:
        with checkpoints.transaction() as tx:
            checkpoints.advance(tx, "p", {P0: (None, 10)})
        with pytest.raises(CheckpointConflictError), checkpoints.transaction() as tx:
            checkpoints.advance(tx, "p", {P0: (None, 12)})
        with checkpoints.transaction() as tx:
            assert checkpoints.load(tx, "p") == {P0: 10}

    def test_reset_replaces_a_projections_offsets(self, checkpoints: CheckpointStore) -> None:
        with checkpoints.transaction() as tx:
            checkpoints.advance(tx, "p", {P0: (None, 10), P1: (None, 4)})
            checkpoints.advance(tx, "q", {P0: (None, 7)})
        with checkpoints.transaction() as tx:
            checkpoints.reset(tx, "p", {P0: 0})
        with checkpoints.transaction() as tx:
            assert checkpoints.load(tx, "p") == {P0: 0}
            assert checkpoints.load(tx, "q") == {P0: 7}

    def test_setup_twice_is_harmless(self, checkpoints: CheckpointStore) -> None:
        checkpoints.setup()
        checkpoints.setup()
