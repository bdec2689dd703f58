"""This process's membership in the writer group of one aggregate type.

Assignment of request partition *p* makes this process the owner of event partition
*p*. A new partition is paused until its takeover is done (index loaded, log read to
the high watermark seen at assignment); then the forwarded requests queued for it are
served, through the process's one writer (see _writer.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from kes import metrics
from kes.errors import (
    AccessDeniedError,
    InvalidInputError,
    KesError,
    NotOwnerError,
    StoreUnavailableError,
)
from kes.kafka.clients import group_consumer
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import drain, watermarks
from kes.kafka.errors import error_of, is_denied
from kes.kafka.produce import GroupMember
from kes.kafka.refusals import need
from kes.kafka.topics import Topics
from kes.partitioning import partition_for
from kes.store.kafka._admission import AppendRequest
from kes.store.kafka._partition import OwnedPartition, State
from kes.store.kafka._routing import (
    AppendCall,
    Call,
    ReadCall,
    Reply,
    call_decoder,
    digest,
    encoder,
    error_reply,
    expected_from_wire,
)
from kes.store.kafka._writer import Writer

log = logging.getLogger("kes.store")

RETRY_TAKEOVER_S = 2.0


class WriterGroupMember:
    """Owns the partitions of one aggregate type that the writer group assigns here.

    ``serve=False`` (a client process) joins nothing and owns nothing.
    """

    def __init__(
        self,
        config: KafkaConfig,
        aggregate_type: str,
        topics: Topics,
        writer: Writer,
        replies: Producer,
        serve: bool,
    ) -> None:
        self.config = config
        self.aggregate_type = aggregate_type
        self.topic_info = topics.ensure_event_topic(aggregate_type)
        self.topic = self.topic_info.name
        self.partitions = self.topic_info.partitions
        self.request_topic = config.request_topic(aggregate_type)
        # Set when Kafka refuses this principal what appending needs (the request topic,
        # the writer group, the transactional id): appends fail with it at once, reads
        # go to the partition itself (a reader may not use the command channel).
        self.denied: AccessDeniedError | None = None
        try:
            topics.ensure_request_topic(aggregate_type, self.partitions)
        except AccessDeniedError as exc:
            self.denied = exc
            serve = False
        self.writer = writer
        self.replies = replies
        self.joined = threading.Event()
        self._owned: dict[int, OwnedPartition] = {}
        self._failed: set[int] = set()  # assigned here, but the takeover failed
        self._next_retry = 0.0
        self._consumer: Consumer | None = None
        self._stop = threading.Event()
        self._takeovers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kes-takeover")
        self._thread: threading.Thread | None = None
        if serve:
            writer.register(self)
            self._thread = threading.Thread(
                target=self._poll_loop, name=f"kes-group-{aggregate_type}", daemon=True
            )
            self._thread.start()
        else:
            self.joined.set()

    # ---- for the writer and the store ---------------------------------------------------

    def group_metadata(self) -> Any:
        """The group generation this member is in (fences its transactions, KIP-447)."""
        assert self._consumer is not None
        return self._consumer.consumer_group_metadata()

    def owner_of(self, partition: int, timeout: float) -> OwnedPartition | None:
        """The partition, ready, if this process owns it; waits for the first assignment
        and for a takeover in progress. Raises the AccessDeniedError of a principal that
        may not own partitions."""
        if self.denied is not None:
            raise self.denied
        if not self.joined.wait(timeout):
            return None
        if self.denied is not None:
            raise self.denied
        owned = self._owned.get(partition)
        if owned is None:
            return None
        owned.settled.wait(timeout)
        if self.denied is not None:
            raise self.denied
        return owned if owned.ready else None

    def owner_now(self, partition: int) -> tuple[bool, OwnedPartition | None]:
        """(known, the partition if served here now), without waiting. ``known`` is False
        while the first assignment or a takeover of the partition is in progress: then
        :meth:`owner_of` is the answer (it waits)."""
        if not self.joined.is_set():
            return False, None
        owned = self._owned.get(partition)
        if owned is None:
            return True, None
        if not owned.settled.is_set():
            return False, None
        return True, owned if owned.ready else None

    def _refused(self, exc: AccessDeniedError) -> None:
        """Kafka refused what owning partitions needs: stop trying, answer with it."""
        if self.denied is None:
            log.error("%s: %s", self.aggregate_type, exc)
        self.denied = exc
        self._stop.set()
        self.joined.set()
        for owned in list(self._owned.values()):
            owned.settled.set()

    def owned(self) -> dict[int, OwnedPartition]:
        """The partitions this process serves now."""
        return {p: owned for p, owned in list(self._owned.items()) if owned.ready}

    def owned_partitions(self) -> list[int]:
        return sorted(self.owned())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._takeovers.shutdown(wait=True, cancel_futures=True)

    # ---- the poll thread -----------------------------------------------------------------

    def _poll_loop(self) -> None:
        extra: dict[str, Any] = {"fetch.wait.max.ms": 5}
        if self.config.instance_id:
            extra["group.instance.id"] = f"{self.config.instance_id}.{self.aggregate_type}"
        consumer = group_consumer(
            self.config, self.config.writer_group(self.aggregate_type), **extra
        )
        self._consumer = consumer
        consumer.subscribe(
            [self.request_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not self._stop.is_set():
                try:
                    for msg in drain(consumer, 200, 0.05):
                        if msg.error() is None:
                            self._handle(msg)
                        elif is_denied(msg.error()):
                            self._refused(self._denial(msg.error()))
                    self.replies.poll(0)
                    self._retry_failed()
                except Exception:
                    # Leaving the loop would silently give up ownership: log and go on.
                    log.exception("%s: writer group loop error", self.aggregate_type)
                    time.sleep(0.5)
        finally:
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()  # leaves the group (unless static): revokes our partitions
            for p in list(self._owned):
                self._give_up(p, State.REVOKED)

    def _denial(self, err: KafkaError) -> AccessDeniedError:
        group = self.config.writer_group(self.aggregate_type)
        if err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            right = need(self.config, "GROUP", group, "READ", "writer")
        else:
            right = need(self.config, "TOPIC", self.request_topic, "READ", "writer")
        error = error_of(err, f"joining writer group {group}", need=right)
        if isinstance(error, AccessDeniedError):
            return error
        return AccessDeniedError(str(error))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        # Forwarded requests wait until the takeover of their partition is done.
        consumer.pause(partitions)
        member_id = GroupMember.of(consumer.consumer_group_metadata()).member_id
        for tp in partitions:
            owned = OwnedPartition(
                self.config,
                self.aggregate_type,
                self.topic,
                tp.partition,
                self.request_topic,
                self.topic_info.max_message_bytes,
                self.topic_info.topic_id,
            )
            owned.member_id = member_id
            self._owned[tp.partition] = owned
            self._takeovers.submit(self._take, consumer, owned)
        self.joined.set()

    def _take(self, consumer: Consumer, owned: OwnedPartition) -> None:
        p = owned.partition
        started = time.monotonic()
        try:
            self.writer.ensure_producer()
            owned.take()
            owned.request_position = self._request_position(consumer, p)
        except AccessDeniedError as exc:
            self._refused(exc)
            return
        except KesError as exc:
            log.warning("%s[%d]: could not take ownership (%s); will retry", self.topic, p, exc)
            self._failed.add(p)
            metrics.takeover(self.aggregate_type, None, 0)
            return
        except Exception:
            log.exception("%s[%d]: takeover failed; will retry", self.topic, p)
            self._failed.add(p)
            metrics.takeover(self.aggregate_type, None, 0)
            return
        if self._owned.get(p) is owned and owned.set_state(State.READY, only_from=State.STARTING):
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.resume([TopicPartition(self.request_topic, p)])
            metrics.index_size(owned.topic, p, len(owned.index))
            metrics.takeover(self.aggregate_type, time.monotonic() - started, len(self.owned()))

    def _request_position(self, consumer: Consumer, partition: int) -> int:
        """Where forwarded requests of ``partition`` resume: the group's committed offset
        (a stable one: a previous owner's pending transaction is waited for)."""
        tp = TopicPartition(self.request_topic, partition)
        try:
            (committed,) = consumer.committed([tp], timeout=self.config.request_timeout_s)
            if committed.offset >= 0:
                return int(committed.offset)
        except KafkaException as exc:
            raise StoreUnavailableError(
                f"reading the committed position of {self.request_topic}[{partition}]: {exc}",
                "not_written",
            ) from exc
        low, _ = watermarks(self.config, self.request_topic, partition)
        return low

    def _retry_failed(self) -> None:
        """Take again the assigned partitions whose takeover failed (e.g. broker down)."""
        now = time.monotonic()
        if not self._failed or now < self._next_retry or self._consumer is None:
            return
        self._next_retry = now + RETRY_TAKEOVER_S
        for p in sorted(self._failed):
            self._failed.discard(p)
            owned = self._owned.get(p)
            if owned is not None and owned.state is State.STARTING:
                self._takeovers.submit(self._take, self._consumer, owned)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._give_up(tp.partition, State.REVOKED)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning(
            "%s: partitions %s lost (this process was presumed dead); their pending appends "
            "fail as fenced",
            self.topic,
            [tp.partition for tp in partitions],
        )
        for tp in partitions:
            self._give_up(tp.partition, State.LOST)

    def _give_up(self, partition: int, state: State) -> None:
        self._failed.discard(partition)
        owned = self._owned.pop(partition, None)
        if owned is None:
            return
        was_ready = owned.ready
        owned.set_state(state)
        metrics.owned(self.aggregate_type, len(self.owned()))
        metrics.forget_partition(owned.topic, partition)
        if was_ready:
            owned.save_index()

    # ---- forwarded requests ----------------------------------------------------------------

    def _handle(self, msg: Message) -> None:
        try:
            call: Call = call_decoder.decode(msg.value())
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("%s@%d: undecodable request skipped", msg.topic(), msg.offset())
            return
        if not call.reply_to.startswith(self.config.replies_prefix):
            # Only reply topics are answered: a request cannot make the owner write to
            # any other topic (its event topics, say).
            log.warning(
                "%s@%d: request asks for replies on %r, not a reply topic of namespace %s; skipped",
                msg.topic(),
                msg.offset(),
                call.reply_to,
                self.config.ns,
            )
            return
        call_digest = digest(msg.value())
        metrics.forwarded(call.aggregate_type, "served")
        if partition_for(call.aggregate_id, self.partitions) != msg.partition():
            # Served here, it would put the aggregate's events in another partition than
            # its key's, where no read finds them and no version check sees them.
            wrong = InvalidInputError(
                f"{call.aggregate_type} {call.aggregate_id!r} lives in partition "
                f"{partition_for(call.aggregate_id, self.partitions)} of {self.topic}, but "
                f"the request came on partition {msg.partition()} of {msg.topic()}; nothing "
                "was written. Send requests with kes (it routes them by key)."
            )
            self._reply(call, error_reply(call.id, wrong), call_digest)
            return
        owned = self._owned.get(msg.partition())
        if owned is None or not owned.ready:
            # Not final for an append: the partition's next owner reads this request again.
            moved = NotOwnerError(
                "partition moved; its next owner may carry the request out",
                "unknown" if isinstance(call, AppendCall) else "not_written",
            )
            self._reply(call, error_reply(call.id, moved), call_digest)
            return
        offset = msg.offset()
        owned.request_read(offset)
        if call.deadline < time.time():  # the caller has given up and reported a timeout
            owned.request_answered(offset)
            return
        if isinstance(call, ReadCall):
            version, offsets = owned.index.lookup(
                call.aggregate_id, call.from_version, call.to_version
            )
            self._reply(call, Reply(call.id, True, version=version, offsets=offsets), call_digest)
            owned.request_answered(offset)
            return

        def answer(req: AppendRequest) -> None:
            if req.error is not None:
                self._reply(call, error_reply(call.id, req.error), call_digest)
            elif req.result is not None:
                result = req.result
                self._reply(
                    call,
                    Reply(
                        call.id,
                        True,
                        version=result.version,
                        offsets=[p.offset for p in result.positions],
                        written=result.written,
                    ),
                    call_digest,
                )
            owned.request_answered(offset)

        assert isinstance(call, AppendCall)
        try:
            request = AppendRequest(
                self.aggregate_type,
                call.aggregate_id,
                call.events,
                expected_from_wire(call.expected),
                call.deadline,
                on_done=answer,
                source=offset,
            )
        except KesError as exc:  # a payload that cannot be encoded
            self._reply(call, error_reply(call.id, exc), call_digest)
            owned.request_answered(offset)
            return
        try:
            self.writer.submit(owned, request)
        except KesError as exc:
            request.fail(exc)

    def _reply(self, call: Call, reply: Reply, call_digest: str) -> None:
        reply.digest = call_digest  # the caller accepts only the answer to its own bytes
        try:
            self.replies.produce(call.reply_to, value=encoder.encode(reply))
        except (KafkaException, BufferError) as exc:
            log.warning("could not reply to %s: %s", call.reply_to, exc)


__all__ = ["WriterGroupMember"]
