"""What the writer answers for a partition it does not serve: a promise of "nothing was
written" only where it holds (no Kafka needed)."""

from __future__ import annotations

import time

import pytest

from kes import NewEvent
from kes.errors import FencedError, NotOwnerError, StoreUnavailableError
from kes.kafka.config import KafkaConfig
from kes.store.kafka._admission import AppendRequest
from kes.store.kafka._partition import OwnedPartition, State
from kes.store.kafka._writer import _not_serving


def partition(state: State) -> OwnedPartition:
    owned = OwnedPartition(
        KafkaConfig(), "Order", "kes.events.Order", 3, "kes.events.Order.requests", 1_000_000
    )
    owned.state = state
    return owned


def request(source: int | None) -> AppendRequest:
    event = NewEvent(event_type="Placed", payload={"n": 1})
    return AppendRequest("Order", "o1", [event], 0, time.time() + 30, source=source)


@pytest.mark.parametrize("state", [State.STARTING, State.STALE, State.REVOKED, State.LOST])
def test_a_forwarded_request_not_served_may_still_be_carried_out(state: State) -> None:
    # Its request offset is not committed: the partition's next owner reads it again.
    error = _not_serving(partition(state), request(source=42), lost=state is State.LOST)
    assert isinstance(error, NotOwnerError)  # the caller retries with the same event ids
    assert error.outcome == "unknown"
    assert "nothing was written" not in str(error)


def test_a_local_request_not_served_was_not_written() -> None:
    lost = _not_serving(partition(State.LOST), request(None), lost=True)
    stale = _not_serving(partition(State.STALE), request(None))
    revoked = _not_serving(partition(State.REVOKED), request(None))
    assert isinstance(lost, FencedError) and lost.outcome == "not_written"
    assert type(stale) is StoreUnavailableError and stale.outcome == "not_written"
    assert isinstance(revoked, NotOwnerError) and revoked.outcome == "not_written"
