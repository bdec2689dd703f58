"""The checkpoint stores of SQL read models (SQLite and PostgreSQL) against one contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kes.projections.checkpoints import PostgresCheckpointStore, SqliteCheckpointStore
from kes.testing import CheckpointStoreContract
from tests.pg import postgres_dsn


class TestSqliteCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def checkpoints(self, tmp_path: Path) -> Iterator[SqliteCheckpointStore]:
        store = SqliteCheckpointStore(tmp_path / "rm.db")
        yield store
        store.close()


@pytest.mark.kafka  # runs where the PostgreSQL of the Kafka tests runs
class TestPostgresCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def checkpoints(self) -> Iterator[PostgresCheckpointStore]:
        import psycopg

        admin_dsn = postgres_dsn()
        name = f"kes_cp_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        dsn = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
        store = PostgresCheckpointStore(dsn)
        yield store
        store.close()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name}")
