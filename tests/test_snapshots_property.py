"""Loading from a snapshot plus later events equals replaying every event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from kes.application import Application
from kes.domain import Aggregate, event
from kes.snapshots import MemorySnapshotStore, restore, take_snapshot
from kes.store import MemoryEventStore

T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Ledger(Aggregate, id_field="ledger_id"):
    """State with types JSON lacks (Decimal, set, int keys, datetime) to stress restore."""

    total: Decimal
    tags: set[str]
    counts: dict[int, int]
    last_seen: datetime | None

    @event("LedgerOpened")
    def __init__(self, ledger_id: str) -> None:
        self.total = Decimal(0)
        self.tags = set()
        self.counts = {}
        self.entries: list[list[str]] = []
        self.last_seen = None

    @event("Added")
    def add(self, amount: Decimal, at: datetime) -> None:
        self.total += amount
        self.entries.append([str(amount), at.isoformat()])
        self.last_seen = at

    @event("Tagged")
    def tag(self, tag: str) -> None:
        self.tags.add(tag)

    @event("Counted")
    def count(self, key: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "tag", "count"]),
        st.integers(min_value=-1000, max_value=1000),
        st.booleans(),  # save after this op?
    ),
    max_size=40,
)


class Clock:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> datetime:
        self.n += 1
        return T0 + timedelta(seconds=self.n)


def build(app: Application, history: list[tuple[str, int, bool]]) -> Ledger:
    ledger = Ledger("L1")
    app.save(ledger)
    for op, n, save in history:
        if op == "add":
            ledger.add(Decimal(n) / 100, T0 + timedelta(days=n))
        elif op == "tag":
            ledger.tag(f"t{n % 7}")
        else:
            ledger.count(n % 5)
        if save:
            app.save(ledger)
    app.save(ledger)
    return ledger


@settings(max_examples=60, deadline=None)
@given(history=ops, every=st.integers(min_value=1, max_value=10), data=st.data())
def test_loading_with_snapshots_equals_loading_without_for_random_histories(
    history: list[tuple[str, int, bool]], every: int, data: st.DataObject
) -> None:
    store = MemoryEventStore()
    snaps = MemorySnapshotStore()
    writer = Application(store, snapshots=snaps, snapshot_every={"Ledger": every}, clock=Clock())
    written = build(writer, history)
    with_snaps = Application(store, snapshots=snaps)
    without = Application(store)

    a, b = with_snaps.get(Ledger, "L1"), without.get(Ledger, "L1")
    assert vars(a) == vars(b) == vars(written)
    assert a.version == b.version == written.version

    k = data.draw(st.integers(min_value=1, max_value=written.version), label="version")
    assert vars(with_snaps.get(Ledger, "L1", version=k)) == vars(without.get(Ledger, "L1", k))

    seconds = data.draw(st.integers(min_value=1, max_value=len(history) + 2), label="seconds")
    at = T0 + timedelta(seconds=seconds)
    x, y = with_snaps.get(Ledger, "L1", at=at), without.get(Ledger, "L1", at=at)
    assert vars(x) == vars(y) and x.version == y.version


@settings(max_examples=30, deadline=None)
@given(history=ops)
def test_snapshot_round_trip_restores_state_with_its_annotated_types(
    history: list[tuple[str, int, bool]],
) -> None:
    ledger = build(Application(MemoryEventStore(), clock=Clock()), history)
    snaps = MemorySnapshotStore()
    snaps.put(take_snapshot(ledger))
    snap = snaps.get("Ledger", "L1")
    assert snap is not None
    back = restore(Ledger, snap)
    assert back is not None
    assert vars(back) == vars(ledger) and back.version == ledger.version
    assert isinstance(back.total, Decimal) and isinstance(back.tags, set)
