"""The SnapshotStore contract: what every snapshot store must do, as tests.

Subclass :class:`SnapshotStoreContract` and provide a ``snapshots`` fixture (a fresh,
empty store per test)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from kes.envelope import Position
from kes.snapshots import Snapshot, SnapshotStore


def snapshot(aggregate_id: str, version: int, **state: object) -> Snapshot:
    return Snapshot(
        aggregate_type="Account",
        aggregate_id=aggregate_id,
        version=version,
        state={"owner": "ada", "balance": "12.50", **state},
        timestamp=datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
        position=Position("kes.events.Account", 3, 40 + version),
    )


class SnapshotStoreContract:
    """Subclasses provide a ``snapshots`` fixture."""

    def test_a_stored_snapshot_comes_back_equal(self, snapshots: SnapshotStore) -> None:
        snap = snapshot("a1", 5, tags=["x", "y"], nested={"k": [1, 2.5, None, True]})
        snapshots.put(snap)
        assert snapshots.get("Account", "a1") == snap

    def test_an_unknown_aggregate_has_no_snapshot(self, snapshots: SnapshotStore) -> None:
        snapshots.put(snapshot("a1", 5))
        assert snapshots.get("Account", "nobody") is None
        assert snapshots.get("Other", "a1") is None  # types are separate namespaces

    def test_a_newer_snapshot_replaces_an_older_one(self, snapshots: SnapshotStore) -> None:
        snapshots.put(snapshot("a1", 5))
        snapshots.put(snapshot("a1", 9, owner="bob"))
        got = snapshots.get("Account", "a1")
        assert got is not None and (got.version, got.state["owner"]) == (9, "bob")

    def test_an_older_snapshot_never_replaces_a_newer_one(self, snapshots: SnapshotStore) -> None:
        snapshots.put(snapshot("a1", 9, owner="bob"))
        snapshots.put(snapshot("a1", 5))
        got = snapshots.get("Account", "a1")
        assert got is not None and got.version == 9

    def test_delete_forgets_the_snapshot(self, snapshots: SnapshotStore) -> None:
        snapshots.put(snapshot("a1", 5))
        snapshots.put(snapshot("a2", 5))
        snapshots.delete("Account", "a1")
        assert snapshots.get("Account", "a1") is None
        assert snapshots.get("Account", "a2") is not None
        snapshots.delete("Account", "never-there")  # nothing to delete is no error

    def test_state_comes_back_as_json_values(self, snapshots: SnapshotStore) -> None:
        """What is read back went through JSON, whatever the store keeps internally."""
        snapshots.put(snapshot("a1", 1, amount=str(Decimal("1.10"))))
        got = snapshots.get("Account", "a1")
        assert got is not None and got.state["amount"] == "1.10"

    def test_a_returned_snapshot_cannot_change_what_is_stored(
        self, snapshots: SnapshotStore
    ) -> None:
        snapshots.put(snapshot("a1", 1, tags=["x"]))
        first = snapshots.get("Account", "a1")
        assert first is not None
        first.state["tags"].append("mutated")
        again = snapshots.get("Account", "a1")
        assert again is not None and again.state["tags"] == ["x"]

    def test_close_can_be_called_twice(self, snapshots: SnapshotStore) -> None:
        snapshots.close()
        snapshots.close()
