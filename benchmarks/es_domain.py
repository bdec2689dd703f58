"""The users domain written for the ``eventsourcing`` package (as examples/users is for kes).

Module level, because eventsourcing registers each class by its import path once.
"""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.sqlite import SQLiteDatastore, SQLiteFactory


class ESUser(Aggregate):
    @event("UserCreated")
    def __init__(self, username: str, email: str) -> None:
        self.username = username
        self.email = email
        self.active = True

    @event("UserRenamed")
    def rename(self, username: str) -> None:
        self.username = username


class Users(Application[uuid.UUID]):
    """An eventsourcing application holding ESUser aggregates."""


class SynchronousSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite module (WAL), with ``PRAGMA synchronous`` taken from
    ``SQLITE_SYNCHRONOUS`` (``FULL``: SQLite's default, an fsync per commit; ``NORMAL``:
    WAL synced at checkpoints only) on every connection, and ``SQLITE_POOL_SIZE``
    connections so that no caller waits for one."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        mode = (self.env.get("SQLITE_SYNCHRONOUS") or "FULL").upper()
        if mode not in ("FULL", "NORMAL"):
            raise ValueError(f"SQLITE_SYNCHRONOUS must be FULL or NORMAL, got {mode!r}")
        size = int(self.env.get("SQLITE_POOL_SIZE") or "5")
        self.datastore.close()
        self.datastore = SQLiteDatastore(
            db_name=self.env.get(self.SQLITE_DBNAME) or "",
            pool_size=size,
            max_overflow=0,
            pool_timeout=60.0,
        )
        pool = self.datastore.pool
        create = pool._create_connection

        def create_with_mode() -> Any:
            conn = create()
            conn._sqlite_conn.execute(f"PRAGMA synchronous={mode}")
            return conn

        pool._create_connection = create_with_mode  # type: ignore[method-assign]
