"""Read-model databases that keep their consumed offsets in the same transaction.

Table ``kes_offsets(projection, topic, partition, next_offset)``: the next offset to
read of each partition. A batch's read-model changes and its offset advance commit in
one transaction, and the advance is a compare-and-set against the offset the batch
started from: a process that lost a partition (or found it moved on) cannot commit
stale work, so every event takes effect exactly once.
"""

from __future__ import annotations

import abc
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from kes.projections._aio import run
from kes.projections.errors import CheckpointConflictError, ProjectionError

Dialect = Literal["sqlite", "postgresql"]
TopicPartitionKey = tuple[str, int]

OFFSETS_DDL = (
    "CREATE TABLE IF NOT EXISTS kes_offsets ("
    " projection TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,"
    " next_offset BIGINT NOT NULL, PRIMARY KEY (projection, topic, partition))"
)


def to_pyformat(sql: str) -> str:
    """``?`` placeholders to psycopg's ``%s`` (and ``%`` to ``%%``), outside quotes."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


LOAD_SQL = "SELECT topic, partition, next_offset FROM kes_offsets WHERE projection = ?"
INSERT_SQL = (
    "INSERT INTO kes_offsets (projection, topic, partition, next_offset) "
    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
UPDATE_SQL = (
    "UPDATE kes_offsets SET next_offset = ? WHERE projection = ? AND "
    "topic = ? AND partition = ? AND next_offset = ?"
)


class Tx:
    """The open transaction a handler writes through. Write ``?`` placeholders."""

    def __init__(self, connection: Any, dialect: Dialect, pipeline: Any = None) -> None:
        self.connection = connection
        self.dialect: Dialect = dialect
        self._cache: dict[str, str] = {}
        self._pipeline = pipeline

    def sync(self) -> None:
        """Wait for every statement sent so far (PostgreSQL pipelines them)."""
        if self._pipeline is not None:
            self._pipeline.sync()

    def _sql(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        converted = self._cache.get(sql)
        if converted is None:
            converted = self._cache[sql] = to_pyformat(sql)
        return converted

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the DB-API cursor (``fetchone``, ``rowcount``...)."""
        return self.connection.execute(self._sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "sqlite":
            self.connection.executemany(sql, rows)
        else:
            with self.connection.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a SELECT."""
        return [tuple(r) for r in self.execute(sql, params).fetchall()]


class CheckpointStore(abc.ABC):
    """A database holding read models and the offsets they were built to."""

    dialect: Dialect
    url: str

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Tx]:
        """One transaction: committed when the block ends, rolled back on an exception."""

    def setup(self) -> None:
        """Create ``kes_offsets``. Processes starting together race on CREATE TABLE IF
        NOT EXISTS (PostgreSQL then reports a unique violation): the loser tries again."""
        for attempt in range(5):
            try:
                with self.transaction() as tx:
                    self._execute(tx, OFFSETS_DDL)
                return
            except Exception as exc:
                if attempt == 4:
                    raise ProjectionError(
                        f"cannot create kes_offsets in {self.url}: {exc}"
                    ) from exc
                time.sleep(0.2 * (attempt + 1))

    # How kes runs its own statements in ``tx`` (an async store overrides these three).

    def _execute(self, tx: Tx, sql: str, params: Sequence[Any] = ()) -> Any:
        return tx.execute(sql, params)

    def _query(self, tx: Tx, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return tx.query(sql, params)

    def _rowcounts(self, tx: Tx, cursors: list[Any]) -> list[int]:
        tx.sync()
        return [int(cur.rowcount) for cur in cursors]

    def load(self, tx: Tx, projection: str) -> dict[TopicPartitionKey, int]:
        rows = self._query(tx, LOAD_SQL, (projection,))
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    def projections(self, tx: Tx) -> list[str]:
        """The names of the projections that have offsets here."""
        rows = tx.query("SELECT DISTINCT projection FROM kes_offsets ORDER BY projection")
        return [str(name) for (name,) in rows]

    def advance(
        self,
        tx: Tx,
        projection: str,
        moves: Mapping[TopicPartitionKey, tuple[int | None, int]],
    ) -> None:
        """Move each partition's offset from ``expected`` (None: no row yet) to ``new``.

        Raises :class:`CheckpointConflictError` when a row is not at ``expected``:
        another process got there first, and this transaction must be rolled back.
        """
        cursors = []
        for (topic, partition), (expected, new) in moves.items():
            if expected is None:
                cur = self._execute(tx, INSERT_SQL, (projection, topic, partition, new))
            else:
                cur = self._execute(tx, UPDATE_SQL, (new, projection, topic, partition, expected))
            cursors.append(cur)
        counts = self._rowcounts(tx, cursors)
        for ((topic, partition), (expected, _)), count in zip(moves.items(), counts, strict=True):
            if count != 1:
                raise CheckpointConflictError(
                    f"{projection}: {topic}[{partition}] is no longer at offset {expected} in "
                    f"{self.url}; another process advanced it. This batch is rolled back and "
                    "re-read from the stored offset."
                )

    def reset(self, tx: Tx, projection: str, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Forget the projection's offsets and store ``offsets`` instead (for a replay)."""
        self._execute(tx, "DELETE FROM kes_offsets WHERE projection = ?", (projection,))
        for (topic, partition), offset in offsets.items():
            self._execute(
                tx,
                "INSERT INTO kes_offsets (projection, topic, partition, next_offset) "
                "VALUES (?, ?, ?, ?)",
                (projection, topic, partition, offset),
            )

    @abc.abstractmethod
    def close(self) -> None: ...


class SqliteCheckpointStore(CheckpointStore):
    """A SQLite file (WAL mode). Processes sharing the file take turns to write."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: str | os.PathLike[str], busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.setup()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        # IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock.
        deadline = time.monotonic() + 120
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise ProjectionError(
                        f"cannot start a write transaction on {self.path}: {exc}. Another "
                        "process holds the database; is it stuck?"
                    ) from exc
        try:
            yield Tx(self.conn, "sqlite")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class PostgresCheckpointStore(CheckpointStore):
    """A PostgreSQL database (psycopg 3), READ COMMITTED: the compare-and-set UPDATE
    waits for a concurrent writer of the same row and then sees its result."""

    dialect: Dialect = "postgresql"

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ProjectionError(
                "PostgreSQL read models need psycopg 3: pip install 'kes[postgres]'."
            ) from exc
        self.url = dsn
        try:
            self.conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise ProjectionError(
                f"cannot connect to PostgreSQL at {dsn}: {exc}. Is it running? "
                "(scripts/postgres.sh starts a local one.)"
            ) from exc
        self.setup()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        # Pipeline mode: a batch's statements go out without waiting for each reply, so
        # a read model costs a round trip per batch rather than one per statement.
        with self.conn.transaction(), self.conn.pipeline() as pipeline:
            yield Tx(self.conn, "postgresql", pipeline)

    def close(self) -> None:
        self.conn.close()


class AsyncTx(Tx):
    """The open transaction an ``async def`` handler writes through: ``await
    tx.execute(sql, params)``, ``await tx.query(...)``. Write ``?`` placeholders.
    Statements are pipelined: ``execute`` returns before the server answered (an error
    surfaces at a later statement or at the commit); ``query`` waits for its rows."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await self.connection.execute(self._sql(sql), params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:  # type: ignore[override]
        async with self.connection.cursor() as cur:
            await cur.executemany(self._sql(sql), rows)

    async def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:  # type: ignore[override]
        cur = await self.execute(sql, params)
        return [tuple(r) for r in await cur.fetchall()]


class AsyncPostgresCheckpointStore(CheckpointStore):
    """PostgreSQL through psycopg's asyncio driver, for projections with ``async def``
    handlers: the runner's thread drives each transaction on its own event loop
    (``kes.projections._aio``); the compare-and-set offsets are the same as
    :class:`PostgresCheckpointStore`'s, so the read model is exactly once all the same."""

    dialect: Dialect = "postgresql"

    def __init__(self, dsn: str) -> None:
        self.url = dsn
        self._local = threading.local()  # one connection per thread (each has its loop)
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self.setup()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                import psycopg
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ProjectionError(
                    "PostgreSQL read models need psycopg 3: pip install 'kes[postgres]'."
                ) from exc
            try:
                conn = run(psycopg.AsyncConnection.connect(self.url, autocommit=True))
            except psycopg.Error as exc:
                raise ProjectionError(
                    f"cannot connect to PostgreSQL at {self.url}: {exc}. Is it running? "
                    "(scripts/postgres.sh starts a local one.)"
                ) from exc
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        # Pipeline mode, as PostgresCheckpointStore: an awaited statement is sent without
        # waiting for its reply, so a batch costs a round trip, not one per statement.
        conn = self._connection()
        block = conn.transaction()
        run(block.__aenter__())
        try:
            piping = conn.pipeline()
            pipeline = run(piping.__aenter__())
            try:
                yield AsyncTx(conn, "postgresql", pipeline)
            except BaseException as exc:
                run(piping.__aexit__(type(exc), exc, exc.__traceback__))
                raise
            run(piping.__aexit__(None, None, None))
        except BaseException as exc:
            run(block.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        run(block.__aexit__(None, None, None))

    def _execute(self, tx: Tx, sql: str, params: Sequence[Any] = ()) -> Any:
        return run(tx.connection.execute(tx._sql(sql), params))

    def _query(self, tx: Tx, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def rows() -> list[tuple[Any, ...]]:
            cur = await tx.connection.execute(tx._sql(sql), params)
            return [tuple(r) for r in await cur.fetchall()]

        return run(rows())

    def _rowcounts(self, tx: Tx, cursors: list[Any]) -> list[int]:
        if tx._pipeline is not None:
            run(tx._pipeline.sync())
        return [int(cur.rowcount) for cur in cursors]

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                run(conn.close())


def open_checkpoints(url: str, asynchronous: bool = False) -> CheckpointStore:
    """``sqlite:///relative/or//absolute.db``, a bare file path, or ``postgresql://...``.

    ``asynchronous``: the projection has ``async def`` handlers, which need PostgreSQL
    (through psycopg's asyncio driver)."""
    if asynchronous:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ProjectionError(
                f"this projection has async def handlers, which need PostgreSQL's async "
                f"driver; its database is {url!r}. Use a postgresql:// database, or plain "
                "def handlers on SQLite."
            )
        return AsyncPostgresCheckpointStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresCheckpointStore(url)
    if url.startswith("sqlite:///"):
        return SqliteCheckpointStore(url[len("sqlite:///") :])
    if "://" in url:
        raise ProjectionError(
            f"unknown database URL {url!r}; use sqlite:///path.db or postgresql://user@host/db."
        )
    return SqliteCheckpointStore(url)
