"""The key-encryption key (KEK): wraps every data key before it is stored in Kafka.

:class:`KeyEncryptionKey` is the provider interface; a cloud KMS implements it with two
calls (``wrap``: Encrypt, ``unwrap``: Decrypt) and names its key in ``key_id``.
:class:`LocalKeyEncryptionKey` holds a 256-bit key read from a file (``KES_KEK_FILE``) or
an environment variable (``KES_KEK``, base64). Make one with ``openssl rand -base64 32``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kes.shredding.errors import KeyEncryptionKeyError

__all__ = ["KEK_ENV", "KEK_FILE_ENV", "KeyEncryptionKey", "LocalKeyEncryptionKey", "kek_from_env"]

KEK_FILE_ENV = "KES_KEK_FILE"
KEK_ENV = "KES_KEK"
NONCE_BYTES = 12


class KeyEncryptionKey(ABC):
    """Wraps and unwraps data keys. ``context`` (the subject and key id) must be the same
    for both: a wrapped key moved to another subject does not unwrap."""

    @property
    @abstractmethod
    def key_id(self) -> str:
        """Names this KEK in every key it wraps (never secret): tells a wrong KEK at start."""

    @abstractmethod
    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        """The data key encrypted under this KEK."""

    @abstractmethod
    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """The data key; raises KeyEncryptionKeyError when this KEK did not wrap it."""


class LocalKeyEncryptionKey(KeyEncryptionKey):
    """A 256-bit AES-GCM key held by this process. ``source`` names where it came from
    (in error messages; never the key itself)."""

    def __init__(self, secret: bytes, source: str = "the given bytes") -> None:
        if len(secret) != 32:
            raise KeyEncryptionKeyError(
                f"the key-encryption key from {source} is {len(secret)} bytes; it must be 32 "
                "(256 bits). Make one with `openssl rand -base64 32`."
            )
        self._aes = AESGCM(secret)
        self.source = source
        digest = hmac.new(secret, b"kes key-encryption key id", hashlib.sha256).hexdigest()
        self._key_id = f"local:{digest[:16]}"

    @property
    def key_id(self) -> str:
        return self._key_id

    @classmethod
    def from_file(cls, path: str | Path) -> LocalKeyEncryptionKey:
        """From a file holding 32 raw bytes, or their base64 text."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise KeyEncryptionKeyError(
                f"cannot read the key-encryption key file {str(path)!r}: {exc.strerror}. Check "
                f"{KEK_FILE_ENV} and the file's permissions."
            ) from None
        if len(raw) == 32:
            return cls(raw, f"file {path}")
        return cls(_b64(raw.strip(), f"file {path}"), f"file {path}")

    @classmethod
    def from_base64(cls, text: str, source: str = KEK_ENV) -> LocalKeyEncryptionKey:
        return cls(_b64(text.strip().encode(), source), source)

    def wrap(self, data_key: bytes, context: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aes.encrypt(nonce, data_key, context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return self._aes.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], context)
        except InvalidTag:
            raise KeyEncryptionKeyError(
                f"the key-encryption key {self.key_id} (from {self.source}) cannot unwrap a data "
                "key it is asked to: the key was wrapped by another KEK, or its record was "
                "altered. Configure the KEK the keys were written with."
            ) from None


def _b64(data: bytes, source: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise KeyEncryptionKeyError(
            f"the key-encryption key from {source} is neither 32 raw bytes nor base64 text. "
            "Make one with `openssl rand -base64 32`."
        ) from None


def kek_from_env(environ: Mapping[str, str] | None = None) -> LocalKeyEncryptionKey | None:
    """The KEK that ``KES_KEK_FILE`` (a path) or ``KES_KEK`` (base64) gives; None when
    neither is set. Raises KeyEncryptionKeyError when it is unreadable or both are set."""
    env = os.environ if environ is None else environ
    path, text = env.get(KEK_FILE_ENV), env.get(KEK_ENV)
    if path and text:
        raise KeyEncryptionKeyError(
            f"both {KEK_FILE_ENV} and {KEK_ENV} are set; set only one of them."
        )
    if path:
        return LocalKeyEncryptionKey.from_file(path)
    if text:
        return LocalKeyEncryptionKey.from_base64(text)
    return None
