"""Errors of personal data protection; every one is a :class:`~kes.errors.KesError`.

::

    PersonalDataError
    ├── KeyEncryptionKeyError      the key-encryption key is missing, unreadable, or not
    │                              the one that wrapped the stored data keys
    ├── DataKeyUnavailableError    a data key an event names is gone although its subject
    │                              was never forgotten (the key topic lost it)
    ├── SubjectForgottenError      new personal data for a subject that was forgotten
    └── UnknownSubjectError        forget() of a subject kes holds no key for (LookupError)
"""

from __future__ import annotations

from kes.errors import KesError

__all__ = [
    "DataKeyUnavailableError",
    "KeyEncryptionKeyError",
    "PersonalDataError",
    "SubjectForgottenError",
    "UnknownSubjectError",
]


class PersonalDataError(KesError):
    """Personal data could not be encrypted, decrypted or forgotten; nothing was written."""

    code = "personal_data"


class KeyEncryptionKeyError(PersonalDataError):
    """The key-encryption key is missing, unreadable, or cannot unwrap the data keys."""

    code = "key_encryption_key"


class DataKeyUnavailableError(PersonalDataError):
    """A data key named by an event is missing, and its subject was never forgotten."""

    code = "data_key_unavailable"


class SubjectForgottenError(PersonalDataError):
    """Personal data was given for a subject that has been forgotten."""

    code = "subject_forgotten"


class UnknownSubjectError(PersonalDataError, LookupError):
    """``forget`` was asked for a subject that has no data key (never had personal data)."""

    code = "unknown_subject"
