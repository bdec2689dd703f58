"""Admission: which of the inserts waiting for a log go into its next append.

Pure decisions, no I/O. Given what the index says the log holds at its head, each insert
is either **refused** now (an event's originator id and version is already recorded, or
twice in the batch, or its tracking position is not past the last one) or **accepted**.
The accepted ones become one kes append at ``expected_version = head``: if the log moved
meanwhile, kes refuses the whole append and the log admits them again against the new
head. That compare-and-set is what makes each decision here hold at the moment of writing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import StoredEvent, Tracking

from kes.envelope import NewEvent
from kes.errors import KesError
from kes.integrations.eventsourcing._index import LogIndex
from kes.integrations.eventsourcing._wire import Row, event_record, key_of, tracking_record
from kes.integrations.eventsourcing.errors import (
    EventExistsError,
    IntegrityConflictError,
    StaleTrackingError,
)


class Insert:
    """One ``insert_events`` call waiting for its log; its outcome is set exactly once.

    Its event ids are made once, so that an append retried after an unknown outcome is
    recognised by kes as a repeat and written only once.
    """

    def __init__(
        self, events: Sequence[StoredEvent], tracking: Tracking | None, deadline: float
    ) -> None:
        self.events = events
        self.tracking = tracking
        self.deadline = deadline  # time.monotonic() after which the caller is told so
        self.event_ids = [str(uuid.uuid4()) for _ in range(len(events) + (tracking is not None))]
        self.notification_ids: list[int] = []
        self.error: KesError | None = None
        self._done = threading.Event()

    @property
    def size(self) -> int:
        return len(self.event_ids)

    def resolve(self, notification_ids: list[int]) -> None:
        self.notification_ids = notification_ids
        self._done.set()

    def fail(self, error: KesError) -> None:
        self.error = error
        self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)


@dataclass
class Plan:
    """The accepted inserts as one append at ``expected`` (the log's head)."""

    expected: int
    inserts: list[Insert] = field(default_factory=list)
    records: list[NewEvent] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)  # what the index takes once written
    notification_ids: list[list[int]] = field(default_factory=list)  # per insert


def admit(
    index: LogIndex, inserts: Sequence[Insert], log: str
) -> tuple[Plan, list[tuple[Insert, IntegrityConflictError]]]:
    """Split ``inserts`` into the plan of one append and the refused (with their error)."""
    plan = Plan(expected=index.head)
    refused: list[tuple[Insert, IntegrityConflictError]] = []
    claimed: set[tuple[str, int]] = set()
    tracked: dict[str, int] = {}
    next_nid = index.max_notification_id + 1
    version = index.head
    for ins in inserts:
        error = _conflict(index, ins, claimed, tracked, log)
        if error is not None:
            refused.append((ins, error))
            continue
        nids: list[int] = []
        for event, event_id in zip(ins.events, ins.event_ids, strict=False):
            key = key_of(event.originator_id)
            claimed.add((key, event.originator_version))
            nid = next_nid if index.numbered else None
            if nid is not None:
                nids.append(nid)
                next_nid += 1
            version += 1
            plan.records.append(event_record(event, nid, event_id))
            plan.rows.append(Row(version, event=event, notification_id=nid, key=key))
        if ins.tracking is not None:
            t = ins.tracking
            tracked[t.application_name] = t.notification_id
            version += 1
            plan.records.append(tracking_record(t, ins.event_ids[-1]))
            plan.rows.append(Row(version, tracking=t))
        plan.inserts.append(ins)
        plan.notification_ids.append(nids)
    return plan, refused


def _conflict(
    index: LogIndex,
    ins: Insert,
    claimed: set[tuple[str, int]],
    tracked: dict[str, int],
    log: str,
) -> IntegrityConflictError | None:
    seen: set[tuple[str, int]] = set()
    for event in ins.events:
        key = (key_of(event.originator_id), event.originator_version)
        why = None
        if key in seen:
            why = "appears twice in this insert"
        elif index.has(*key):
            why = "is already recorded"
        elif key in claimed:
            why = "was just recorded by another insert"
        if why is not None:
            return EventExistsError(log, event.originator_id, event.originator_version, why)
        seen.add(key)
    t = ins.tracking
    if t is not None:
        recorded = (index.max_tracking_id(t.application_name), tracked.get(t.application_name))
        last = max((n for n in recorded if n is not None), default=None)
        if last is not None and t.notification_id <= last:
            return StaleTrackingError(log, t.application_name, t.notification_id, last)
    return None


__all__ = ["Insert", "Plan", "admit"]
