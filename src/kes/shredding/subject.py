"""``DataSubject``: the event-sourced record that a data subject was forgotten.

``Application.forget(subject)`` appends ``SubjectForgotten`` to the stream
``DataSubject/<subject>`` (topic ``<namespace>.events.DataSubject``). Read models erase
their copies of a subject's personal data by handling it: list ``DataSubject`` in a
projection's ``aggregates`` and define ``on_SubjectForgotten``.
"""

from __future__ import annotations

from kes.domain import Aggregate, event

__all__ = ["DATA_SUBJECT", "DataSubject"]

DATA_SUBJECT = "DataSubject"


class DataSubject(Aggregate, aggregate_type=DATA_SUBJECT, id_field="subject_id"):
    """A data subject kes was asked to forget; its id is the subject id."""

    @event("SubjectForgotten")
    def __init__(self, subject_id: str, key_ids: list[str]) -> None:
        self.forgotten = True
        self.key_ids = key_ids
