"""The single writer of a process: one transactional producer and one commit loop that
carries, in each transaction, every pending append of every partition the process owns.

A transaction goes: produce the accepted records; flush (every record acknowledged, so
below the high watermark a new owner will read to); add the request-topic offsets of
each writer group involved with that group's metadata (KIP-447: refused if the group
moved on, which makes a process that lost its partitions unable to commit); commit.
While one transaction commits, the next batch gathers in the queue; nothing waits for
company that may not come. docs/design.md gives the safety argument step by step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, TopicPartition

from kes import metrics
from kes.envelope import Position, decode
from kes.errors import (
    ConcurrencyError,
    FencedError,
    KesError,
    NotOwnerError,
    StoreUnavailableError,
)
from kes.kafka.config import KafkaConfig
from kes.kafka.errors import Failure, classify, error_of, is_denied, kafka_error
from kes.kafka.produce import GroupMember, TransactionalProducer
from kes.kafka.refusals import need
from kes.store.base import AppendResult
from kes.store.kafka._admission import AppendRequest, Record, Verdicts, admit, stored_ids_match
from kes.store.kafka._partition import OwnedPartition, State
from kes.store.kafka._reader import OffsetReader, try_decode

log = logging.getLogger("kes.writer")

Pending = tuple[OwnedPartition, AppendRequest]


class Group(Protocol):
    """What the writer needs of a writer-group membership."""

    aggregate_type: str
    request_topic: str

    def group_metadata(self) -> Any: ...


class _DeliveryFailed(Exception):
    def __init__(self, error: KafkaError) -> None:
        super().__init__(error.str())
        self.error = error


class Stats:
    """What the writer did (read by benchmarks and tests)."""

    def __init__(self) -> None:
        self.transactions = 0  # committed
        self.partitions_written = 0  # over committed transactions: each wrote a marker there
        self.events = 0
        self.aborted = 0
        self.recoveries = 0


class Writer:
    """Serialises this process's appends into transactions (see the module docstring)."""

    def __init__(self, config: KafkaConfig, reader: OffsetReader) -> None:
        self.config = config
        self.reader = reader
        self.stats = Stats()
        self._queue: list[Pending] = []
        self._cv = threading.Condition()
        self._groups: dict[str, Group] = {}
        self._producer: TransactionalProducer | None = None
        self._producer_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="kes-writer", daemon=True)
        self._thread.start()

    # ---- used by memberships and the store ------------------------------------------------

    def register(self, group: Group) -> None:
        self._groups[group.aggregate_type] = group

    def ensure_producer(self) -> TransactionalProducer:
        """The transactional producer, made (``init_transactions``) on first need. Making it
        settles whatever an earlier producer with the same id left open."""
        with self._producer_lock:
            if self._producer is None:
                self._producer = TransactionalProducer(
                    self.config, self.config.writer_transactional_id()
                )
            return self._producer

    def submit(self, owned: OwnedPartition, request: AppendRequest) -> None:
        """Queue an append for ``owned``; its outcome is set on ``request``."""
        with self._cv:
            if self._closed:
                raise StoreUnavailableError("this store is closed.", "not_written")
            self._queue.append((owned, request))
            if len(self._queue) == 1:
                self._cv.notify()

    def submit_many(self, pending: Sequence[Pending]) -> None:
        """Queue several appends at once (one wake-up of the commit loop)."""
        with self._cv:
            if self._closed:
                raise StoreUnavailableError("this store is closed.", "not_written")
            was_empty = not self._queue
            self._queue.extend(pending)
            if was_empty:
                self._cv.notify()

    def withdraw(self, request: AppendRequest) -> bool:
        """Take ``request`` back if the commit loop has not taken it yet (True: it will
        never be written). False: it is in a transaction's hands; its outcome will come."""
        with self._cv:
            for i, (_, queued) in enumerate(self._queue):
                if queued is request:
                    del self._queue[i]
                    return True
        return False

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=self.config.request_timeout_s + 10)
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close()
                self._producer = None

    # ---- the commit loop ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait(1.0)
                if not self._queue and self._closed:
                    return
                batch = self._take()
            try:
                self._process(batch)
            except Exception as exc:  # never leave a caller waiting forever
                log.exception("writer: batch failed")
                error = (
                    exc
                    if isinstance(exc, KesError)
                    else StoreUnavailableError(f"append failed: {exc!r}", "unknown")
                )
                for _, req in batch:
                    req.fail(error)

    def _take(self) -> list[Pending]:
        """Up to the batch limits, in arrival order (the caller holds ``_cv``)."""
        events = 0
        take = 0
        limit = self.config.max_batch_events
        for _, req in self._queue:
            if take and events >= limit:
                break
            events += len(req.events)
            take += 1
        batch, self._queue = self._queue[:take], self._queue[take:]
        return batch

    def _requeue(self, pending: Sequence[Pending]) -> None:
        if pending:
            with self._cv:
                self._queue[:0] = pending

    def _process(self, batch: list[Pending]) -> None:
        by_partition: dict[OwnedPartition, list[AppendRequest]] = {}
        for owned, req in batch:
            by_partition.setdefault(owned, []).append(req)
        metadata: dict[str, Any] = {}
        verdicts: list[tuple[OwnedPartition, Verdicts]] = []
        requeue: list[Pending] = []
        for owned, reqs in by_partition.items():
            if owned.state is State.STALE:
                self._settle(owned)
            if not owned.ready:
                for req in reqs:
                    req.fail(_not_serving(owned, req))
                continue
            group = owned.aggregate_type
            if group not in metadata:
                metadata[group] = self._groups[group].group_metadata()
            if GroupMember.of(metadata[group]).member_id != owned.member_id:
                # The group no longer knows this process as the member the partition was
                # assigned to (removed, or rejoined as another): the partition is lost.
                for req in reqs:
                    req.fail(_not_serving(owned, req, lost=True))
                continue
            v = admit(
                reqs,
                topic=owned.topic,
                partition=owned.partition,
                version=owned.index.version,
                recent=owned.recent,
                max_message_bytes=owned.max_message_bytes,
            )
            for req, outcome in v.answered:
                if isinstance(outcome, AppendResult):
                    req.resolve(outcome)
                else:
                    req.fail(outcome)
            requeue.extend((owned, req) for req in v.requeue)
            if v.accepted or v.check_log:
                verdicts.append((owned, v))
        accepted = [(owned, v) for owned, v in verdicts if v.accepted]
        if accepted:
            self._commit(accepted, metadata)
        for owned, v in verdicts:
            for req, actual in v.check_log:
                self._check_log(owned, req, actual)
        self._requeue(requeue)

    def _commit(
        self, accepted: list[tuple[OwnedPartition, Verdicts]], metadata: dict[str, Any]
    ) -> None:
        started = time.monotonic()
        try:
            offsets = self._transaction(accepted, metadata)
        except Exception as exc:
            self._failed(accepted, exc)
            return
        self.stats.transactions += 1
        self.stats.partitions_written += len(accepted)
        if metrics.enabled():
            events: dict[str, int] = {}
            for owned, v in accepted:
                events[owned.aggregate_type] = events.get(owned.aggregate_type, 0) + v.records
            metrics.transaction_committed(time.monotonic() - started, events)
        for owned, v in accepted:
            found = offsets[owned]
            entries: list[tuple[str, int, int]] = []
            results: list[tuple[AppendRequest, AppendResult]] = []
            i = 0
            for req, records in v.accepted:
                positions = []
                for record in records:
                    offset = found[i]
                    i += 1
                    entries.append((record.aggregate_id, record.version, offset))
                    owned.recent.add(record.event_id, record.aggregate_id, record.version, offset)
                    positions.append(Position(owned.topic, owned.partition, offset))
                results.append((req, AppendResult(records[-1].version, positions)))
            owned.index.record_many(entries)
            self.stats.events += len(entries)
            metrics.index_size(owned.topic, owned.partition, len(owned.index))
            for req, result in results:
                req.resolve(result)
            if owned.index.events_since_save >= self.config.index_checkpoint_every:
                owned.save_index()

    def _transaction(
        self, accepted: list[tuple[OwnedPartition, Verdicts]], metadata: dict[str, Any]
    ) -> dict[OwnedPartition, list[int]]:
        producer = self.ensure_producer()
        marks: dict[OwnedPartition, list[int]] = {}
        errors: list[KafkaError] = []
        producer.begin()
        for owned, v in accepted:
            records: list[Record] = [r for _, recs in v.accepted for r in recs]
            seen: list[int] = []
            marks[owned] = seen

            def delivered(err: KafkaError | None, msg: Message, seen: list[int] = seen) -> None:
                if err is not None:
                    errors.append(err)
                else:
                    seen.append(msg.offset())

            last = len(records) - 1
            topic, partition = owned.topic, owned.partition
            for i, r in enumerate(records):
                # One report at each end of a partition's run: its offsets are contiguous
                # when nobody else writes the partition (checked below).
                callback = delivered if i == 0 or i == last else None
                producer.produce(topic, r.value, r.aggregate_id, partition, r.headers, callback)
        producer.flush()  # every record in the log before the offsets are sent: see design.md
        if errors:
            raise _DeliveryFailed(errors[0])
        for group_name, parts in _by_group(accepted).items():
            request_topic = self._groups[group_name].request_topic
            positions = [
                TopicPartition(request_topic, owned.partition, _request_offset(owned, v))
                for owned, v in parts
            ]
            producer.send_offsets(positions, metadata[group_name], parts[0][0].member_id)
        producer.commit()
        return {owned: self._offsets(owned, v, marks[owned]) for owned, v in accepted}

    def _offsets(self, owned: OwnedPartition, v: Verdicts, seen: list[int]) -> list[int]:
        """Every accepted record's offset, from the first and last ones' reports."""
        n = v.records
        first, last = min(seen), max(seen)
        if last - first + 1 == n:
            return list(range(first, last + 1))
        # Someone else wrote to this partition meanwhile: find ours by event id.
        msgs = self.reader.read(owned.topic, owned.partition, first, last + 1)
        by_id = {env.event_id: m.offset() for m in msgs if (env := try_decode(m)) is not None}
        return [by_id[r.event_id] for _, recs in v.accepted for r in recs]

    def _failed(self, accepted: list[tuple[OwnedPartition, Verdicts]], exc: Exception) -> None:
        """Decide what a failed transaction means and put its appends back in the queue."""
        err = exc.error if isinstance(exc, _DeliveryFailed) else kafka_error(exc)
        if is_denied(err) and self._refused(accepted, exc, err):
            return
        kind = Failure.ABORTABLE if isinstance(exc, _DeliveryFailed) else classify(exc)
        if isinstance(exc, KesError) and not isinstance(exc, _DeliveryFailed):
            kind = Failure.ABORTABLE  # not acknowledged in time: abort, nothing visible
        producer = self._producer
        self.stats.aborted += 1
        metrics.transaction_aborted()
        log.warning("writer: transaction failed (%s): %s", kind.value, exc)
        if kind in (Failure.GROUP_FENCED, Failure.ABORTABLE):
            if producer is not None and producer.abort():
                if kind is Failure.GROUP_FENCED:
                    time.sleep(0.05)  # the membership is catching up with the group
                self._retry(accepted, maybe_written=False)
                return
            kind = Failure.UNKNOWN
        # The producer is finished (fenced, or a commit of unknown outcome): a new one
        # settles what this one left open; the partitions are read again before serving.
        self.stats.recoveries += 1
        metrics.writer_recovered()
        with self._producer_lock:
            if self._producer is not None:
                self._producer.close()
            self._producer = None
        for owned, _ in accepted:
            owned.set_state(State.STALE, only_from=State.READY)
        self._retry(accepted, maybe_written=kind is not Failure.PRODUCER_FENCED)

    def _refused(
        self, accepted: list[tuple[OwnedPartition, Verdicts]], exc: Exception, err: Any
    ) -> bool:
        """Kafka refused this principal a write: abort and fail the appends with the
        refusal (retrying cannot help). False when even the abort failed."""
        producer = self._producer
        if producer is None or not producer.abort():
            return False
        self.stats.aborted += 1
        metrics.transaction_aborted()
        topics = ", ".join(sorted({owned.topic for owned, _ in accepted}))
        right = need(self.config, "TOPIC", accepted[0][0].topic, "WRITE", "writer")
        error = error_of(err, f"appending to {topics}", need=right)
        log.error("writer: %s", error)
        for _, v in accepted:
            for req, _ in v.accepted:
                req.fail(error)
        return True

    def _retry(self, accepted: list[tuple[OwnedPartition, Verdicts]], maybe_written: bool) -> None:
        pending: list[Pending] = []
        for owned, v in accepted:
            for req, _ in v.accepted:
                req.attempts += 1
                req.maybe_written = req.maybe_written or maybe_written
                pending.append((owned, req))
        self._requeue(pending)

    def _settle(self, owned: OwnedPartition) -> None:
        """Read a STALE partition again so that its index knows what really committed."""
        try:
            self.ensure_producer()  # settles the previous producer's transaction first
            owned.catch_up()
        except KesError as exc:
            log.warning("%s: cannot read it again yet: %s", owned, exc)
            time.sleep(0.5)
            return
        owned.set_state(State.READY, only_from=State.STALE)

    def _check_log(self, owned: OwnedPartition, req: AppendRequest, actual: int) -> None:
        """A conflict that may be a retry of events stored long ago: compare their ids."""
        start = 0 if not isinstance(req.expected, int) else req.expected
        n = len(req.events)
        try:
            offsets = owned.index.offsets(req.aggregate_id, start + 1, start + n)
            msgs = self.reader.fetch(owned.topic, owned.partition, offsets)
        except KesError as exc:
            req.fail(exc)
            return
        if stored_ids_match(req, [decode(m.value()).event_id for m in msgs]):
            positions = [Position(owned.topic, owned.partition, o) for o in offsets]
            req.resolve(AppendResult(start + n, positions, written=False))
        else:
            req.fail(
                ConcurrencyError.of(req.aggregate_type, req.aggregate_id, req.expected, actual)
            )


def _by_group(
    accepted: list[tuple[OwnedPartition, Verdicts]],
) -> dict[str, list[tuple[OwnedPartition, Verdicts]]]:
    out: dict[str, list[tuple[OwnedPartition, Verdicts]]] = {}
    for owned, v in accepted:
        out.setdefault(owned.aggregate_type, []).append((owned, v))
    return out


def _request_offset(owned: OwnedPartition, v: Verdicts) -> int:
    """The request-topic offset committed with this transaction for ``owned``."""
    forwarded = {req.source for req, _ in v.accepted if req.source is not None}
    return max(0, owned.request_commit_offset(forwarded))


def _not_serving(owned: OwnedPartition, req: AppendRequest, lost: bool = False) -> KesError:
    where = f"{owned.topic}[{owned.partition}]"
    if req.source is not None:
        # A forwarded request's offset commits only with a later transaction of this
        # owner: if the partition moves first, the next owner reads the request again and
        # may carry it out. So not "nothing was written": the caller retries with the same
        # event ids, which finds the events if they were.
        return NotOwnerError(
            f"{where} is not served here now ({owned.state.value}); the request may still be "
            "carried out by the partition's next owner. Retry with the same event ids.",
            "unknown",
        )
    if lost or owned.state is State.LOST:
        return FencedError(
            f"{where}: another writer took over this partition (this process was presumed "
            "dead); this append was aborted and nothing of it is visible. Retry: it will go "
            "to the new owner."
        )
    if owned.state is State.STALE:
        return StoreUnavailableError(
            f"{where}: the writer is re-reading the partition after a failed commit; nothing "
            "was written. Retry with the same event ids.",
            "not_written",
        )
    return NotOwnerError(
        f"this process no longer owns {where} (rebalanced); nothing was written. Retry: "
        "the append will go to the new owner."
    )


__all__ = ["Group", "Writer"]
