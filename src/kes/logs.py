"""How kes processes log: text lines (default) or JSON lines for log collectors.

``configure()`` sets the root logger up once for a process (``kes project run``, ``kes
stream run``, ``kes serve`` call it; an application calls it or keeps its own set-up).
The format comes from the argument or ``KES_LOG_FORMAT`` (``text`` or ``json``).

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
exception when there is one, and the event fields kes attaches where a message is about
a record or a partition: ``aggregateType``, ``aggregateId``, ``version``, ``topic``,
``partition``, ``offset``, ``consumer`` (a projection or pipeline). ``record_fields``
gives them for a Kafka record, to pass as ``extra=``.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

import msgspec

from kes.errors import InvalidInputError

__all__ = ["FORMATS", "JsonFormatter", "configure", "record_fields"]

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# LogRecord attribute -> JSON key
_FIELDS = {
    "aggregate_type": "aggregateType",
    "aggregate_id": "aggregateId",
    "version": "version",
    "topic": "topic",
    "partition": "partition",
    "offset": "offset",
    "consumer": "consumer",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its keys)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attr, key in _FIELDS.items():
            value = record.__dict__.get(attr)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(out, enc_hook=str).decode()


def configure(level: int | str = logging.INFO, fmt: str | None = None) -> None:
    """Send this process's logs to stderr as ``fmt`` (default: ``KES_LOG_FORMAT``, else
    text), replacing the root logger's handlers."""
    chosen = (fmt or os.environ.get("KES_LOG_FORMAT") or "text").lower()
    if chosen not in FORMATS:
        raise InvalidInputError(
            f"log format must be one of {', '.join(FORMATS)}, got {chosen!r} "
            "(from --log-format or KES_LOG_FORMAT)."
        )
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def record_fields(msg: Any, consumer: str | None = None) -> dict[str, Any]:
    """The log fields of a Kafka record (a confluent_kafka Message): where it lies, its
    key as the aggregate id, its ``eventType`` header, and ``consumer``."""
    key = msg.key()
    out: dict[str, Any] = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "aggregate_id": key.decode(errors="replace") if isinstance(key, bytes) else key,
        "consumer": consumer,
    }
    return out
