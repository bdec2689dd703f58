"""The library's four recorders, each on one log (see ``_log.py``).

* :class:`KafkaAggregateRecorder`: stored events by originator (snapshots use one);
* :class:`KafkaApplicationRecorder`: plus the application's notifications, numbered
  1, 2, 3, ... without gaps in the order of the log;
* :class:`KafkaTrackingRecorder`: positions in upstream applications' logs;
* :class:`KafkaProcessRecorder`: both, an insert's events and its tracking in one append.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ListenNotifySubscription,
    Notification,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)

from kes.errors import KesError
from kes.integrations.eventsourcing._log import SequenceLog

log = logging.getLogger("kes.eventsourcing")

POLL_S = 0.1  # how often a subscription asks whether another process appended


class _OnLog:
    def __init__(self, log: SequenceLog) -> None:
        self.log = log


class KafkaAggregateRecorder(_OnLog, AggregateRecorder):
    """Stored events by originator id and version, in a kes log."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self.log.insert(stored_events, None)
        return None

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        return self.log.select_events(originator_id, gt, lte, desc, limit)


class KafkaApplicationRecorder(KafkaAggregateRecorder, ApplicationRecorder):
    """Stored events, and the application's notification log (ids 1, 2, 3, ...)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self.log.insert(stored_events, None)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        first = 1 if start is None else start if inclusive_of_start else start + 1
        last = stop if stop is not None else 2**63 - 1
        return self.log.select_notifications(first, last, topics, limit)

    def max_notification_id(self) -> int | None:
        return self.log.max_notification_id()

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return KafkaSubscription(self, gt=gt, topics=topics)


class KafkaSubscription(ListenNotifySubscription[KafkaApplicationRecorder]):
    """Notifications after ``gt``, then new ones as any process records them: woken at
    once by this process's inserts, and within ``POLL_S`` by other processes'."""

    def __init__(
        self, recorder: KafkaApplicationRecorder, gt: int | None = None, topics: Sequence[str] = ()
    ) -> None:
        self._stopped = threading.Event()
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        recorder.log.listen(self._has_been_notified)
        self._has_been_notified.set()  # pull once more: an insert may precede listen()
        self._poller = threading.Thread(target=self._poll, name="kes-es-subscription", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stopped.wait(POLL_S):
            try:
                self._recorder.log.catch_up()  # wakes the listeners when something came
            except KesError as exc:
                log.warning("subscription to %s: %s; retrying", self._recorder.log.name, exc)

    def stop(self) -> None:
        self._stopped.set()
        self._recorder.log.unlisten(self._has_been_notified)
        super().stop()


class KafkaTrackingRecorder(_OnLog, TrackingRecorder):
    """The last notification id processed of each upstream application."""

    def insert_tracking(self, tracking: Tracking) -> None:
        self.log.insert([], tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.log.max_tracking_id(application_name)


class KafkaProcessRecorder(KafkaTrackingRecorder, KafkaApplicationRecorder, ProcessRecorder):
    """A process application's log: its events and, in the same append, the upstream
    position they were made from (so each upstream notification is processed once)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking = kwargs.get("tracking")
        return self.log.insert(stored_events, tracking if isinstance(tracking, Tracking) else None)


__all__ = [
    "KafkaAggregateRecorder",
    "KafkaApplicationRecorder",
    "KafkaProcessRecorder",
    "KafkaSubscription",
    "KafkaTrackingRecorder",
]
