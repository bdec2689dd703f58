"""Errors of the eventsourcing persistence module: each is a :class:`~kes.errors.KesError`
and, where the library's contract names one, also the library's own error type, so that
``except IntegrityError`` in an application written for the library keeps working::

    KesError
    ├── IntegrityConflictError (IntegrityError)   nothing was recorded: reload, decide again
    │   ├── EventExistsError                      an originator already has that version
    │   └── StaleTrackingError                    an upstream position is not past the last
    ├── RecorderUnavailableError (TransientError, OperationalError)
    │                                             Kafka or the log's owner did not answer;
    │                                             ``outcome`` says whether it may be recorded
    └── InvalidRecordError (InvalidInputError, DataError)
                                                  the library handed over something no log holds
"""

from __future__ import annotations

from eventsourcing.persistence import DataError, IntegrityError, OperationalError

from kes.errors import ConcurrencyError, InvalidInputError, KesError, Outcome, TransientError


class IntegrityConflictError(KesError, IntegrityError):
    """The library's IntegrityError: the insert conflicts with what the log holds; nothing
    of it was recorded."""

    code = "eventsourcing_conflict"


class EventExistsError(IntegrityConflictError):
    """An event with this originator id and version is already recorded."""

    code = "eventsourcing_event_exists"

    def __init__(self, log: str, originator_id: object, originator_version: int, why: str) -> None:
        self.originator_id = originator_id
        self.originator_version = originator_version
        super().__init__(
            f"{log}: {originator_id!r} version {originator_version} {why}; nothing of this "
            "insert was recorded. Reload the aggregate (another command changed it first) "
            "and decide again."
        )


class StaleTrackingError(IntegrityConflictError):
    """A tracking record is not past the last one recorded for its upstream application."""

    code = "eventsourcing_stale_tracking"

    def __init__(self, log: str, application_name: str, notification_id: int, last: int) -> None:
        self.application_name = application_name
        self.notification_id = notification_id
        self.last = last
        super().__init__(
            f"{log}: notification {notification_id} of {application_name!r} is not after "
            f"the last one recorded ({last}): it was processed already. Nothing of this "
            "insert was recorded; skip the notification."
        )


class RecorderUnavailableError(TransientError, OperationalError):
    """The library's OperationalError: Kafka, or the owner of the log's partition, did not
    answer in time. Retrying the command is safe when ``outcome`` is ``"not_written"``;
    when it is ``"unknown"``, reload first (the events may be recorded)."""

    code = "eventsourcing_unavailable"


class InvalidRecordError(InvalidInputError, DataError):
    """The library's DataError: a record no log can hold (wrong types, too large)."""

    code = "eventsourcing_invalid"


def unavailable(
    log: str, cause: KesError, outcome: Outcome | None = None
) -> RecorderUnavailableError:
    """A RecorderUnavailableError for ``cause`` (its outcome kept unless given)."""
    if outcome is None:
        outcome = cause.outcome if isinstance(cause, TransientError) else "unknown"
    return RecorderUnavailableError(f"{log}: {cause}", outcome)


def translate(log: str, exc: KesError) -> KesError:
    """The error a recorder raises for a kes error: the library's kind where it has one."""
    if isinstance(exc, IntegrityConflictError | RecorderUnavailableError | InvalidRecordError):
        return exc
    if isinstance(exc, TransientError):
        return unavailable(log, exc)
    if isinstance(exc, InvalidInputError):
        return InvalidRecordError(f"{log}: {exc}")
    if isinstance(exc, ConcurrencyError):  # never escapes the log's retry loop; kept safe
        return IntegrityConflictError(f"{log}: {exc}")
    return exc


__all__ = [
    "EventExistsError",
    "IntegrityConflictError",
    "InvalidRecordError",
    "RecorderUnavailableError",
    "StaleTrackingError",
    "translate",
    "unavailable",
]
