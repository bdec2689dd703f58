"""Forwarding: a command for an aggregate owned by another process travels to it
through Kafka, the way actor sharding routes commands.

Requests go to ``<event topic>.requests``, keyed by aggregate id, so they land on the
partition with the same number as the aggregate's events. Whoever the writer group
assigned that request partition to *is* the owner. Replies come back on a reply topic
of the requesting process. Each request carries a deadline: an owner drops a request
its caller has given up on, so a timeout never hides a late write.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kes.envelope import NewEvent
from kes.errors import (
    ConcurrencyError,
    EventTooLargeError,
    FencedError,
    InvalidInputError,
    KesError,
    NotOwnerError,
    SerializationError,
    StoreUnavailableError,
)
from kes.store.base import Expected, ExpectedVersion
from kes.store.kafka.config import KafkaConfig
from kes.store.kafka.reader import drain
from kes.store.kafka.topics import Topics

log = logging.getLogger("kes.routing")


class Request(msgspec.Struct, omit_defaults=True):
    id: str
    reply_to: str
    kind: str  # "append" | "read"
    aggregate_type: str
    aggregate_id: str
    deadline: float
    expected: int | str | None = None
    events: list[NewEvent] = []
    from_version: int = 1
    to_version: int | None = None


class Reply(msgspec.Struct, omit_defaults=True):
    id: str
    ok: bool
    version: int = 0
    offsets: list[int] = []
    written: bool = True
    error: str | None = None
    message: str = ""
    expected: int | str | None = None
    actual: int = 0


request_encoder = msgspec.json.Encoder()
request_decoder = msgspec.json.Decoder(Request)
reply_decoder = msgspec.json.Decoder(Reply)

_ERRORS: dict[str, type[KesError]] = {
    cls.__name__: cls
    for cls in (
        EventTooLargeError,
        SerializationError,
        InvalidInputError,
        NotOwnerError,
        FencedError,
        StoreUnavailableError,
    )
}


def expected_to_wire(expected: Expected) -> int | str:
    return expected.name if isinstance(expected, ExpectedVersion) else expected


def expected_from_wire(value: int | str | None) -> Expected:
    if isinstance(value, int):
        return value
    return ExpectedVersion[value or "ANY"]


def error_reply(request_id: str, exc: BaseException) -> Reply:
    if isinstance(exc, ConcurrencyError):
        return Reply(
            request_id,
            False,
            error="ConcurrencyError",
            message=str(exc),
            expected=expected_to_wire(exc.expected),  # type: ignore[arg-type]
            actual=exc.actual,
        )
    name = type(exc).__name__ if type(exc).__name__ in _ERRORS else "StoreUnavailableError"
    return Reply(request_id, False, error=name, message=str(exc))


def raise_reply(reply: Reply, aggregate_type: str, aggregate_id: str) -> None:
    if reply.ok:
        return
    if reply.error == "ConcurrencyError":
        raise ConcurrencyError(
            aggregate_type, aggregate_id, expected_from_wire(reply.expected), reply.actual
        )
    raise _ERRORS.get(reply.error or "", StoreUnavailableError)(reply.message)


class Router:
    """The requesting side: sends requests, waits for replies on its own reply topic."""

    def __init__(self, config: KafkaConfig, topics: Topics, producer: Producer) -> None:
        self.config = config
        self.topics = topics
        self.producer = producer
        self.reply_topic = f"kes.replies.{config.member_name}"
        self._pending: dict[str, Future[Reply]] = {}
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            rf = self.topics.replication_factor()
            self.topics.ensure(
                self.reply_topic,
                1,
                {"retention.ms": "3600000", "min.insync.replicas": str(max(1, rf - 1))},
                rf,
            )
            consumer = Consumer(self.config.reader(**{"fetch.wait.max.ms": 5}))
            # Start at the current end, explicitly, so no reply can slip past the consumer.
            _, high = consumer.get_watermark_offsets(
                TopicPartition(self.reply_topic, 0), timeout=10, cached=False
            )
            consumer.assign([TopicPartition(self.reply_topic, 0, high)])
            self._thread = threading.Thread(
                target=self._listen, args=(consumer,), name="kes-replies", daemon=True
            )
            self._thread.start()
            self._started = True

    def _listen(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                for msg in drain(consumer, 100, 0.1):
                    if msg.error() is not None:
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("reply topic: %s", msg.error())
                        continue
                    try:
                        reply = reply_decoder.decode(msg.value())
                    except msgspec.DecodeError:
                        continue
                    with self._lock:
                        future = self._pending.pop(reply.id, None)
                    if future is not None and not future.done():
                        future.set_result(reply)
        finally:
            consumer.close()

    def call(self, request_topic: str, partition: int, timeout: float, **fields: Any) -> Reply:
        """Send a request to the owner of ``partition`` and wait for its reply."""
        self._start()
        rid = uuid.uuid4().hex
        deadline = time.time() + timeout
        request = Request(id=rid, reply_to=self.reply_topic, deadline=deadline, **fields)
        future: Future[Reply] = Future()
        with self._lock:
            self._pending[rid] = future
        try:
            self.producer.produce(
                request_topic,
                value=request_encoder.encode(request),
                key=request.aggregate_id,
                partition=partition,
            )
            self.producer.poll(0)
            # A little past the deadline: the owner drops the request after it.
            return future.result(timeout=timeout + 2.0)
        except TimeoutError:
            raise StoreUnavailableError(
                f"no writer answered for {fields.get('aggregate_type')} "
                f"{fields.get('aggregate_id')!r} (partition {partition} of {request_topic}) "
                f"within {timeout:.0f}s. Is a writer process running for this aggregate "
                "type? If one took the request and died, the outcome is unknown: retrying "
                "with the same event ids is safe (a repeated append is a no-op)."
            ) from None
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._started:
            with contextlib.suppress(Exception):
                AdminClient(self.config.base()).delete_topics([self.reply_topic])
