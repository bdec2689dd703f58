"""One kes store per Kafka configuration in a process, and one log object per log in it,
shared by every factory and recorder that names them (so several applications in one
process share one transactional writer, and two recorders of one log one index).
Reference-counted: the last factory to close closes the store."""

from __future__ import annotations

import atexit
import dataclasses
import threading

from kes.integrations.eventsourcing._log import SequenceLog
from kes.kafka.config import KafkaConfig
from kes.store.kafka import KafkaEventStore


class Session:
    """A kes store and the logs opened on it."""

    def __init__(self, key: str, config: KafkaConfig) -> None:
        self.key = key
        self.config = config
        self.store = KafkaEventStore(config)
        self.logs: dict[tuple[str, str], SequenceLog] = {}
        self.refs = 0

    def log(
        self, aggregate_type: str, stream: str, *, numbered: bool, cache_bytes: int
    ) -> SequenceLog:
        with _lock:
            found = self.logs.get((aggregate_type, stream))
            if found is None:
                found = SequenceLog(
                    self.store,
                    aggregate_type,
                    stream,
                    numbered=numbered,
                    cache_bytes=cache_bytes,
                    timeout_s=self.config.request_timeout_s,
                )
                self.logs[(aggregate_type, stream)] = found
            return found

    def close(self) -> None:
        for log in self.logs.values():
            log.close()
        self.store.close()


_lock = threading.RLock()
_sessions: dict[str, Session] = {}


def open_session(config: KafkaConfig) -> Session:
    """The session for ``config`` (one per cluster, namespace and settings), one more
    reference to it."""
    key = repr(dataclasses.replace(config, member_name=""))
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = _sessions[key] = Session(key, config)
        session.refs += 1
        return session


def release(session: Session) -> None:
    """Drop one reference; the last one closes the store."""
    with _lock:
        session.refs -= 1
        if session.refs > 0 or _sessions.get(session.key) is not session:
            return
        del _sessions[session.key]
    session.close()


def open_sessions() -> int:
    """How many sessions are open in this process (for tests and diagnostics)."""
    with _lock:
        return len(_sessions)


def close_all() -> int:
    """Close every open session, whoever still holds it; how many there were. For test
    teardown and interpreter exit, after which no recorder of this process may be used."""
    with _lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        session.close()
    return len(sessions)


# Applications that never close (the library closes them on garbage collection, which
# exit may skip) still leave their writer group at exit, so a restarted process does not
# wait a session timeout for their partitions.
atexit.register(close_all)

__all__ = ["Session", "close_all", "open_session", "open_sessions", "release"]
