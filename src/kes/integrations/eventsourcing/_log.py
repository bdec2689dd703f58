"""A log: one kes stream holding every record of one recorder, in one total order.

Writes go through one committer thread per log and process: it gathers the inserts
waiting (group commit), admits them against the index at the log's head
(``_admission.py``), and appends them as ONE kes append with ``expected_version = head``.
kes makes that append atomic and linearizable (one fenced writer per partition); if the
log moved, kes refuses it whole and the committer reads what moved, admits again and
retries. So an insert is recorded entirely or not at all, whatever originators it spans,
and every refusal names the record it collides with.

Reads first catch the index up with the log's current version (asked of the partition's
owner), so a read sees every insert that returned before it began, in any process.
Recent rows stay in a byte-bounded cache; older ones are fetched from Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence

from eventsourcing.persistence import Notification, StoredEvent, Tracking

from kes.errors import ConcurrencyError, InvalidInputError, KesError, TransientError
from kes.integrations.eventsourcing._admission import Insert, Plan, admit
from kes.integrations.eventsourcing._index import LogIndex
from kes.integrations.eventsourcing._wire import Row, check_stored_event, decode_row, key_of
from kes.integrations.eventsourcing.errors import (
    RecorderUnavailableError,
    translate,
    unavailable,
)
from kes.store.base import AppendResult, EventStore

log = logging.getLogger("kes.eventsourcing")

READ_CHUNK = 5_000  # versions per read while catching up
BULK_FROM = 2_000  # a first catch-up at least this long reads the partition sequentially
MAX_BATCH_RECORDS = 5_000  # records per append (one insert larger than this goes alone)
MERGE_GAP = 64  # fetch two wanted versions in one read when fewer apart than this
RETRY_PAUSE_S = 0.05


class RowCache:
    """The most recently used rows of a log, up to ``max_bytes`` of state."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._rows: OrderedDict[int, Row] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, version: int) -> Row | None:
        with self._lock:
            row = self._rows.get(version)
            if row is not None:
                self._rows.move_to_end(version)
            return row

    def put(self, rows: Iterable[Row]) -> None:
        with self._lock:
            for row in rows:
                if row.event is None or row.version in self._rows:
                    continue
                self._rows[row.version] = row
                self._bytes += row.size
            while self._bytes > self.max_bytes and self._rows:
                _, old = self._rows.popitem(last=False)
                self._bytes -= old.size


class SequenceLog:
    """The log of one recorder in one process: ``aggregate_type``/``stream`` in ``store``.

    ``numbered``: an application's log, whose stored events are notifications numbered
    1, 2, 3, ... in log order.
    """

    def __init__(
        self,
        store: EventStore,
        aggregate_type: str,
        stream: str,
        *,
        numbered: bool,
        cache_bytes: int,
        timeout_s: float,
    ) -> None:
        self.store = store
        self.aggregate_type = aggregate_type
        self.stream = stream
        self.name = f"log {aggregate_type}/{stream}"
        self.timeout_s = timeout_s
        self.stats = {"appends": 0, "retries": 0, "inserts": 0}
        self._index = LogIndex(numbered)
        self._sync = threading.Lock()  # guards the index
        self._reading = threading.Lock()  # one catch-up at a time
        self._cache = RowCache(cache_bytes)
        self._queue: deque[Insert] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._listeners: set[threading.Event] = set()

    # ---- writing ---------------------------------------------------------------------

    def insert(self, events: Sequence[StoredEvent], tracking: Tracking | None) -> list[int]:
        """Record ``events`` (and ``tracking``) atomically; their notification ids."""
        events = [check_stored_event(e) for e in events]
        if not events and tracking is None:
            return []
        ins = Insert(events, tracking, time.monotonic() + self.timeout_s)
        with self._cv:
            if self._closed:
                raise RecorderUnavailableError(f"{self.name} is closed.", "not_written")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"kes-es-{self.aggregate_type}", daemon=True
                )
                self._thread.start()
            self._queue.append(ins)
            self._cv.notify()
        if not ins.wait(self.timeout_s + 30):  # the committer answers every insert; a bound
            raise RecorderUnavailableError(
                f"{self.name}: no answer within {self.timeout_s + 30:.0f}s; the insert may "
                "or may not be recorded. Reload before retrying.",
                "unknown",
            )
        if ins.error is not None:
            raise ins.error
        return ins.notification_ids

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if self._closed:
                    pending = list(self._queue)
                    self._queue.clear()
                    for ins in pending:
                        ins.fail(RecorderUnavailableError(f"{self.name} closed.", "not_written"))
                    return
                batch = [self._queue.popleft()]
                size = batch[0].size
                while self._queue and size + self._queue[0].size <= MAX_BATCH_RECORDS:
                    size += self._queue[0].size
                    batch.append(self._queue.popleft())
            try:
                self._commit(batch)
            except KesError as exc:
                error = translate(self.name, exc)
                for ins in batch:
                    ins.fail(error)
            except Exception as exc:  # never leave a caller waiting
                log.exception("%s: commit failed", self.name)
                error = RecorderUnavailableError(f"{self.name}: {exc!r}", "unknown")
                for ins in batch:
                    ins.fail(error)

    def _commit(self, batch: list[Insert]) -> None:
        # Admission against what this process already knows is safe even if the log has
        # moved on: it refuses only what the log does hold, and the append's
        # compare-and-set fails if anything is missing. Catch up only then (saving the
        # question to the partition's owner on the common path).
        pending = batch
        behind = False
        while pending:
            if behind:
                self.catch_up()
            with self._sync:
                plan, refused = admit(self._index, pending, self.name)
            for ins, error in refused:
                ins.fail(error)
            if not plan.inserts:
                return
            try:
                result = self._append(plan)
            except InvalidInputError:
                if len(plan.inserts) == 1:
                    raise
                # One insert cannot be written (too large, say): the others need not fail
                # with it. Record each alone, so that only the culprit is refused.
                for ins in plan.inserts:
                    try:
                        self._commit([ins])
                    except KesError as exc:
                        ins.fail(translate(self.name, exc))
                return
            except ConcurrencyError:
                # Another process appended first: read what it wrote, then decide again.
                behind = True
                self.stats["retries"] += 1
                now = time.monotonic()
                pending = []
                for ins in plan.inserts:
                    if now < ins.deadline:
                        pending.append(ins)
                    else:
                        ins.fail(
                            RecorderUnavailableError(
                                f"{self.name}: other writers kept the log moving for "
                                f"{self.timeout_s:.0f}s; nothing of this insert was recorded. "
                                "Retry.",
                                "not_written",
                            )
                        )
                continue
            self._written(plan, result)
            return

    def _append(self, plan: Plan) -> AppendResult:
        """One append of ``plan``; transient failures are retried with the same records
        (so a retry of an append that did land is recognised by kes and not repeated)."""
        deadline = min(ins.deadline for ins in plan.inserts)
        maybe_written = False
        while True:
            try:
                result = self.store.append(
                    self.aggregate_type, self.stream, plan.records, plan.expected
                )
                self.stats["appends"] += 1
                return result
            except TransientError as exc:
                maybe_written = maybe_written or exc.outcome == "unknown"
                if time.monotonic() >= deadline:
                    raise unavailable(
                        self.name, exc, "unknown" if maybe_written else "not_written"
                    ) from exc
                log.info("%s: append failed (%s); retrying", self.name, exc)
                time.sleep(RETRY_PAUSE_S)

    def _written(self, plan: Plan, result: AppendResult) -> None:
        first = result.version - len(plan.records) + 1
        if first == plan.expected + 1:
            self._apply(plan.rows)
        else:  # cannot happen with kes's contract; the log is the truth: read it
            log.warning("%s: append landed at %d, not %d", self.name, first, plan.expected + 1)
            self.catch_up()
        self.stats["inserts"] += len(plan.inserts)
        for ins, nids in zip(plan.inserts, plan.notification_ids, strict=True):
            ins.resolve(nids)

    def _apply(self, rows: Sequence[Row]) -> None:
        """Feed rows to the index, skipping those it has; stops at a gap (a later
        catch-up fills it)."""
        added = False
        with self._sync:
            for row in rows:
                if row.version <= self._index.head:
                    continue
                if row.version != self._index.head + 1:
                    break
                self._index.apply(row)
                added = added or row.event is not None
        self._cache.put(rows)
        if added:
            with self._sync:
                listeners = list(self._listeners)
            for listener in listeners:
                listener.set()

    # ---- reading ---------------------------------------------------------------------

    def catch_up(self) -> None:
        """Bring the index up to the log's current version."""
        with self._reading:
            try:
                end = self.store.stream_version(self.aggregate_type, self.stream)
                with self._sync:
                    start = self._index.head + 1
                if start == 1 and end >= BULK_FROM:
                    start = self._load(end)
                while start <= end:
                    recorded = self.store.read_stream(
                        self.aggregate_type, self.stream, start, min(end, start + READ_CHUNK - 1)
                    )
                    if not recorded:
                        break
                    self._apply([decode_row(r) for r in recorded])
                    start = recorded[-1].version + 1
            except KesError as exc:
                raise translate(self.name, exc) from exc

    def _load(self, end: int) -> int:
        """A first catch-up of a long log: its partition read in order (a plain sequential
        read, faster than fetching by offsets); the next version still to read."""
        batch: list[Row] = []
        expected = 1
        for recorded in self.store.read_all(self.aggregate_type):
            if recorded.aggregate_id != self.stream or recorded.version != expected:
                continue  # another stream's record (the topic holds only this one normally)
            batch.append(decode_row(recorded))
            expected += 1
            if len(batch) == READ_CHUNK:
                self._apply(batch)
                batch = []
            if recorded.version >= end:
                break
        self._apply(batch)
        return expected

    def rows(self, versions: Sequence[int]) -> list[Row]:
        """The rows at ``versions`` (in that order), from the cache or Kafka."""
        found: dict[int, Row] = {}
        missing: list[int] = []
        for v in versions:
            row = self._cache.get(v)
            if row is None:
                missing.append(v)
            else:
                found[v] = row
        for lo, hi in _runs(sorted(missing)):
            try:
                recorded = self.store.read_stream(self.aggregate_type, self.stream, lo, hi)
            except KesError as exc:
                raise translate(self.name, exc) from exc
            rows = [decode_row(r) for r in recorded]
            self._cache.put(rows)
            found.update((row.version, row) for row in rows)
        return [found[v] for v in versions if v in found]

    def select_events(
        self,
        originator_id: object,
        gt: int | None,
        lte: int | None,
        desc: bool,
        limit: int | None,
    ) -> list[StoredEvent]:
        key = key_of(originator_id)
        self.catch_up()
        with self._sync:
            versions = self._index.versions(key, gt, lte, desc, limit)
        return [row.event for row in self.rows(versions) if row.event is not None]

    def select_notifications(
        self, first: int, last: int, topics: Sequence[str], limit: int
    ) -> list[Notification]:
        self.catch_up()
        with self._sync:
            wanted = self._index.notifications(first, last, topics, limit)
        rows = {row.version: row for row in self.rows([v for _, v in wanted])}
        out = []
        for nid, version in wanted:
            event = rows[version].event
            assert event is not None
            out.append(
                Notification(
                    id=nid,
                    originator_id=event.originator_id,
                    originator_version=event.originator_version,
                    topic=event.topic,
                    state=event.state,
                )
            )
        return out

    def max_notification_id(self) -> int | None:
        self.catch_up()
        with self._sync:
            return self._index.max_notification_id or None

    def max_tracking_id(self, application_name: str) -> int | None:
        self.catch_up()
        with self._sync:
            return self._index.max_tracking_id(application_name)

    # ---- listening and closing -------------------------------------------------------

    def listen(self, listener: threading.Event) -> None:
        with self._sync:
            self._listeners.add(listener)

    def unlisten(self, listener: threading.Event) -> None:
        with self._sync:
            self._listeners.discard(listener)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=self.timeout_s + 10)


def _runs(versions: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted versions as (first, last) ranges, joining neighbours closer than MERGE_GAP."""
    out: list[tuple[int, int]] = []
    for v in versions:
        if out and v - out[-1][1] < MERGE_GAP:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


__all__ = ["RowCache", "SequenceLog"]
