"""Producing: one transactional producer with one failure classification, and
``send_and_confirm`` for single acks=all writes outside transactions."""

from __future__ import annotations

import contextlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer, TopicPartition

from kes.errors import StoreUnavailableError
from kes.kafka.acl import Role
from kes.kafka.clients import producer_conf
from kes.kafka.config import KafkaConfig
from kes.kafka.errors import Failure, classify, kafka_errors
from kes.kafka.refusals import need

__all__ = ["Failure", "GroupMember", "TransactionalProducer", "send_and_confirm"]

log = logging.getLogger("kes.kafka")

Headers = list[tuple[str, bytes]]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class GroupMember(NamedTuple):
    """Who a consumer is in its group, read from ``consumer_group_metadata()``."""

    generation: int
    member_id: str

    @property
    def valid(self) -> bool:
        """A member the group coordinator will check: an offset commit sent without a
        member id and generation is *not* validated for a transaction (the old protocol's
        compatibility), so it would fence nothing."""
        return self.generation >= 0 and bool(self.member_id)

    @classmethod
    def of(cls, metadata: Any) -> GroupMember:
        """Parse librdkafka's serialised group metadata (``CGMDv2:``, generation as a
        native int32, then NUL-terminated group id and member id)."""
        data = bytes(metadata)
        if not data.startswith(_CGMD):
            return cls(-1, "")  # an unknown layout: treat as no valid member (fail safe)
        (generation,) = struct.unpack_from("=i", data, len(_CGMD))
        rest = data[len(_CGMD) + 4 :].split(b"\0")
        member = rest[1].decode(errors="replace") if len(rest) > 1 else ""
        return cls(int(generation), member)


_CGMD = b"CGMDv2:"


class GroupFencedError(KafkaException):  # type: ignore[misc]
    """Raised instead of sending offsets that no coordinator would validate."""


class TransactionalProducer:
    """A transactional producer: ``init_transactions`` at creation (which fences every
    earlier producer with the same ``transactional_id`` and settles what it left open),
    then begin / produce / send_offsets / commit, each translated into kes errors.

    :func:`~kes.kafka.errors.classify` tells what a failure means; after
    ``PRODUCER_FENCED`` the instance is finished and a new one must be made.
    """

    def __init__(
        self,
        config: KafkaConfig,
        transactional_id: str,
        *,
        timeout_ms: int | None = None,
        role: Role = "writer",
        **extra: Any,
    ) -> None:
        self.config = config
        self.transactional_id = transactional_id
        self.timeout_ms = timeout_ms or config.transaction_timeout_ms
        self.op_timeout_s = max(self.timeout_ms / 1000, config.request_timeout_s)
        # A call into librdkafka never returned (see send_offsets): the instance is
        # finished, nothing more is called on it; a new producer takes over.
        self.stuck = False
        conf = producer_conf(
            config,
            **{
                "transactional.id": transactional_id,
                "transaction.timeout.ms": self.timeout_ms,
                "linger.ms": 0,
                **extra,
            },
        )
        with kafka_errors(f"creating the transactional producer {transactional_id!r}"):
            self.producer = Producer(conf)
        right = need(config, "TRANSACTIONAL_ID", transactional_id, "WRITE", role)
        with kafka_errors(f"initialising transactions of {transactional_id!r}", need=right):
            self.producer.init_transactions(self.op_timeout_s)
        self.in_transaction = False

    def begin(self) -> None:
        self.producer.begin_transaction()
        self.in_transaction = True

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"value": value, "key": key, "headers": headers}
        if partition is not None:
            kwargs["partition"] = partition
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.01)  # queue full: let deliveries drain

    def flush(self) -> None:
        """Wait until every record produced so far is acknowledged (or failed)."""
        left = self.producer.flush(self.op_timeout_s)
        if left:
            raise StoreUnavailableError(
                f"{left} record(s) of {self.transactional_id!r} were not acknowledged within "
                f"{self.op_timeout_s:.0f}s; is the broker healthy?",
                "not_written",
            )

    def send_offsets(
        self, offsets: Sequence[TopicPartition], group_metadata: Any, member_id: str | None = None
    ) -> None:
        """Add consumed offsets to the transaction; fails if the group moved on (KIP-447).

        Refuses (as UNKNOWN_MEMBER_ID) metadata without a member and generation, which
        the coordinator would accept unchecked, and, given ``member_id``, metadata of
        another member: the member this process was when it took the partitions.
        """
        member = GroupMember.of(group_metadata)
        if not member.valid or (member_id is not None and member.member_id != member_id):
            raise GroupFencedError(
                KafkaError(
                    KafkaError.UNKNOWN_MEMBER_ID,
                    f"not a member of the group that assigned these partitions (member "
                    f"{member.member_id or '-'}, generation {member.generation})",
                )
            )
        self._send_offsets_or_give_up(list(offsets), group_metadata)

    def _send_offsets_or_give_up(self, offsets: list[TopicPartition], group_metadata: Any) -> None:
        """``send_offsets_to_transaction``, waited for at most the transaction timeout.

        librdkafka (2.12; upstream issues #5511 and #5456) can wait forever in this call
        when the broker that coordinated the group died: the dead broker stays its cached
        coordinator, and the call's own timeout is not applied. Past the transaction's
        timeout the transaction is lost anyway, so kes stops waiting there and gives this
        producer up (:attr:`stuck`): the caller makes a new one with the same
        transactional id, whose ``init_transactions`` fences this one and aborts what it
        left open. The blocked call keeps this instance alive until it returns.
        """
        outcome: list[BaseException | None] = []
        done = threading.Event()

        def call() -> None:
            try:
                self.producer.send_offsets_to_transaction(
                    offsets, group_metadata, self.op_timeout_s
                )
                outcome.append(None)
            except BaseException as exc:  # handed to the waiting thread
                outcome.append(exc)
            finally:
                done.set()

        threading.Thread(target=call, name="kes-send-offsets", daemon=True).start()
        wait_s = self.timeout_ms / 1000
        if not done.wait(wait_s):
            self.stuck = True
            log.warning(
                "%s: adding the consumed offsets to the transaction did not finish within "
                "%.0fs (the group's coordinator broker is gone?); giving this producer up",
                self.transactional_id,
                wait_s,
            )
            raise StoreUnavailableError(
                f"the transaction of {self.transactional_id!r} could not add its offsets "
                f"within {wait_s:.0f}s (the group coordinator's broker is unreachable?); it "
                "will be aborted and nothing of it is visible.",
                "not_written",
            )
        error = outcome[0]
        if error is not None:
            raise error

    def commit(self) -> None:
        """Commit; a retriable failure is retried within the operation timeout."""
        deadline = time.monotonic() + self.op_timeout_s
        while True:
            try:
                self.producer.commit_transaction(max(1.0, deadline - time.monotonic()))
                self.in_transaction = False
                return
            except KafkaException as exc:
                if classify(exc) is Failure.RETRIABLE and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise

    def abort(self) -> bool:
        """Abort the open transaction; False when even that failed (make a new producer)."""
        if self.stuck:
            return False
        try:
            self.producer.abort_transaction(self.op_timeout_s)
            self.in_transaction = False
            return True
        except KafkaException as exc:
            log.info("%s: abort failed: %s", self.transactional_id, exc)
            return False

    def poll(self, timeout: float = 0) -> None:
        self.producer.poll(timeout)

    def close(self) -> None:
        if self.stuck:
            return  # its blocked call still uses it; it is released when that returns
        with contextlib.suppress(KafkaException, RuntimeError):
            if self.in_transaction:
                self.abort()
            self.producer.flush(1)


def send_and_confirm(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    headers: Headers | None = None,
    timeout_s: float,
    what: str,
) -> tuple[int, int]:
    """Produce one record and wait until Kafka acknowledged it: (partition, offset).

    Raises StoreUnavailableError naming ``what`` when it is refused or not confirmed in
    time (its outcome is then unknown).
    """
    done = threading.Event()
    result: list[Any] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        result.append(err if err is not None else (msg.partition(), msg.offset()))
        done.set()

    with kafka_errors(f"sending the {what} to {topic}", "not_written"):
        producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered)
    deadline = time.monotonic() + timeout_s
    while not done.is_set() and time.monotonic() < deadline:
        producer.poll(0.05)
    if not result:
        raise StoreUnavailableError(
            f"Kafka did not confirm the {what} on {topic} within {timeout_s:.0f}s; it may or "
            "may not be stored. Check the broker.",
            "unknown",
        )
    outcome = result[0]
    if isinstance(outcome, KafkaError):
        raise StoreUnavailableError(
            f"Kafka refused the {what} on {topic}: {outcome.name()}: {outcome.str()}.",
            "not_written",
        )
    partition, offset = outcome
    return int(partition), int(offset)
