"""The writer's admission rules, without a broker: conflicts against tentative versions,
repeats, idempotent retries, oversize events, deadlines."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kes import ANY, NO_STREAM, NewEvent
from kes.envelope import decode, encode, headers, template, to_envelope
from kes.errors import (
    ConcurrencyError,
    EventTooLargeError,
    SerializationError,
    StoreUnavailableError,
    StreamExistsError,
)
from kes.store.base import AppendResult, Expected
from kes.store.kafka._admission import AppendRequest, Verdicts, admit
from kes.store.kafka._index import PartitionIndex, RecentIds

TOPIC = "kes.events.Order"


def request(
    aggregate_id: str,
    expected: Expected,
    *ids: str,
    payload: dict[str, object] | None = None,
    deadline: float | None = None,
) -> AppendRequest:
    events = [
        NewEvent(event_type="Placed", payload=payload or {"n": 1}, event_id=i) for i in ids
    ] or [NewEvent(event_type="Placed", payload=payload or {"n": 1})]
    return AppendRequest(
        "Order", aggregate_id, events, expected, time.time() + 30 if deadline is None else deadline
    )


def decide(
    *requests: AppendRequest,
    index: PartitionIndex | None = None,
    recent: RecentIds | None = None,
    max_bytes: int = 1_000_000,
) -> Verdicts:
    index = index or PartitionIndex(TOPIC, 0)
    return admit(
        requests,
        topic=TOPIC,
        partition=0,
        version=index.version,
        recent=recent or RecentIds(100),
        max_message_bytes=max_bytes,
    )


def answer(v: Verdicts, req: AppendRequest) -> AppendResult | Exception:
    return next(outcome for r, outcome in v.answered if r is req)


def indexed(**versions: int) -> PartitionIndex:
    index = PartitionIndex(TOPIC, 0)
    offset = 0
    for agg, n in versions.items():
        for v in range(1, n + 1):
            index.record(agg, v, offset)
            offset += 2
    return index


def test_expected_version_is_checked_against_the_index() -> None:
    ok, stale = request("o1", 2, "e1"), request("o2", 4, "e2")
    v = decide(ok, stale, index=indexed(o1=2, o2=3))
    assert [r for r, _ in v.accepted] == [ok]
    error = answer(v, stale)
    assert isinstance(error, ConcurrencyError) and not isinstance(error, StreamExistsError)
    assert (error.expected, error.actual) == (4, 3)


def test_creating_an_existing_stream_says_it_exists() -> None:
    create = request("o1", NO_STREAM, "e1", "e2")  # two events: cannot be a stored retry
    error = answer(decide(create, index=indexed(o1=1)), create)
    assert isinstance(error, StreamExistsError)
    assert "already exists" in str(error) and "retry the command" not in str(error)


def test_appends_to_one_stream_in_one_batch_see_each_others_versions() -> None:
    first, second = request("o1", NO_STREAM, "e1", "e2"), request("o1", 2, "e3")
    late = request("o1", 2, "e4")  # expected what the stream was before `second`
    v = decide(first, second, late)
    records = {r: recs for r, recs in v.accepted}
    assert [rec.version for rec in records[first]] == [1, 2]
    assert [rec.version for rec in records[second]] == [3]
    # Refused only once `second` has committed: decided again after this transaction.
    assert v.requeue == [late] and not v.answered and not v.check_log
    # Once it has: version 3 is stored, so the log tells whether `late` is a retry of it.
    assert decide(late, index=indexed(o1=3)).check_log == [(late, 3)]
    # Had the transaction aborted, the same append would go in at version 3.
    again = decide(late, index=indexed(o1=2))
    assert [rec.version for _, recs in again.accepted for rec in recs] == [3]


def test_a_refused_append_does_not_move_the_tentative_version() -> None:
    bad, good = request("o1", 7, "e1"), request("o1", 1, "e2")
    v = decide(bad, good, index=indexed(o1=1))
    assert isinstance(answer(v, bad), ConcurrencyError)
    assert [rec.version for _, recs in v.accepted for rec in recs] == [2]


def test_any_never_conflicts() -> None:
    v = decide(request("o1", ANY, "e1"), request("o1", ANY, "e2"), index=indexed(o1=4))
    assert [rec.version for _, recs in v.accepted for rec in recs] == [5, 6]


def test_a_repeat_of_an_event_id_in_the_batch_waits_for_that_commit() -> None:
    first, repeat = request("o1", NO_STREAM, "e1"), request("o1", NO_STREAM, "e1")
    v = decide(first, repeat)
    assert [r for r, _ in v.accepted] == [first]
    assert v.requeue == [repeat] and not v.answered


def test_events_stored_recently_are_answered_without_writing() -> None:
    recent = RecentIds(100)
    recent.add("e1", "o1", 1, 40)
    recent.add("e2", "o1", 2, 41)
    retry = request("o1", NO_STREAM, "e1", "e2")
    result = answer(decide(retry, index=indexed(o1=2), recent=recent), retry)
    assert isinstance(result, AppendResult)
    assert result.version == 2 and not result.written
    assert [p.offset for p in result.positions] == [40, 41]


def test_a_retry_after_an_unknown_commit_outcome_reports_it_written() -> None:
    recent = RecentIds(100)
    recent.add("e1", "o1", 1, 40)
    retry = request("o1", NO_STREAM, "e1")
    retry.maybe_written = True
    result = answer(decide(retry, index=indexed(o1=1), recent=recent), retry)
    assert isinstance(result, AppendResult) and result.written


def test_ids_stored_for_another_stream_or_out_of_order_are_not_a_retry() -> None:
    recent = RecentIds(100)
    recent.add("e1", "other", 1, 40)
    recent.add("e2", "o1", 3, 41)
    recent.add("e3", "o1", 1, 42)
    elsewhere = request("o1", NO_STREAM, "e1")
    shuffled = request("o2", ANY, "e2", "e3")
    v = decide(elsewhere, shuffled, recent=recent)
    assert [r for r, _ in v.accepted] == [elsewhere, shuffled]


def test_a_conflict_that_may_be_an_old_retry_is_checked_against_the_log() -> None:
    old = request("o1", 1, "e9")  # versions 2.. exist: maybe e9 is at version 2
    beyond = request("o1", 5, "e8")  # the stream is at 3: cannot be stored at 6
    v = decide(old, beyond, index=indexed(o1=3))
    assert v.check_log == [(old, 3)]
    assert isinstance(answer(v, beyond), ConcurrencyError)


def test_an_old_retry_behind_an_append_of_this_batch_is_still_checked() -> None:
    # e9 may be stored at version 2 (beyond the recent ids); an append accepted first in
    # the same batch moves the tentative version, not what is stored.
    fresh, old = request("o1", 3, "e1"), request("o1", 1, "e9")
    v = decide(fresh, old, index=indexed(o1=3))
    assert [r for r, _ in v.accepted] == [fresh]
    assert v.check_log == [(old, 4)]


def test_an_oversize_event_is_refused_alone() -> None:
    big = request("o1", NO_STREAM, "e1", payload={"blob": "x" * 5000})
    small = request("o2", NO_STREAM, "e2")
    v = decide(big, small, max_bytes=2000)
    error = answer(v, big)
    assert isinstance(error, EventTooLargeError) and "2000" in str(error)
    assert [r for r, _ in v.accepted] == [small]


def test_an_unserialisable_payload_is_refused_before_it_is_queued() -> None:
    with pytest.raises(SerializationError, match="cannot be encoded"):
        request("o1", NO_STREAM, "e1", payload={"when": object()})


def test_an_append_past_its_deadline_is_not_written() -> None:
    expired = request("o1", NO_STREAM, "e1", deadline=time.time() - 1)
    v = decide(expired)
    error = answer(v, expired)
    assert isinstance(error, StoreUnavailableError) and error.outcome == "not_written"
    assert not v.accepted


def test_records_carry_the_envelope_at_their_versions() -> None:
    req = request("o1", 2, "e1", "e2")
    v = decide(req, index=indexed(o1=2))
    (_, records) = v.accepted[0]
    envelopes = [decode(r.value) for r in records]
    assert [(e.version, e.event_id, e.aggregate_id) for e in envelopes] == [
        (3, "e1", "o1"),
        (4, "e2", "o1"),
    ]
    assert dict(records[0].headers)["eventType"] == b"Placed"
    assert msgspec.json.decode(records[1].value)["aggregateType"] == "Order"


def test_a_request_is_answered_once_and_its_waiter_wakes() -> None:
    seen: list[AppendRequest] = []
    req = AppendRequest("Order", "o1", [NewEvent(event_type="A", payload={})], ANY, 0, seen.append)
    result = AppendResult(1, [])
    threading.Timer(0.05, req.resolve, (result,)).start()
    assert req.wait(5) is result
    req.fail(StoreUnavailableError("late"))  # ignored: already answered
    assert req.wait(0) is result and seen == [req]


def test_a_waiter_that_gets_no_answer_is_told_the_outcome_is_unknown() -> None:
    req = AppendRequest("Order", "o1", [NewEvent(event_type="A", payload={})], ANY, 0)
    with pytest.raises(StoreUnavailableError) as info:
        req.wait(0.01)
    assert info.value.outcome == "unknown"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(
    aggregate_id=st.text(min_size=1),
    payload=st.dictionaries(st.text(), json_values, max_size=4),
    metadata=st.dictionaries(st.text(), st.text(), max_size=2),
    version=st.integers(min_value=1, max_value=10**12),
)
def test_a_template_encodes_exactly_as_the_envelope_at_any_version(
    aggregate_id: str, payload: dict[str, Any], metadata: dict[str, str], version: int
) -> None:
    event = NewEvent(
        event_type="Placed",
        payload=payload,
        metadata=metadata,
        timestamp=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )
    t = template("Order", aggregate_id, event)
    assert t.value(version) == encode(to_envelope("Order", aggregate_id, version, event))
    assert t.headers == headers(to_envelope("Order", aggregate_id, version, event))
