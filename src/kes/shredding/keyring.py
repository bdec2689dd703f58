"""Data keys of data subjects: created on first use, wrapped by the KEK, deleted on forget.

Every data subject gets its own AES-256 data key the first time personal data of it is
written. The key is stored wrapped by the key-encryption key (:mod:`kes.shredding.kek`),
under a random ``key_id`` that every event encrypted with it names. Forgetting a subject
records that it was forgotten (a permanent marker, without key material) and deletes its
keys; what was encrypted with them is unreadable from then on, wherever it was copied.

:class:`KeyRing` holds the rules; a backend (:class:`MemoryKeyRing`, or
``kes.store.kafka.KafkaKeyRing`` on a compacted topic) stores the records. For an event's
``(subject, key_id)`` the ring tells three cases apart: the key (decrypt), the subject's
forgotten marker (placeholder), or neither even after reading everything written so far
(the key was lost: :class:`DataKeyUnavailableError`, never a silent placeholder).

Unwrapped keys are cached, at most ``cache_size`` of them (least recently used first
out, approximately: a hit takes no lock), so a replay unwraps each subject's key once,
not once per event.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kes.envelope import Envelope, NewEvent
from kes.personal import PersonalFields
from kes.shredding import seal
from kes.shredding.errors import (
    DataKeyUnavailableError,
    KeyEncryptionKeyError,
    SubjectForgottenError,
    UnknownSubjectError,
)
from kes.shredding.kek import KEK_ENV, KEK_FILE_ENV, KeyEncryptionKey
from kes.snapshots import Snapshot

__all__ = ["DEFAULT_CACHE_SIZE", "KeyRing", "MemoryKeyRing", "WrappedKey"]

log = logging.getLogger("kes.shredding")

DEFAULT_CACHE_SIZE = 10_000  # unwrapped data keys held (about 1 KiB each with the cipher)

Listener = Callable[[str], None]


@dataclass(frozen=True)
class WrappedKey:
    """A data key as stored: wrapped by the KEK named ``kek_id``."""

    subject: str
    key_id: str
    kek_id: str
    wrapped: bytes
    created_at: datetime


def wrap_context(subject: str, key_id: str) -> bytes:
    """What a wrapped key is bound to: it unwraps only for this subject and key id."""
    return f"kes data key|{subject}|{key_id}".encode()


class KeyRing(ABC):
    """The data keys of every data subject, and the one place that forgets them.

    Thread-safe. ``kek`` None makes a ring that can forget subjects and read what is
    forgotten, but refuses to create or unwrap a key (KeyEncryptionKeyError).
    """

    def __init__(self, kek: KeyEncryptionKey | None, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.kek = kek
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], AESGCM] = OrderedDict()
        self._writing: dict[str, tuple[str, AESGCM]] = {}  # subject -> key new data uses
        self._cache_lock = threading.Lock()
        # One creation per subject at a time in this process (others' run concurrently:
        # creating a key waits for a round trip to the key store).
        self._create_locks = [threading.Lock() for _ in range(64)]
        self._listeners: list[Listener] = []
        self.unwraps = 0  # how many times a key was unwrapped (cache misses)
        self._cache_hits = 0

    # ---- what a backend provides ----------------------------------------------------------

    @abstractmethod
    def keys_of(self, subject: str) -> list[WrappedKey]:
        """The subject's live keys as known here, oldest first."""

    @abstractmethod
    def is_forgotten(self, subject: str) -> bool:
        """Whether the subject's forgotten marker is known here."""

    @abstractmethod
    def _store_key(self, key: WrappedKey) -> None:
        """Store a new key durably (and know it here)."""

    @abstractmethod
    def _store_forgotten(self, subject: str, key_ids: list[str], first_time: bool) -> None:
        """Store the subject's forgotten marker (when ``first_time``), then delete the keys."""

    def _refresh(self) -> None:  # noqa: B027 - a backend shared between processes overrides it
        """Know every record written before this call (a backend shared by processes)."""

    def start(self) -> None:
        """Load the stored keys and check the KEK against them (KeyEncryptionKeyError)."""
        self._refresh()
        self.check_kek()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- keys ---------------------------------------------------------------------------------

    def key_for_write(self, subject: str) -> tuple[str, AESGCM]:
        """The key id and cipher new personal data of ``subject`` is encrypted with; the
        key is created on first use. Raises SubjectForgottenError for a forgotten subject."""
        if self.is_forgotten(subject):
            raise self._forgotten_error(subject)
        chosen = self._writing.get(subject)
        if chosen is not None:
            return chosen
        keys = self.keys_of(subject)
        if not keys:
            with self._create_locks[hash(subject) % len(self._create_locks)]:
                keys = self.keys_of(subject) or self._create(subject)
        key = keys[0]
        chosen = (key.key_id, self._cipher(key))
        with self._cache_lock:
            if not self.is_forgotten(subject):
                if len(self._writing) >= self.cache_size:
                    self._writing.clear()
                self._writing[subject] = chosen
        return chosen

    def key_for_read(self, subject: str, key_id: str) -> AESGCM | None:
        """The cipher of ``subject``'s key ``key_id``; None when the subject was forgotten.

        Raises DataKeyUnavailableError when the key is missing although the subject was
        never forgotten, after reading every record written so far."""
        cached = self._cached((subject, key_id))
        if cached is not None:
            return cached
        for attempt in range(2):
            if self.is_forgotten(subject):
                return None
            for key in self.keys_of(subject):
                if key.key_id == key_id:
                    return self._cipher(key)
            if attempt == 0:
                self._refresh()  # written by another process a moment ago?
        raise DataKeyUnavailableError(
            f"data key {key_id} of subject {subject!r} is not in {self.describe()}, and the "
            "subject was never forgotten: the key store lost it (a deleted or re-created key "
            "topic, another namespace?). Restore the key topic; nothing can decrypt this data "
            "without it."
        )

    def forget(self, subject: str) -> list[str]:
        """Delete every key of ``subject``; returns their ids ([] when it was forgotten
        before: a no-op). Raises UnknownSubjectError when it never had a key."""
        self._refresh()
        keys = self.keys_of(subject)
        ids = [k.key_id for k in keys]
        if self.is_forgotten(subject):
            if ids:  # a forget interrupted after its marker: finish it
                self._store_forgotten(subject, ids, first_time=False)
            return []
        if not ids:
            raise UnknownSubjectError(
                f"subject {subject!r} has no data key in {self.describe()}: kes never stored "
                "personal data of it, so there is nothing to forget. Check the id (it is the "
                "value of the field personal() names, by default the aggregate id)."
            )
        self._store_forgotten(subject, ids, first_time=True)
        return ids

    def on_forget(self, listener: Listener) -> None:
        """Call ``listener(subject)`` whenever a subject is forgotten (here or elsewhere)."""
        self._listeners.append(listener)

    def check_kek(self) -> None:
        """Raise KeyEncryptionKeyError unless the KEK unwraps the stored keys."""
        sample = self._sample()
        if sample is None:
            return
        if self.kek is None:
            return  # no KEK: checked when a key is needed
        if sample.kek_id != self.kek.key_id:
            raise KeyEncryptionKeyError(
                f"the data keys in {self.describe()} are wrapped by key-encryption key "
                f"{sample.kek_id}, but this process has {self.kek.key_id}. Configure the KEK "
                f"they were written with ({KEK_FILE_ENV} or {KEK_ENV})."
            )
        self._unwrap(sample)

    def describe(self) -> str:
        return type(self).__name__

    # ---- sealing ------------------------------------------------------------------------------

    def seal(self, personal: PersonalFields, aggregate_id: str, event: NewEvent) -> NewEvent:
        """``event`` with its personal fields moved, encrypted, into ``personal``."""
        return seal.seal_event(self, personal, aggregate_id, event)

    def reveal(self, envelope: Envelope) -> Envelope:
        """``envelope`` with its personal fields decrypted into ``payload`` (placeholders
        for a forgotten subject)."""
        return seal.reveal(self, envelope)

    def seal_snapshot(self, snapshot: Snapshot, subjects: Iterable[str]) -> Snapshot:
        """``snapshot`` with its state encrypted so that it needs every subject's key."""
        return seal.seal_snapshot(self, snapshot, subjects)

    def open_snapshot(self, snapshot: Snapshot) -> Snapshot | None:
        """A sealed snapshot's state decrypted; None when one of its subjects is forgotten."""
        return seal.open_snapshot(self, snapshot)

    # ---- internals ----------------------------------------------------------------------------

    def _sample(self) -> WrappedKey | None:
        """One stored key (the KEK check unwraps it); None when there is none."""
        return None

    def _create(self, subject: str) -> list[WrappedKey]:
        kek = self._require_kek()
        key_id = os.urandom(8).hex()
        key = WrappedKey(
            subject,
            key_id,
            kek.key_id,
            kek.wrap(AESGCM.generate_key(256), wrap_context(subject, key_id)),
            datetime.now(UTC),
        )
        self._store_key(key)
        keys = self.keys_of(subject)
        if not keys:  # forgotten meanwhile: the backend deleted what it had just stored
            raise self._forgotten_error(subject)
        return keys

    def _cipher(self, key: WrappedKey) -> AESGCM:
        ref = (key.subject, key.key_id)
        cached = self._cached(ref)
        if cached is not None:
            return cached
        cipher = AESGCM(self._unwrap(key))
        with self._cache_lock:
            if not self.is_forgotten(key.subject):
                self._cache[ref] = cipher
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return cipher

    def _cached(self, ref: tuple[str, str]) -> AESGCM | None:
        cipher = self._cache.get(ref)  # one atomic lookup: a hit takes no lock
        if cipher is not None and self._cache_hits % 64 == 0:
            with self._cache_lock:  # now and then: recently used keys leave last
                if ref in self._cache:
                    self._cache.move_to_end(ref)
        self._cache_hits += 1
        return cipher

    def _unwrap(self, key: WrappedKey) -> bytes:
        kek = self._require_kek()
        if key.kek_id != kek.key_id:
            raise KeyEncryptionKeyError(
                f"data key {key.key_id} of subject {key.subject!r} is wrapped by key-encryption "
                f"key {key.kek_id}, but this process has {kek.key_id}. Configure the KEK it was "
                f"written with ({KEK_FILE_ENV} or {KEK_ENV})."
            )
        self.unwraps += 1
        return kek.unwrap(key.wrapped, wrap_context(key.subject, key.key_id))

    def _require_kek(self) -> KeyEncryptionKey:
        if self.kek is None:
            raise KeyEncryptionKeyError(
                "personal data needs a key-encryption key, and none is configured: set "
                f"{KEK_FILE_ENV} (a file with 32 random bytes, e.g. from `openssl rand -base64 "
                f"32`) or {KEK_ENV}, or pass one to the key ring. Nothing was written."
            )
        return self.kek

    def _forgotten_error(self, subject: str) -> SubjectForgottenError:
        return SubjectForgottenError(
            f"subject {subject!r} was forgotten; kes refuses new personal data of it (nothing "
            "was written). A person who comes back is a new subject: give them a new id."
        )

    def _on_forgotten(self, subject: str) -> None:
        """A backend learnt that ``subject`` was forgotten: drop its keys, tell listeners."""
        with self._cache_lock:
            self._writing.pop(subject, None)
            for ref in [r for r in self._cache if r[0] == subject]:
                del self._cache[ref]
        for listener in list(self._listeners):
            try:
                listener(subject)
            except Exception:
                log.exception("a forget listener failed for subject %r", subject)


class MemoryKeyRing(KeyRing):
    """Keys in this process's memory: for tests and the memory event store."""

    def __init__(self, kek: KeyEncryptionKey | None, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        super().__init__(kek, cache_size)
        self._lock = threading.Lock()
        self._keys: dict[str, list[WrappedKey]] = {}
        self._forgotten: set[str] = set()

    def keys_of(self, subject: str) -> list[WrappedKey]:
        with self._lock:
            return list(self._keys.get(subject, ()))

    def is_forgotten(self, subject: str) -> bool:
        return subject in self._forgotten

    def _store_key(self, key: WrappedKey) -> None:
        with self._lock:
            if key.subject not in self._forgotten:
                self._keys.setdefault(key.subject, []).append(key)

    def _store_forgotten(self, subject: str, key_ids: list[str], first_time: bool) -> None:
        with self._lock:
            self._forgotten.add(subject)
            self._keys.pop(subject, None)
        self._on_forgotten(subject)

    def _sample(self) -> WrappedKey | None:
        with self._lock:
            return next((ks[-1] for ks in self._keys.values() if ks), None)
