"""The library's InfrastructureFactory on kes
(``PERSISTENCE_MODULE=kes.integrations.eventsourcing``).

Settings come from the library's environment (an application's ``env``, then
``os.environ``; ``<APPLICATION NAME>_<KEY>`` wins over ``<KEY>``):

* ``KES_*`` as for every kes process (``KafkaConfig.from_env``): ``KES_BOOTSTRAP_SERVERS``,
  ``KES_NAMESPACE``, ``KES_ROLE``, ``KES_REQUEST_TIMEOUT_S``, ``KES_KAFKA_<SETTING>``, ...;
* ``KES_EVENTSOURCING_CACHE_MB``: recent records each log keeps in memory (default 64);
* the library's own: ``TRANSCODER_TOPIC``, ``CIPHER_TOPIC``/``CIPHER_KEY``,
  ``COMPRESSOR_TOPIC``, ``MAPPER_TOPIC``, ``IS_SNAPSHOTTING_ENABLED``,
  ``TRACKING_RECORDER_TOPIC``. ``CREATE_TABLE`` is ignored: kes creates topics on first use.

Where records go (one log = one kes stream; docs/wire-format.md):

==============================  ===========================  ==========
recorder                        kes aggregate type           stream
==============================  ===========================  ==========
application, process, events    ``<Application>``            ``events``
snapshots (any other purpose)   ``<Application>-snapshots``  ``snapshots``
tracking (standalone)           ``<Application>-tracking``   ``tracking``
==============================  ===========================  ==========

Each of those topics has one partition: a log is one stream, so more would stay empty.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic

from kes.errors import InvalidInputError
from kes.integrations.eventsourcing._log import SequenceLog
from kes.integrations.eventsourcing._shared import Session, open_session, release
from kes.integrations.eventsourcing.recorders import (
    KafkaAggregateRecorder,
    KafkaApplicationRecorder,
    KafkaProcessRecorder,
    KafkaTrackingRecorder,
)
from kes.kafka.config import KafkaConfig

CACHE_MB = "KES_EVENTSOURCING_CACHE_MB"
DEFAULT_CACHE_MB = 64
EVENTS = "events"
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def aggregate_type_for(name: str) -> str:
    """The kes aggregate type (the end of a topic name) for an application's name: the
    name itself when it fits ``[A-Za-z0-9_-]``, else a cleaned name with a short hash
    (so that two names never meet in one topic)."""
    if name and not _NAME.search(name):
        return name
    cleaned = _NAME.sub("-", name).strip("-") or "Application"
    return f"{cleaned}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def kes_settings(env: Mapping[str, str], name: str) -> dict[str, str]:
    """The ``KES_*`` settings in effect: os.environ's, then ``env``'s, then ``env``'s
    ``<NAME>_KES_*`` (the library's per-application override)."""
    out = {k: v for k, v in os.environ.items() if k.startswith("KES_")}
    out.update({k: v for k, v in env.items() if k.startswith("KES_")})
    if name:
        prefix = name.upper() + "_"
        out.update(
            {
                k[len(prefix) :]: v
                for k, v in env.items()
                if k.startswith(prefix + "KES_") and len(k) > len(prefix)
            }
        )
    return out


class KafkaFactory(InfrastructureFactory[KafkaTrackingRecorder]):
    """Recorders whose records live in Kafka through kes (see the module docstring)."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        settings = kes_settings(self.env, self.env.name)
        self.config = KafkaConfig.from_env(environ=settings, partitions=1)
        raw = settings.get(CACHE_MB, str(DEFAULT_CACHE_MB))
        try:
            self.cache_bytes = int(float(raw) * 1024 * 1024)
        except ValueError:
            raise InvalidInputError(
                f"{CACHE_MB}={raw!r} is not a number of megabytes; fix or unset it."
            ) from None
        self.application = aggregate_type_for(self.env.name or "Application")
        self._session: Session | None = None

    def _log(self, aggregate_type: str, stream: str, *, numbered: bool) -> SequenceLog:
        if self._session is None:
            self._session = open_session(self.config)
        return self._session.log(
            aggregate_type, stream, numbered=numbered, cache_bytes=self.cache_bytes
        )

    def _events_log(self) -> SequenceLog:
        return self._log(self.application, EVENTS, numbered=True)

    def aggregate_recorder(self, purpose: str = EVENTS) -> AggregateRecorder:
        if purpose == EVENTS:
            return KafkaAggregateRecorder(self._events_log())
        name = aggregate_type_for(purpose)
        return KafkaAggregateRecorder(self._log(f"{self.application}-{name}", name, numbered=False))

    def application_recorder(self) -> ApplicationRecorder:
        return KafkaApplicationRecorder(self._events_log())

    def tracking_recorder(
        self, tracking_recorder_class: type[KafkaTrackingRecorder] | None = None
    ) -> KafkaTrackingRecorder:
        if tracking_recorder_class is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            tracking_recorder_class = resolve_topic(topic) if topic else KafkaTrackingRecorder
        if not (
            isinstance(tracking_recorder_class, type)
            and issubclass(tracking_recorder_class, KafkaTrackingRecorder)
        ):
            raise InvalidInputError(
                f"{self.TRACKING_RECORDER_TOPIC} names {tracking_recorder_class!r}, which is "
                "not a KafkaTrackingRecorder subclass; name one, or unset it."
            )
        return tracking_recorder_class(
            self._log(f"{self.application}-tracking", "tracking", numbered=False)
        )

    def process_recorder(self) -> ProcessRecorder:
        return KafkaProcessRecorder(self._events_log())

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            release(session)


__all__ = ["KafkaFactory", "aggregate_type_for", "kes_settings"]
