"""The version index: versions, offsets, persistence, refusal of a stale file."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kes.store.kafka._index import PartitionIndex, RecentIds


def filled(events: list[str]) -> PartitionIndex:
    index = PartitionIndex("topic", 0, "topic-id")
    versions: dict[str, int] = {}
    for offset, agg in enumerate(events):
        versions[agg] = versions.get(agg, 0) + 1
        index.record(agg, versions[agg], offset * 2)  # markers take the odd offsets
    return index


@given(st.lists(st.sampled_from("abcdefg"), max_size=60))
def test_offsets_are_the_aggregates_events_in_order(events: list[str]) -> None:
    index = filled(events)
    for agg in set(events):
        mine = [i * 2 for i, a in enumerate(events) if a == agg]
        assert index.version(agg) == len(mine)
        assert index.offsets(agg, 1, None) == mine
        assert index.offsets(agg, 2, 3) == mine[1:3]
    assert index.version("nobody") == 0 and index.offsets("nobody", 1, None) == []


@given(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=60))
def test_saved_index_loads_back_identical(events: list[str]) -> None:
    import tempfile

    index = filled(events)
    path = Path(tempfile.mkdtemp()) / "0.idx"
    index.save(path)
    loaded = PartitionIndex.load(path, "topic", 0, "topic-id")
    assert loaded.next_offset == index.next_offset
    for agg in set(events):
        assert loaded.offsets(agg, 1, None) == index.offsets(agg, 1, None)


def test_a_replayed_event_is_not_indexed_twice() -> None:
    index = filled(["a", "b", "a"])
    index.record("a", 2, 4)  # re-read after a restart
    assert index.offsets("a", 1, None) == [0, 4]


def test_index_of_another_topic_or_a_recreated_one_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "0.idx"
    filled(["a", "a"]).save(path)
    assert len(PartitionIndex.load(path, "topic", 0, "topic-id")) == 1
    assert len(PartitionIndex.load(path, "other", 0, "topic-id")) == 0
    assert len(PartitionIndex.load(path, "topic", 1, "topic-id")) == 0
    assert len(PartitionIndex.load(path, "topic", 0, "new-id")) == 0
    path.write_bytes(b"garbage")
    assert len(PartitionIndex.load(path, "topic", 0, "topic-id")) == 0


def test_recent_ids_forget_the_oldest_beyond_capacity() -> None:
    recent = RecentIds(capacity=2)
    for i in range(3):
        recent.add(f"e{i}", "agg", i + 1, i)
    assert recent.get("e0") is None
    assert recent.get("e2") == ("agg", 3, 2)
