"""Crypto-shredding: personal fields encrypted per data subject, forgotten by deleting
the subject's key.

Fields are declared personal in the domain (``kes.personal``); the application encrypts
them on save with the subject's data key (AES-256-GCM) and decrypts them on load;
``Application.forget(subject)`` deletes the key and records ``SubjectForgotten``. The key
ring (:class:`KeyRing`) stores data keys wrapped by a key-encryption key
(:class:`KeyEncryptionKey`: a file, an environment variable, or a cloud KMS). See
docs/design.md ("Personal data and forgetting") and docs/wire-format.md.

The error classes and ``DataSubject`` load with ``kes``; the ciphers (and the
``cryptography`` package) load on first use of the classes that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kes.shredding.errors import (
    DataKeyUnavailableError,
    KeyEncryptionKeyError,
    PersonalDataError,
    SubjectForgottenError,
    UnknownSubjectError,
)
from kes.shredding.subject import DATA_SUBJECT, DataSubject

if TYPE_CHECKING:
    from kes.shredding.kek import KeyEncryptionKey, LocalKeyEncryptionKey, kek_from_env
    from kes.shredding.keyring import KeyRing, MemoryKeyRing

_LAZY = {
    "KeyEncryptionKey": "kes.shredding.kek",
    "LocalKeyEncryptionKey": "kes.shredding.kek",
    "kek_from_env": "kes.shredding.kek",
    "KeyRing": "kes.shredding.keyring",
    "MemoryKeyRing": "kes.shredding.keyring",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kes.shredding' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DATA_SUBJECT",
    "DataKeyUnavailableError",
    "DataSubject",
    "KeyEncryptionKey",
    "KeyEncryptionKeyError",
    "KeyRing",
    "LocalKeyEncryptionKey",
    "MemoryKeyRing",
    "PersonalDataError",
    "SubjectForgottenError",
    "UnknownSubjectError",
    "kek_from_env",
]
