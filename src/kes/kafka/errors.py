"""The one place where confluent-kafka's errors become kes errors.

``with kafka_errors("reading the end of kes.events.User[3]"):`` around any client call
turns a ``KafkaException`` into the :class:`~kes.errors.KesError` a caller can act on,
naming what was being done. :func:`classify` sorts a transaction's failure into what the
writer must do next: a fenced producer is finished, an aborted transaction can be retried,
a commit whose outcome is unknown must be settled by reading the log.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import KafkaError, KafkaException

from kes.errors import AccessDeniedError, KesError, Outcome, StoreUnavailableError

__all__ = ["Failure", "classify", "kafka_error", "kafka_errors", "translate"]

_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "the topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "the consumer group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "the cluster",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "the transactional id",
    KafkaError.SASL_AUTHENTICATION_FAILED: "authentication (user or password)",
    KafkaError._AUTHENTICATION: "authentication",
}

# The producer itself was fenced (another producer initialised our transactional id):
# it can do nothing more; whatever it had open is aborted by the newer one.
_PRODUCER_FENCED = {
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError._FENCED,
}
# The consumer group moved on (KIP-447): the transaction must abort; the partitions it
# covered belong, or will belong, to whoever the new generation assigned them.
_GROUP_FENCED = {
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.FENCED_INSTANCE_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
}


class Failure(enum.Enum):
    """What a failed transaction means for its writer."""

    PRODUCER_FENCED = "producer_fenced"  # producer finished; nothing of it is visible
    GROUP_FENCED = "group_fenced"  # aborted; ownership is moving
    ABORTABLE = "abortable"  # aborted (or to abort); nothing of it is visible
    RETRIABLE = "retriable"  # the same call may be retried
    UNKNOWN = "unknown"  # the commit may or may not have happened


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError inside a KafkaException, if any."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def classify(exc: BaseException) -> Failure:
    err = kafka_error(exc)
    if err is None:
        return Failure.UNKNOWN
    code = err.code()
    if code in _GROUP_FENCED:
        return Failure.GROUP_FENCED
    if code in _PRODUCER_FENCED or err.fatal():
        return Failure.PRODUCER_FENCED
    if err.txn_requires_abort():
        return Failure.ABORTABLE
    if err.retriable():
        return Failure.RETRIABLE
    return Failure.UNKNOWN


def translate(exc: BaseException, doing: str, outcome: Outcome = "not_written") -> KesError:
    """A KesError for ``exc`` raised while ``doing`` (e.g. "creating topic X")."""
    if isinstance(exc, KesError):
        return exc
    err = kafka_error(exc)
    if err is None:
        return StoreUnavailableError(f"{doing} failed: {exc!r}.", outcome)
    what = _DENIED.get(err.code())
    if what is not None:
        return AccessDeniedError(
            f"Kafka refused {doing}: not authorized for {what} ({err.name()}: {err.str()}). "
            "Nothing was written. Grant the principal kes runs as the rights its role "
            "needs (`kes acl grant --help`), or check its credentials."
        )
    return StoreUnavailableError(
        f"{doing} failed: {err.name()}: {err.str()}. Is Kafka reachable and healthy?", outcome
    )


@contextmanager
def kafka_errors(doing: str, outcome: Outcome = "not_written") -> Iterator[None]:
    """Translate KafkaException (and BufferError: a full producer queue) raised inside."""
    try:
        yield
    except KafkaException as exc:
        raise translate(exc, doing, outcome) from exc
    except BufferError as exc:
        raise StoreUnavailableError(
            f"{doing} failed: the producer's queue is full ({exc}); Kafka is not keeping up.",
            outcome,
        ) from exc
