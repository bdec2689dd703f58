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
from kes.kafka.refusals import Need, denied

__all__ = ["DENIED", "Failure", "classify", "is_denied", "kafka_error", "kafka_errors", "translate"]

# Kafka's authorization errors, and the kind of resource each is about.
DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "TOPIC",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "GROUP",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "CLUSTER",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "TRANSACTIONAL_ID",
}
_AUTHENTICATION = {KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION}

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


def is_denied(err: KafkaError | None) -> bool:
    """Whether ``err`` is Kafka refusing the principal (authorization or authentication)."""
    return err is not None and (err.code() in DENIED or err.code() in _AUTHENTICATION)


def translate(
    exc: BaseException, doing: str, outcome: Outcome = "not_written", need: Need | None = None
) -> KesError:
    """A KesError for ``exc`` raised while ``doing`` (e.g. "creating topic X"); ``need``:
    the right the operation needs, named by the error when Kafka refuses it."""
    if isinstance(exc, KesError):
        return exc
    err = kafka_error(exc)
    if err is None:
        return StoreUnavailableError(f"{doing} failed: {exc!r}.", outcome)
    return error_of(err, doing, outcome, need)


def error_of(
    err: KafkaError, doing: str, outcome: Outcome = "not_written", need: Need | None = None
) -> KesError:
    """The KesError of a KafkaError (from an exception, a delivery report or a consumer)."""
    kind = DENIED.get(err.code())
    if kind is not None:
        if need is not None and need.resource_type == kind:
            return denied(need, doing, f"{err.name()}: {err.str()}")
        return AccessDeniedError(
            f"Kafka refused {doing}: not authorized for a {kind.lower().replace('_', ' ')} "
            f"({err.name()}: {err.str()}). Nothing was written. Give the principal kes runs "
            "as the role it acts in (`kes acl roles`, `kes acl grant`)."
        )
    if err.code() in _AUTHENTICATION:
        from kes.errors import AuthenticationError

        return AuthenticationError(
            f"Kafka refused {doing}: authentication failed ({err.name()}: {err.str()}). "
            "Check the credentials (KES_KAFKA_SASL_USERNAME / _PASSWORD, or the client "
            "certificate); nothing was written."
        )
    return StoreUnavailableError(
        f"{doing} failed: {err.name()}: {err.str()}. Is Kafka reachable and healthy?", outcome
    )


@contextmanager
def kafka_errors(
    doing: str, outcome: Outcome = "not_written", need: Need | None = None
) -> Iterator[None]:
    """Translate KafkaException (and BufferError: a full producer queue) raised inside."""
    try:
        yield
    except KafkaException as exc:
        raise translate(exc, doing, outcome, need) from exc
    except BufferError as exc:
        raise StoreUnavailableError(
            f"{doing} failed: the producer's queue is full ({exc}); Kafka is not keeping up.",
            outcome,
        ) from exc
