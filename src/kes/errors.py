"""One exception hierarchy: every error kes raises is a :class:`KesError`.

Grouped by what the caller can do about it::

    KesError
    ├── InvalidInputError (ValueError)    refused before anything was written: fix the input
    │   ├── SerializationError            a payload or metadata value is not JSON
    │   └── EventTooLargeError            an encoded event exceeds the topic's limit
    ├── ConcurrencyError                  the stream moved; nothing written: reload, decide again
    │   └── StreamExistsError             (expected NO_STREAM) it exists: a retry cannot help
    ├── AggregateNotFoundError (LookupError)
    ├── TransientError                    Kafka or ownership is in motion: retry, with the
    │   │                                 same event ids (a repeated append is a no-op);
    │   │                                 ``outcome`` says whether it may have been written
    │   └── StoreUnavailableError         Kafka did not answer, or no owner did, in time
    │       ├── NotOwnerError             the partition moved to another process
    │       └── FencedError               a newer owner took over; this write was aborted
    ├── AccessDeniedError                 the Kafka principal lacks a permission (ACL): names
    │   │                                 principal, resource, operation and the fix
    │   └── AuthenticationError           Kafka did not accept who we are (password, user,
    │                                     certificate, security protocol); within seconds
    ├── TopicConfigError                  a topic's settings would lose or misplace events
    ├── DomainError (kes.domain)          raised by aggregates' own rules
    │   └── UnknownEventError, VersionGapError
    ├── PersonalDataError (kes.shredding) personal fields could not be protected or read
    │   ├── KeyEncryptionKeyError         the KEK is missing or wrong: fix the deployment
    │   ├── DataKeyUnavailableError       a key is lost though never forgotten
    │   ├── SubjectForgottenError         new personal data of a forgotten subject
    │   └── UnknownSubjectError (LookupError)  forget() of a subject with no key
    ├── SchemaError (kes.schemas)         registry: Confluent error codes and HTTP statuses
    ├── ProjectionError (kes.projections)
    └── BrokerError (kes.broker)          the local development broker

Each message says what happened, with the values involved, and what to do.
Errors cross process boundaries (forwarded appends) by their stable ``code``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

Outcome = Literal["not_written", "unknown"]


class KesError(Exception):
    """Root of every error raised by kes."""

    code: ClassVar[str] = "kes_error"


class InvalidInputError(KesError, ValueError):
    """The caller passed something kes cannot accept; nothing was written."""

    code = "invalid_input"


class SerializationError(InvalidInputError):
    """A payload or metadata value cannot be encoded as JSON."""

    code = "serialization"


class EventTooLargeError(InvalidInputError):
    """An encoded event is larger than the topic accepts."""

    code = "event_too_large"


class ConcurrencyError(KesError):
    """The stream was not at the expected version; nothing was written."""

    code = "concurrency"

    def __init__(
        self, aggregate_type: str, aggregate_id: str, expected: object, actual: int
    ) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual
        super().__init__(self._describe())

    def _describe(self) -> str:
        expected = getattr(self.expected, "name", self.expected)
        return (
            f"{self.aggregate_type} {self.aggregate_id!r}: expected version {expected}, "
            f"but the stream is at version {self.actual}. Nothing was written; "
            "reload the aggregate and retry the command."
        )

    @classmethod
    def of(
        cls, aggregate_type: str, aggregate_id: str, expected: object, actual: int
    ) -> ConcurrencyError:
        """The right error for a refused append: StreamExistsError for a create."""
        if getattr(expected, "name", None) == "NO_STREAM":
            return StreamExistsError(aggregate_type, aggregate_id, expected, actual)
        return cls(aggregate_type, aggregate_id, expected, actual)


class StreamExistsError(ConcurrencyError):
    """An append that creates a stream (expected NO_STREAM) found it existing."""

    code = "stream_exists"

    def _describe(self) -> str:
        return (
            f"{self.aggregate_type} {self.aggregate_id!r} already exists (it is at version "
            f"{self.actual}); nothing was written. Creating it again cannot succeed: load it, "
            "or create the new aggregate under another id."
        )


class AggregateNotFoundError(KesError, LookupError):
    """No events exist for the requested aggregate (or version / time)."""

    code = "not_found"


class TransientError(KesError):
    """Kafka, or the ownership of a partition, is in motion. Retrying with the same event
    ids is safe: a repeated append is recognised and writes nothing.

    ``outcome`` is ``"not_written"`` when nothing of the failed call can become visible,
    ``"unknown"`` when it may have been written (a retry then tells which).
    """

    code = "transient"
    default_outcome: ClassVar[Outcome] = "unknown"

    def __init__(self, message: str, outcome: Outcome | None = None) -> None:
        super().__init__(message)
        self.outcome: Outcome = outcome or self.default_outcome


class StoreUnavailableError(TransientError):
    """Kafka, or the owner of a partition, could not be reached or did not answer in time."""

    code = "unavailable"


class NotOwnerError(StoreUnavailableError):
    """This process does not own the partition an aggregate lives in."""

    code = "not_owner"
    default_outcome = "not_written"


class FencedError(StoreUnavailableError):
    """A newer writer took over a partition; this writer's work was aborted."""

    code = "fenced"
    default_outcome = "not_written"


class AccessDeniedError(KesError):
    """Kafka refused an operation: the principal lacks a permission (ACL). Nothing was
    written. ``principal``, ``resource`` (e.g. ``Topic:kes.events.User``), ``operation``
    (e.g. ``WRITE``) and ``grant`` (the ``kes acl grant`` command that gives the right)
    are set when known."""

    code = "access_denied"

    def __init__(
        self,
        message: str,
        *,
        principal: str = "",
        resource: str = "",
        operation: str = "",
        grant: str = "",
    ) -> None:
        super().__init__(message)
        self.principal = principal
        self.resource = resource
        self.operation = operation
        self.grant = grant


class AuthenticationError(AccessDeniedError):
    """Kafka did not accept who the client is: unknown user, wrong password, untrusted
    certificate, or a security protocol the listener does not speak. Nothing was done."""

    code = "authentication"


class TopicConfigError(KesError):
    """A topic exists with settings that would lose or misplace events."""

    code = "topic_config"


def by_code(code: str) -> type[KesError]:
    """The error class of a stable ``code`` (for errors sent between processes)."""
    return _BY_CODE.get(code, StoreUnavailableError)


_BY_CODE: dict[str, type[KesError]] = {
    cls.code: cls
    for cls in (
        InvalidInputError,
        SerializationError,
        EventTooLargeError,
        ConcurrencyError,
        StreamExistsError,
        AggregateNotFoundError,
        TransientError,
        StoreUnavailableError,
        NotOwnerError,
        FencedError,
        AccessDeniedError,
        AuthenticationError,
        TopicConfigError,
    )
}
