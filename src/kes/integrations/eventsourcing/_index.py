"""What a process knows of one log, built by reading it in order: each originator's
versions and where they are, the notification order, and each upstream position.

Pure state, no I/O; the log (``_log.py``) feeds it rows in version order and holds the
lock. Memory: ~16 bytes per event plus ~150 per originator, and 12 per notification.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from kes.integrations.eventsourcing._wire import Row, key_of


class LogIndex:
    """``numbered``: the log is an application's, whose stored events are notifications."""

    def __init__(self, numbered: bool) -> None:
        self.numbered = numbered
        self.head = 0  # the log's version this index covers up to
        # originator key -> [ov0, v0, ov1, v1, ...]: originator versions in ascending
        # order, each followed by the log version that holds it
        self._originators: dict[str, array[int]] = {}
        # notification id n -> log version at [n - 1], and its topic's code
        self._notifications = array("q")
        self._topic_codes = array("l")
        self._topics: list[str] = []
        self._topic_code: dict[str, int] = {}
        self._tracking: dict[str, int] = {}

    # ---- feeding -----------------------------------------------------------------------

    def apply(self, row: Row) -> None:
        """Take the next row of the log (its version must be ``head + 1``)."""
        if row.version != self.head + 1:
            raise ValueError(f"row {row.version} does not follow {self.head}")
        self.head = row.version
        if row.tracking is not None:
            t = row.tracking
            if t.notification_id > self._tracking.get(t.application_name, 0):
                self._tracking[t.application_name] = t.notification_id
        event = row.event
        if event is None:
            return
        key = row.key or key_of(event.originator_id)
        self._add_version(key, event.originator_version, row.version)
        if self.numbered:
            self._notifications.append(row.version)
            code = self._topic_code.get(event.topic)
            if code is None:
                code = self._topic_code[event.topic] = len(self._topics)
                self._topics.append(event.topic)
            self._topic_codes.append(code)

    def _add_version(self, key: str, originator_version: int, version: int) -> None:
        pairs = self._originators.get(key)
        if pairs is None:
            self._originators[key] = array("q", (originator_version, version))
            return
        if originator_version > pairs[-2]:
            pairs.extend((originator_version, version))
            return
        # An older version recorded after a newer one (e.g. a snapshot of the past).
        i = bisect_left(pairs[0::2], originator_version)
        pairs[2 * i : 2 * i] = array("q", (originator_version, version))

    # ---- questions ---------------------------------------------------------------------

    def has(self, key: str, originator_version: int) -> bool:
        pairs = self._originators.get(key)
        if pairs is None:
            return False
        if originator_version > pairs[-2]:
            return False
        ovs = pairs[0::2]
        i = bisect_left(ovs, originator_version)
        return i < len(ovs) and ovs[i] == originator_version

    def versions(
        self,
        key: str,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[int]:
        """The log versions of an originator's events with ``gt < ov <= lte``, in the
        order asked, at most ``limit``."""
        pairs = self._originators.get(key)
        if pairs is None:
            return []
        ovs = pairs[0::2]
        lo = 0 if gt is None else bisect_right(ovs, gt)
        hi = len(ovs) if lte is None else bisect_right(ovs, lte)
        indexes: Sequence[int] = range(hi - 1, lo - 1, -1) if desc else range(lo, hi)
        if limit is not None:
            indexes = indexes[: max(0, limit)]
        return [pairs[2 * i + 1] for i in indexes]

    @property
    def max_notification_id(self) -> int:
        return len(self._notifications)

    def notifications(
        self, first: int, last: int, topics: Sequence[str], limit: int
    ) -> list[tuple[int, int]]:
        """(notification id, log version) of up to ``limit`` notifications with
        ``first <= id <= last`` whose topic is in ``topics`` (any topic when empty)."""
        first = max(first, 1)
        last = min(last, len(self._notifications))
        out: list[tuple[int, int]] = []
        if limit <= 0 or first > last:
            return out
        if not topics:
            stop = min(last, first + limit - 1)
            return [(n, self._notifications[n - 1]) for n in range(first, stop + 1)]
        wanted = {self._topic_code[t] for t in topics if t in self._topic_code}
        if not wanted:
            return out
        codes = self._topic_codes
        for n in range(first, last + 1):
            if codes[n - 1] in wanted:
                out.append((n, self._notifications[n - 1]))
                if len(out) == limit:
                    break
        return out

    def max_tracking_id(self, application_name: str) -> int | None:
        return self._tracking.get(application_name)


__all__ = ["LogIndex"]
