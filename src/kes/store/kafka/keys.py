"""The key ring on Kafka: data keys in a compacted topic, followed into memory.

Topic ``KafkaConfig.key_topic()`` (``<namespace>.keys``, one partition, compacted, its
cleanup policy checked: a live key never expires). Records, values in JSON:

- ``key/<key id>/<subject>``: a data key, ``{"subject", "keyId", "kek", "wrapped",
  "createdAt"}``; ``wrapped`` is base64 of the key encrypted by the KEK named ``kek``.
  ``forget`` writes a tombstone; compaction then removes the key from the disks.
- ``forgotten/<subject>``: ``{"subject", "keyIds", "forgottenAt"}``, written before the
  tombstones and never deleted: it is how a reader tells "forgotten" from "not loaded".

One partition gives one order to every record, which settles the two races: two
processes creating a subject's first key at once both keep theirs (each event names its
key id; both stay readable), and a key created while the subject is being forgotten is
seen by one side or the other: the creator reads to the end after writing its key and
tombstones it if the forgotten marker is there; the forgetter tombstones every key it
read before its marker.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import msgspec
from confluent_kafka import Message, Producer

from kes.errors import StoreUnavailableError
from kes.kafka.clients import producer
from kes.kafka.config import KafkaConfig
from kes.kafka.produce import send_and_confirm
from kes.kafka.table import CompactedTopic
from kes.kafka.topics import KEYS, Topics
from kes.shredding.errors import KeyEncryptionKeyError
from kes.shredding.kek import KEK_ENV, KEK_FILE_ENV, KeyEncryptionKey, kek_from_env
from kes.shredding.keyring import DEFAULT_CACHE_SIZE, KeyRing, WrappedKey

__all__ = ["KafkaKeyRing"]

log = logging.getLogger("kes.shredding")

_HEADERS = [("contentType", b"application/json")]
KEY_PREFIX = "key/"
FORGOTTEN_PREFIX = "forgotten/"


class _KeyRecord(msgspec.Struct, frozen=True, rename="camel"):
    subject: str
    key_id: str
    kek: str
    wrapped: bytes
    created_at: datetime


class _ForgottenRecord(msgspec.Struct, frozen=True, rename="camel"):
    subject: str
    key_ids: list[str]
    forgotten_at: datetime


_encoder = msgspec.json.Encoder()
_key_decoder = msgspec.json.Decoder(_KeyRecord)
_forgotten_decoder = msgspec.json.Decoder(_ForgottenRecord)


class KafkaKeyRing(KeyRing):
    """Data keys in the namespace's compacted key topic (see the module docstring).

    Connects on first use (or :meth:`start`, which also checks the KEK against the
    stored keys). Forgets written by other processes arrive within a fetch wait.
    """

    def __init__(
        self,
        config: KafkaConfig,
        kek: KeyEncryptionKey | None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        topic: str | None = None,
    ) -> None:
        super().__init__(kek, cache_size)
        self.config = config
        self.topic = topic or config.key_topic()
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._keys: dict[str, dict[str, tuple[int, WrappedKey]]] = {}  # subject -> kid -> key
        self._forgotten: set[str] = set()
        self._offsets: dict[str, int] = {}  # record key -> highest offset applied
        self._table: CompactedTopic | None = None
        self._producer: Producer | None = None
        self._ready = False
        self._closed = False

    @classmethod
    def from_env(cls, config: KafkaConfig, *, required_by: str | None = None) -> KafkaKeyRing:
        """The key ring with the KEK of ``KES_KEK_FILE`` or ``KES_KEK``, checked now against
        the stored keys (a missing file or a wrong KEK fails here, before any work).

        Without a KEK the ring can still forget subjects and read forgotten fields as
        their placeholders; ``required_by`` (what needs plaintext, for the message) makes
        a missing KEK an error now.
        """
        kek = kek_from_env()
        if kek is None and required_by is not None:
            raise KeyEncryptionKeyError(
                f"{required_by} reads personal fields, and no key-encryption key is "
                f"configured: set {KEK_FILE_ENV} (or {KEK_ENV})."
            )
        ring = cls(config, kek)
        if kek is not None:
            try:
                ring.start()
            except BaseException:
                ring.close()
                raise
        return ring

    def describe(self) -> str:
        return f"key topic {self.topic} at {self.config.bootstrap_servers}"

    # ---- what the ring reads -------------------------------------------------------------------

    def keys_of(self, subject: str) -> list[WrappedKey]:
        self._ensure()
        with self._lock:
            held = self._keys.get(subject)
            if not held:
                return []
            return [k for _, k in sorted(held.values(), key=lambda e: e[0])]

    def is_forgotten(self, subject: str) -> bool:
        self._ensure()
        return subject in self._forgotten

    def _sample(self) -> WrappedKey | None:
        with self._lock:
            latest = max(
                (e for held in self._keys.values() for e in held.values()),
                key=lambda e: e[0],
                default=None,
            )
        return None if latest is None else latest[1]

    def __len__(self) -> int:
        """How many subjects have a live key here."""
        self._ensure()
        with self._lock:
            return len(self._keys)

    # ---- what the ring writes ------------------------------------------------------------------

    def _store_key(self, key: WrappedKey) -> None:
        record = _KeyRecord(key.subject, key.key_id, key.kek_id, key.wrapped, key.created_at)
        name = f"{KEY_PREFIX}{key.key_id}/{key.subject}"
        self._write(name, _encoder.encode(record), f"data key of subject {key.subject!r}")
        self._refresh()  # a forget written meanwhile is now known
        if key.subject in self._forgotten:
            self._write(
                name, None, f"tombstone of a key created while {key.subject!r} was forgotten"
            )

    def _store_forgotten(self, subject: str, key_ids: list[str], first_time: bool) -> None:
        if first_time:
            marker = _ForgottenRecord(subject, key_ids, datetime.now(UTC))
            self._write(
                FORGOTTEN_PREFIX + subject, _encoder.encode(marker), f"forgotten {subject!r}"
            )
        for key_id in key_ids:
            self._write(f"{KEY_PREFIX}{key_id}/{subject}", None, f"tombstone of key {key_id}")

    def _refresh(self) -> None:
        table = self._ensure()
        if not table.wait_until_end(self.config.ready_timeout_s):
            raise StoreUnavailableError(
                f"{self.describe()} was not read to its end within "
                f"{self.config.ready_timeout_s:.0f}s; check that Kafka is reachable.",
                "not_written",
            )

    # ---- life cycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following the topic. Idempotent."""
        with self._start_lock:
            self._closed = True
            self._ready = False
        if self._table is not None:
            self._table.close()
        if self._producer is not None:
            self._producer.flush(10)

    def _ensure(self) -> CompactedTopic:
        table = self._table
        if self._ready and table is not None:
            return table
        with self._start_lock:
            if self._closed:
                raise StoreUnavailableError(
                    f"this KafkaKeyRing ({self.topic}) is closed; create a new one.", "not_written"
                )
            if self._table is None:
                Topics(self.config).ensure(KEYS, self.topic, 1)
                self._producer = producer(
                    self.config,
                    **{"message.timeout.ms": int(self.config.request_timeout_s * 1000)},
                )
                self._table = CompactedTopic(self.config, self.topic, 1, self._read, self._reset)
                self._table.follow()
            table = self._table
        if not table.loaded.wait(self.config.ready_timeout_s):
            raise StoreUnavailableError(
                f"{self.describe()} was not read within {self.config.ready_timeout_s:.0f}s; "
                "check that Kafka is reachable.",
                "not_written",
            )
        self._ready = True
        return table

    def _write(self, key: str, value: bytes | None, what: str) -> None:
        self._ensure()
        assert self._producer is not None
        _partition, offset = send_and_confirm(
            self._producer,
            self.topic,
            key.encode(),
            value,
            headers=_HEADERS,
            timeout_s=self.config.request_timeout_s + 5,
            what=what,
        )
        self._apply(key, offset, value)

    def _read(self, msg: Message) -> None:
        key = msg.key()
        if key is not None:
            self._apply(key.decode("utf-8", "replace"), msg.offset(), msg.value())

    def _apply(self, key: str, offset: int, value: bytes | None) -> None:
        """Keep the record with the highest offset per key, as compaction does (our own
        writes are applied at once, and again, older first, by the follower)."""
        forgotten: str | None = None
        with self._lock:
            if self._offsets.get(key, -1) >= offset:
                return
            self._offsets[key] = offset
        if key.startswith(KEY_PREFIX):
            key_id, _, subject = key[len(KEY_PREFIX) :].partition("/")
            with self._lock:
                held = self._keys.setdefault(subject, {})
                if value is None:
                    held.pop(key_id, None)
                elif key_id not in held:
                    try:
                        r = _key_decoder.decode(value)
                    except msgspec.ValidationError as exc:  # DecodeError is a subclass
                        log.error(
                            "%s: %s at offset %d is not a key record: %s",
                            self.topic,
                            key,
                            offset,
                            exc,
                        )
                        return
                    held[key_id] = (
                        offset,
                        WrappedKey(r.subject, r.key_id, r.kek, r.wrapped, r.created_at),
                    )
                if not held:
                    del self._keys[subject]
        elif key.startswith(FORGOTTEN_PREFIX):
            subject = key[len(FORGOTTEN_PREFIX) :]
            with self._lock:
                if value is None:
                    self._forgotten.discard(subject)
                elif subject not in self._forgotten:
                    self._forgotten.add(subject)
                    forgotten = subject
        else:
            log.warning("%s: ignoring a record with an unknown key %r", self.topic, key)
        if forgotten is not None:
            self._on_forgotten(forgotten)

    def _reset(self, partition: int | None) -> None:
        with self._lock:
            self._keys.clear()
            self._forgotten.clear()
            self._offsets.clear()
