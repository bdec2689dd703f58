"""Forwarding: a command for an aggregate owned by another process travels to it
through Kafka, the way actor sharding routes commands.

Requests go to ``<event topic>.requests``, keyed by aggregate id, so they land on the
partition with the same number as the aggregate's events. Whoever the writer group
assigned that request partition to *is* the owner. Replies come back on a reply topic
of the requesting process. Each request carries a deadline: an owner drops a request
its caller has given up on, so a timeout never hides a late write. Errors travel by
their stable ``code`` (``kes.errors``).

This is a command channel, so it is guarded twice (docs/operations.md, "Security"):
only principals with the writer role of a type may write its request topic (ACLs), and
every reply carries the digest of the request bytes it answers; a caller accepts a
reply only with its request's id *and* digest, so a reply written by anyone else, or
an owner's answer to some other request, is never taken for the answer to its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future

import msgspec
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from kes import metrics
from kes.envelope import NewEvent
from kes.errors import (
    ConcurrencyError,
    KesError,
    StoreUnavailableError,
    TransientError,
    by_code,
)
from kes.kafka.clients import reader
from kes.kafka.config import KafkaConfig
from kes.kafka.consume import drain, watermarks
from kes.kafka.errors import error_of, kafka_errors
from kes.kafka.refusals import need
from kes.kafka.topics import REPLIES, Topics
from kes.store.base import Expected, ExpectedVersion

log = logging.getLogger("kes.routing")


class AppendCall(msgspec.Struct, tag="append", omit_defaults=True):
    """Append ``events`` to a stream if it is at ``expected``."""

    id: str
    reply_to: str
    deadline: float
    aggregate_type: str
    aggregate_id: str
    expected: int | str
    events: list[NewEvent]


class ReadCall(msgspec.Struct, tag="read", omit_defaults=True):
    """The stream's version and the offsets of versions ``from_version..to_version``."""

    id: str
    reply_to: str
    deadline: float
    aggregate_type: str
    aggregate_id: str
    from_version: int = 1
    to_version: int | None = None


Call = AppendCall | ReadCall


class Reply(msgspec.Struct, omit_defaults=True):
    id: str
    ok: bool
    version: int = 0
    offsets: list[int] = []
    written: bool = True
    error: str | None = None  # a KesError code
    message: str = ""
    outcome: str | None = None  # a TransientError's outcome
    expected: int | str | None = None
    actual: int = 0
    digest: str = ""  # of the request record's value: binds the answer to the request


def digest(request: bytes) -> str:
    """What an owner puts in its reply, and a caller checks: the request's bytes' hash."""
    return hashlib.blake2b(request, digest_size=16).hexdigest()


encoder = msgspec.json.Encoder()
call_decoder = msgspec.json.Decoder(Call)
reply_decoder = msgspec.json.Decoder(Reply)


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
            error=exc.code,
            message=str(exc),
            expected=expected_to_wire(exc.expected),  # type: ignore[arg-type]
            actual=exc.actual,
        )
    if isinstance(exc, KesError):
        outcome = exc.outcome if isinstance(exc, TransientError) else None
        return Reply(request_id, False, error=exc.code, message=str(exc), outcome=outcome)
    return Reply(request_id, False, error=StoreUnavailableError.code, message=repr(exc))


def reply_error(reply: Reply, aggregate_type: str, aggregate_id: str) -> KesError:
    """The error a failed reply carries, as the caller's own exception."""
    cls = by_code(reply.error or "")
    if issubclass(cls, ConcurrencyError):
        return cls.of(
            aggregate_type, aggregate_id, expected_from_wire(reply.expected), reply.actual
        )
    if issubclass(cls, TransientError):
        return cls(reply.message, "not_written" if reply.outcome == "not_written" else "unknown")
    return cls(reply.message)


# How long past a request's deadline its caller still waits for the reply.
REPLY_GRACE_S = 2.0


def no_reply_error(
    call: Call, request_topic: str, partition: int, timeout: float
) -> StoreUnavailableError:
    """The error of a forwarded call that got no reply within ``timeout``."""
    append = isinstance(call, AppendCall)
    return StoreUnavailableError(
        f"no writer answered for {call.aggregate_type} {call.aggregate_id!r} "
        f"(partition {partition} of {request_topic}) within {timeout:.0f}s. Is a "
        "writer process running for this aggregate type?"
        + (
            " If one took the append and died, its outcome is unknown: retrying with "
            "the same event ids is safe (a repeated append is a no-op)."
            if append
            else ""
        ),
        "unknown" if append else "not_written",
    )


class Router:
    """The requesting side: sends requests, waits for replies on its own reply topic."""

    def __init__(
        self, config: KafkaConfig, topics: Topics, producer: Callable[[], Producer]
    ) -> None:
        self.config = config
        self.topics = topics
        self.producer = producer
        self.reply_topic = config.reply_topic()
        self._pending: dict[str, tuple[str, Future[Reply]]] = {}  # id -> (digest, future)
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self.topics.ensure(REPLIES, self.reply_topic, 1)
            consumer = reader(self.config, **{"fetch.wait.max.ms": 5})
            # Start at the current end, explicitly, so no reply can slip past the consumer.
            _, high = watermarks(self.config, self.reply_topic, 0)
            consumer.assign([TopicPartition(self.reply_topic, 0, high)])
            self._thread = threading.Thread(
                target=self._listen, args=(consumer,), name="kes-replies", daemon=True
            )
            self._thread.start()
            self._started = True

    def _listen(self, consumer: Consumer) -> None:
        try:
            while not self._stop.is_set():
                self.producer().poll(0)  # delivery reports: a refused request fails now
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
                        pending = self._pending.get(reply.id)
                        if pending is None:
                            continue
                        if reply.digest != pending[0]:
                            log.warning(
                                "%s@%d: a reply names request %s but not its digest: not "
                                "the owner's answer to it (forged, or an old owner); ignored",
                                self.reply_topic,
                                msg.offset(),
                                reply.id,
                            )
                            continue
                        del self._pending[reply.id]
                    future = pending[1]
                    if not future.done():
                        future.set_result(reply)
        finally:
            consumer.close()

    def new_id(self) -> str:
        return uuid.uuid4().hex

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Create the reply topic and start listening (blocking; done once, on first use)."""
        self._start()

    def send(self, request_topic: str, partition: int, call: Call) -> Future[Reply]:
        """Send ``call`` to the owner of ``partition``; the future gets its reply. Does not
        block once :meth:`start` has run. Pair with :meth:`discard` when giving up."""
        self._start()
        future: Future[Reply] = Future()
        value = encoder.encode(call)
        metrics.forwarded(call.aggregate_type, "sent")
        with self._lock:
            self._pending[call.id] = (digest(value), future)
        doing = f"forwarding a {type(call).__name__} to {request_topic}[{partition}]"
        right = need(self.config, "TOPIC", request_topic, "WRITE", "writer")

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            # Refused (not authorized, say): report it now, not as a timeout later.
            if err is not None and not future.done():
                future.set_exception(error_of(err, doing, need=right))

        try:
            with kafka_errors(doing, need=right):
                self.producer().produce(
                    request_topic,
                    value=value,
                    key=call.aggregate_id,
                    partition=partition,
                    on_delivery=delivered,
                )
            self.producer().poll(0)
        except BaseException:
            self.discard(call.id)
            raise
        return future

    def discard(self, request_id: str) -> None:
        """Stop waiting for the reply to ``request_id``."""
        with self._lock:
            self._pending.pop(request_id, None)

    def call(self, request_topic: str, partition: int, call: Call, timeout: float) -> Reply:
        """Send ``call`` to the owner of ``partition`` and wait for its reply."""
        future = self.send(request_topic, partition, call)
        try:
            # A little past the deadline: the owner drops the request after it.
            return future.result(timeout=timeout + REPLY_GRACE_S)
        except TimeoutError:
            raise no_reply_error(call, request_topic, partition, timeout) from None
        finally:
            self.discard(call.id)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._started:
            with contextlib.suppress(Exception):
                self.topics.delete([self.reply_topic], timeout=5)


__all__ = [
    "AppendCall",
    "Call",
    "ReadCall",
    "Reply",
    "Router",
    "call_decoder",
    "digest",
    "encoder",
    "error_reply",
    "expected_from_wire",
    "expected_to_wire",
    "no_reply_error",
    "reply_error",
]
