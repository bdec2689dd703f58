"""Admission: which pending appends of one partition go into the next transaction.

Pure decisions, no I/O: given the appends waiting for a partition, what its index says
each stream's version is, and the partition's recent event ids, decide for each append:

* **accept** it: its records (envelope encoded once, headers, size checked) go into the
  transaction, at versions counted on from what earlier accepted appends of the same
  batch will have made them (*tentative* versions);
* **answer** it now: a repeat of events already stored (``written=False``), a
  ``ConcurrencyError``, or an input error (too large, not serialisable);
* **requeue** it after this transaction: it repeats an event id of an append accepted
  in this batch, so only after that one commits can it be recognised as a repeat; or it
  conflicts only with an append accepted in this batch, so it is refused only once that
  one has committed (a refusal must hold whatever becomes of the transaction);
* **check the log**: a conflict that may be a retry of events stored beyond the recent-id
  window; only reading those events' ids can tell (see :func:`stored_ids_match`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from kes import metrics
from kes.envelope import NewEvent, Position, template
from kes.errors import (
    ConcurrencyError,
    EventTooLargeError,
    FencedError,
    InvalidInputError,
    KesError,
    NotOwnerError,
    StoreUnavailableError,
)
from kes.store.base import AppendResult, Expected, ExpectedVersion, expected_matches
from kes.store.kafka._index import RecentIds

__all__ = ["AppendRequest", "Record", "Verdicts", "admit", "stored_ids_match"]

# Room for the record framing Kafka adds around key, value and headers.
RECORD_OVERHEAD = 512


class Record(msgspec.Struct, frozen=True):
    """One event ready to produce."""

    aggregate_id: str
    version: int
    event_id: str
    value: bytes
    headers: list[tuple[str, bytes]]


Done = Callable[["AppendRequest"], None]


class AppendRequest:
    """One append waiting for its writer: its outcome is set exactly once.

    A thread waits with :meth:`wait`; other callers (forwarding, asyncio) pass ``on_done``,
    called from the writer's thread once the outcome is set.
    """

    __slots__ = (
        "_lock",
        "_waiting",
        "aggregate_id",
        "aggregate_type",
        "attempts",
        "deadline",
        "error",
        "events",
        "expected",
        "maybe_written",
        "on_done",
        "result",
        "source",
        "templates",
    )

    def __init__(
        self,
        aggregate_type: str,
        aggregate_id: str,
        events: Sequence[NewEvent],
        expected: Expected,
        deadline: float,
        on_done: Done | None = None,
        source: int | None = None,
    ) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.events = events
        # Encoded here, in the caller's thread: the writer only splices in the version.
        # Raises SerializationError before anything is queued.
        self.templates = [template(aggregate_type, aggregate_id, e) for e in events]
        self.expected = expected
        self.deadline = deadline  # time.time() after which the caller has given up
        self.on_done = on_done
        self.source = source  # offset in the request topic, when forwarded
        self.attempts = 0
        self.maybe_written = False  # an earlier attempt's commit had an unknown outcome
        self.result: AppendResult | None = None
        self.error: KesError | None = None
        self._lock = threading.Lock()
        self._waiting = threading.Lock()
        self._waiting.acquire()

    def renewed(self, on_done: Done | None = None) -> AppendRequest:
        """A fresh request for the same append (same encoded events, deadline and source),
        for a new attempt after this one's outcome was "try elsewhere"."""
        again = object.__new__(AppendRequest)
        again.aggregate_type, again.aggregate_id = self.aggregate_type, self.aggregate_id
        again.events, again.templates = self.events, self.templates
        again.expected, again.deadline, again.source = self.expected, self.deadline, self.source
        again.on_done = on_done
        again.attempts, again.maybe_written = self.attempts, self.maybe_written
        again.result, again.error = None, None
        again._lock = threading.Lock()
        again._waiting = threading.Lock()
        again._waiting.acquire()
        return again

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def resolve(self, result: AppendResult) -> None:
        self._finish(result, None)

    def fail(self, error: KesError) -> None:
        self._finish(None, error)

    def _finish(self, result: AppendResult | None, error: KesError | None) -> None:
        with self._lock:
            if self.done:
                return
            self.result, self.error = result, error
        self._waiting.release()
        if metrics.enabled():
            metrics.append_finished(self.aggregate_type, _outcome(result, error))
        if self.on_done is not None:
            self.on_done(self)

    def wait(self, timeout: float) -> AppendResult:
        """The result, or the error raised; StoreUnavailableError (outcome unknown) when
        nothing came within ``timeout``."""
        if not self._waiting.acquire(timeout=max(0.0, timeout)):
            raise StoreUnavailableError(
                f"the append to {self.aggregate_type} {self.aggregate_id!r} did not finish "
                f"within {timeout:.0f}s (is Kafka healthy?); its outcome is unknown. Retrying "
                "with the same event ids is safe.",
                "unknown",
            )
        self._waiting.release()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass
class Verdicts:
    """Admission's decision for one batch of one partition."""

    accepted: list[tuple[AppendRequest, list[Record]]] = field(default_factory=list)
    answered: list[tuple[AppendRequest, AppendResult | KesError]] = field(default_factory=list)
    requeue: list[AppendRequest] = field(default_factory=list)
    check_log: list[tuple[AppendRequest, int]] = field(default_factory=list)  # (req, actual)

    @property
    def records(self) -> int:
        return sum(len(records) for _, records in self.accepted)


def admit(
    requests: Iterable[AppendRequest],
    *,
    topic: str,
    partition: int,
    version: Callable[[str], int],
    recent: RecentIds,
    max_message_bytes: int,
    now: float | None = None,
) -> Verdicts:
    """Decide every request of one partition, in arrival order (see the module docstring)."""
    now = time.time() if now is None else now
    out = Verdicts()
    tentative: dict[str, int] = {}
    batch_ids: set[str] = set()
    for req in requests:
        if now > req.deadline:
            out.answered.append(
                (
                    req,
                    StoreUnavailableError(
                        f"the append to {req.aggregate_type} {req.aggregate_id!r} waited past "
                        "its deadline before it could be written; nothing was written.",
                        "not_written",
                    ),
                )
            )
            continue
        aid = req.aggregate_id
        if any(e.event_id in batch_ids for e in req.events):
            out.requeue.append(req)
            continue
        stored = already_stored(req, recent, topic, partition)
        if stored is not None:
            out.answered.append((req, stored))
            continue
        committed = version(aid)
        actual = tentative.get(aid, committed)
        if not expected_matches(req.expected, actual):
            if may_be_stored(req.expected, len(req.events), committed):
                # Only committed versions can hold a retry's events.
                out.check_log.append((req, actual))
            elif aid in tentative:
                # Refused only if an append accepted in this batch commits: decide after
                # it. (Refusing now would be wrong if that transaction aborts, and a
                # forwarded request refused so may be carried out by a later owner.)
                out.requeue.append(req)
            else:
                out.answered.append(
                    (req, ConcurrencyError.of(req.aggregate_type, aid, req.expected, actual))
                )
            continue
        try:
            records = encode_records(req, actual, topic, max_message_bytes)
        except KesError as exc:
            out.answered.append((req, exc))
            continue
        out.accepted.append((req, records))
        batch_ids.update(e.event_id for e in req.events)
        tentative[aid] = actual + len(req.events)
    return out


def encode_records(
    req: AppendRequest, actual: int, topic: str, max_message_bytes: int
) -> list[Record]:
    """The request's events as records at versions ``actual+1..``; refuses oversize ones."""
    out = []
    aid = req.aggregate_id
    key_size = len(aid) + RECORD_OVERHEAD
    for i, t in enumerate(req.templates):
        size = t.size + key_size
        if size > max_message_bytes:
            raise EventTooLargeError(
                f"event {req.events[i].event_type!r} for {req.aggregate_type} {aid!r} is "
                f"{size} bytes encoded; topic {topic} accepts at most {max_message_bytes} "
                "(max.message.bytes). Nothing was written; store large blobs elsewhere and "
                "put a reference in the event."
            )
        version = actual + i + 1
        out.append(Record(aid, version, t.event_id, t.value(version), t.headers))
    return out


def already_stored(
    req: AppendRequest, recent: RecentIds, topic: str, partition: int
) -> AppendResult | None:
    """The earlier result if every event of ``req`` was recently stored, in order."""
    first = recent.get(req.events[0].event_id)
    if first is None:
        return None
    positions = []
    for i, event in enumerate(req.events):
        known = recent.get(event.event_id)
        if known is None or known[0] != req.aggregate_id or known[1] != first[1] + i:
            return None
        positions.append(Position(topic, partition, known[2]))
    return AppendResult(first[1] + len(req.events) - 1, positions, written=req.maybe_written)


def may_be_stored(expected: Expected, events: int, actual: int) -> bool:
    """Could a refused append be a retry of events stored at ``expected+1..`` already?"""
    if expected is ExpectedVersion.ANY:
        return False
    start = 0 if expected is ExpectedVersion.NO_STREAM else int(expected)
    return start + events <= actual


def stored_ids_match(req: AppendRequest, stored_ids: list[str]) -> bool:
    """Whether the ids stored at versions ``expected+1..expected+n`` are the request's."""
    return stored_ids == [e.event_id for e in req.events]


def _outcome(result: AppendResult | None, error: KesError | None) -> str:
    """How an append ended, as the ``kes_appends_total`` metric labels it."""
    if result is not None:
        return "written" if result.written else "duplicate"
    if isinstance(error, ConcurrencyError):
        return "conflict"
    if isinstance(error, NotOwnerError | FencedError):
        return "moved"
    return "failed"


def check_event_times(
    aggregate_type: str, aggregate_id: str, events: Sequence[NewEvent], ahead_s: float
) -> None:
    """Refuse events stamped more than ``ahead_s`` ahead of this machine's clock (see
    ``KafkaConfig.max_event_time_ahead_s``); nothing is written."""
    limit = datetime.now(UTC) + timedelta(seconds=ahead_s)
    for e in events:
        if e.timestamp is not None and e.timestamp.tzinfo is not None and e.timestamp > limit:
            ahead = (e.timestamp - datetime.now(UTC)).total_seconds()
            raise InvalidInputError(
                f"event {e.event_type!r} of {aggregate_type} {aggregate_id!r} is stamped "
                f"{e.timestamp.isoformat()}, {ahead / 3600:.1f} h ahead of this machine's "
                f"clock; kes refuses event times more than {ahead_s:.0f} s ahead (Kafka "
                "refuses record timestamps more than log.message.timestamp.after.max.ms "
                "ahead, and pipelines stamp records with event time). Fix the clock that "
                "stamped it (the Application's clock, or the host's); nothing was written."
            )
