"""Encrypting personal fields into an event's ``personal`` list, and back.

One AES-256-GCM encryption per event and data subject: the JSON object of the subject's
personal fields, with a fresh 96-bit nonce, bound (as associated data) to the event id,
the subject and the key id, so a ciphertext copied into another event does not decrypt.
The layout is documented in docs/wire-format.md ("Personal data").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kes.envelope import Envelope, NewEvent, SealedFields
from kes.personal import PersonalFields
from kes.shredding.errors import PersonalDataError
from kes.snapshots import KeyShare, SealedState, Snapshot

if TYPE_CHECKING:
    from kes.shredding.keyring import KeyRing

__all__ = ["event_context", "open_snapshot", "reveal", "seal_event", "seal_snapshot"]

NONCE_BYTES = 12
_encode = msgspec.json.Encoder().encode
_decode_fields = msgspec.json.Decoder(dict[str, Any]).decode


class _Nonces:
    """Random 96-bit nonces, drawn from the OS 4 KiB at a time (one system call per 341
    nonces instead of one each). A forked child starts with an empty pool: parent and
    child never share nonces."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def take(self) -> bytes:
        with self._lock:
            if self._at + NONCE_BYTES > len(self._pool):
                self._pool, self._at = os.urandom(4092), 0
            nonce = self._pool[self._at : self._at + NONCE_BYTES]
            self._at += NONCE_BYTES
            return nonce

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = b"", 0


_nonces = _Nonces()
os.register_at_fork(after_in_child=_nonces.reset)


def event_context(event_id: str, subject: str, key_id: str) -> bytes:
    """The associated data of an event's sealed fields (authenticated, not stored)."""
    return f"kes personal|{event_id}|{subject}|{key_id}".encode()


def seal_event(
    ring: KeyRing, personal: PersonalFields, aggregate_id: str, event: NewEvent
) -> NewEvent:
    """``event`` whose personal fields left ``payload`` for ``personal``, encrypted."""
    payload = dict(event.payload)
    sealed: list[SealedFields] = []
    for group in personal.groups:
        subject = personal.subject_of(group, aggregate_id, payload)
        values = {f: payload.pop(f) for f in group.placeholders if f in payload}
        if not values:
            continue
        key_id, cipher = ring.key_for_write(subject)
        nonce = _nonces.take()
        data = cipher.encrypt(
            nonce, _encode(values), event_context(event.event_id, subject, key_id)
        )
        placeholders = group.placeholders  # shared, never changed
        if len(values) != len(placeholders):
            placeholders = {f: placeholders[f] for f in values}
        sealed.append(SealedFields(subject, key_id, placeholders, nonce + data))
    return msgspec.structs.replace(event, payload=payload, personal=sealed or msgspec.UNSET)


def reveal(ring: KeyRing, envelope: Envelope) -> Envelope:
    """``envelope`` with its personal fields back in ``payload``: decrypted, or their
    placeholders when the subject was forgotten. Its ``personal`` then lists only what
    was decrypted (what the reader now holds in plaintext)."""
    sealed = envelope.personal
    if not sealed:
        return envelope
    payload = dict(envelope.payload)
    opened = sealed
    for item in sealed:
        cipher = ring.key_for_read(item.subject, item.key_id)
        if cipher is None:
            payload.update(item.fields)
            opened = [i for i in opened if i is not item]
            continue
        context = event_context(envelope.event_id, item.subject, item.key_id)
        payload.update(_decode_fields(_decrypt(cipher, item.data, context, envelope, item)))
    return msgspec.structs.replace(envelope, payload=payload, personal=opened or msgspec.UNSET)


def _decrypt(
    cipher: AESGCM, data: bytes, context: bytes, envelope: Envelope, item: SealedFields
) -> bytes:
    try:
        return cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], context)
    except InvalidTag:
        raise PersonalDataError(
            f"the personal fields {sorted(item.fields)} of event {envelope.event_id} "
            f"({envelope.aggregate_type} {envelope.aggregate_id!r} v{envelope.version}) do not "
            f"decrypt with key {item.key_id} of subject {item.subject!r}: the record was "
            "altered or copied from another event. Nothing in it can be trusted."
        ) from None


def _snapshot_context(snapshot: Snapshot, subject: str, key_id: str) -> bytes:
    return (
        f"kes snapshot|{snapshot.aggregate_type}|{snapshot.aggregate_id}|{snapshot.version}|"
        f"{subject}|{key_id}"
    ).encode()


def seal_snapshot(ring: KeyRing, snapshot: Snapshot, subjects: Iterable[str]) -> Snapshot:
    """``snapshot`` with its state encrypted under a fresh key split into one XOR share
    per subject, each share encrypted with that subject's data key."""
    key = AESGCM.generate_key(256)
    shares: list[KeyShare] = []
    rest = key
    ordered = sorted(set(subjects))
    for i, subject in enumerate(ordered):
        share = rest if i == len(ordered) - 1 else os.urandom(len(key))
        if i < len(ordered) - 1:
            rest = bytes(a ^ b for a, b in zip(rest, share, strict=True))
        key_id, cipher = ring.key_for_write(subject)
        nonce = _nonces.take()
        context = _snapshot_context(snapshot, subject, key_id)
        shares.append(KeyShare(subject, key_id, nonce + cipher.encrypt(nonce, share, context)))
    nonce = _nonces.take()
    state = AESGCM(key).encrypt(nonce, _encode(snapshot.state), _snapshot_context(snapshot, "", ""))
    return msgspec.structs.replace(snapshot, state={}, sealed=SealedState(shares, nonce + state))


def open_snapshot(ring: KeyRing, snapshot: Snapshot) -> Snapshot | None:
    """The sealed snapshot with its state decrypted; None when a subject is forgotten."""
    sealed = snapshot.sealed
    if not sealed:
        return snapshot
    key = bytes(32)
    for share in sealed.shares:
        cipher = ring.key_for_read(share.subject, share.key_id)
        if cipher is None:
            return None
        context = _snapshot_context(snapshot, share.subject, share.key_id)
        try:
            part = cipher.decrypt(share.data[:NONCE_BYTES], share.data[NONCE_BYTES:], context)
        except InvalidTag:
            return None  # altered: a snapshot is only a cache, the events suffice
        key = bytes(a ^ b for a, b in zip(key, part, strict=True))
    try:
        state = AESGCM(key).decrypt(
            sealed.data[:NONCE_BYTES],
            sealed.data[NONCE_BYTES:],
            _snapshot_context(snapshot, "", ""),
        )
    except InvalidTag:
        return None
    return msgspec.structs.replace(snapshot, state=_decode_fields(state))
