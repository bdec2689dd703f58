"""A projection process for fault tests, and the projections the tests run.

``Totals`` (exactly once into SQL) counts events and sums ``amount`` per aggregate;
``Applied`` (at-least-once / at-most-once) logs every event id it handles into a SQLite
file, committing each row at once, so duplicates and gaps can be counted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sqlite3
import threading
import time
from typing import Any, ClassVar

from kes.envelope import RecordedEvent
from kes.projections import (
    AsyncTx,
    Guarantee,
    Projection,
    ProjectionRunner,
    SqlProjection,
    Tx,
)
from kes.store.kafka import KafkaConfig


class Totals(SqlProjection):
    """Per aggregate: how many ``Added`` events, and the sum of their ``amount``."""

    name = "totals"
    aggregate_types = ("Acct",)
    table: ClassVar[str] = "totals"

    def setup(self, tx: Tx) -> None:
        tx.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (aggregate_id TEXT PRIMARY KEY, "
            "n BIGINT NOT NULL, amount BIGINT NOT NULL)"
        )

    def reset(self, tx: Tx) -> None:
        tx.execute(f"DELETE FROM {self.table}")

    def on_Added(self, event: RecordedEvent, tx: Tx) -> None:
        if event.payload.get("poison"):
            raise ValueError(f"poison event {event.event_id}")
        tx.execute(
            f"INSERT INTO {self.table} (aggregate_id, n, amount) VALUES (?, 1, ?) "
            f"ON CONFLICT (aggregate_id) DO UPDATE SET n = {self.table}.n + 1, "
            f"amount = {self.table}.amount + excluded.amount",
            (event.aggregate_id, int(event.payload["amount"])),
        )


class AsyncTotals(SqlProjection):
    """:class:`Totals` with ``async def`` handlers on PostgreSQL's asyncio driver."""

    name = "totals"
    aggregate_types = ("Acct",)
    table: ClassVar[str] = "totals"

    async def setup(self, tx: AsyncTx) -> None:
        await tx.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (aggregate_id TEXT PRIMARY KEY, "
            "n BIGINT NOT NULL, amount BIGINT NOT NULL)"
        )

    async def reset(self, tx: AsyncTx) -> None:
        await tx.execute(f"DELETE FROM {self.table}")

    async def on_Added(self, event: RecordedEvent, tx: AsyncTx) -> None:
        if event.payload.get("poison"):
            raise ValueError(f"poison event {event.event_id}")
        await asyncio.sleep(0)  # a real await between statements
        await tx.execute(
            f"INSERT INTO {self.table} (aggregate_id, n, amount) VALUES (?, 1, ?) "
            f"ON CONFLICT (aggregate_id) DO UPDATE SET n = {self.table}.n + 1, "
            f"amount = {self.table}.amount + excluded.amount",
            (event.aggregate_id, int(event.payload["amount"])),
        )


class Applied(Projection):
    """Logs each handled event id into a SQLite file (one autocommitted row each)."""

    name = "applied"
    aggregate_types = ("Acct",)
    path: ClassVar[str] = "applied.db"
    delay_s: ClassVar[float] = 0.0

    def __init__(self) -> None:
        super().__init__()
        # The runner calls handlers from its own thread, maybe not the one making this.
        self.db = sqlite3.connect(
            self.path, timeout=60, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS applied (event_id TEXT, pid INTEGER)")

    def on_Added(self, event: RecordedEvent) -> None:
        if event.payload.get("poison"):
            raise ValueError(f"poison event {event.event_id}")
        if self.delay_s:
            time.sleep(self.delay_s)
        self.db.execute("INSERT INTO applied VALUES (?, ?)", (event.event_id, os.getpid()))


def totals_class(name: str, aggregate_type: str, table: str) -> type[Totals]:
    attrs: dict[str, Any] = {"name": name, "aggregate_types": (aggregate_type,), "table": table}
    return type("Totals", (Totals,), attrs)


def async_totals_class(name: str, aggregate_type: str, table: str) -> type[AsyncTotals]:
    attrs: dict[str, Any] = {"name": name, "aggregate_types": (aggregate_type,), "table": table}
    return type("AsyncTotals", (AsyncTotals,), attrs)


def applied_class(
    name: str, aggregate_type: str, path: str, guarantee: Guarantee, delay_s: float = 0.0
) -> type[Applied]:
    attrs: dict[str, Any] = {
        "name": name,
        "aggregate_types": (aggregate_type,),
        "path": path,
        "processing_guarantee": guarantee,
        "delay_s": delay_s,
    }
    return type("Applied", (Applied,), attrs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="KafkaConfig fields as JSON")
    ap.add_argument("--kind", choices=["totals", "totals_async", "applied"], required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--type", default="Acct")
    ap.add_argument("--db", required=True, help="database URL (totals) or SQLite file")
    ap.add_argument("--table", default="totals")
    ap.add_argument("--guarantee", default="at_least_once")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--assignments", help="file to append assignment changes to")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config = KafkaConfig(**json.loads(args.config))
    projection: Projection
    if args.kind == "totals":
        projection = totals_class(args.name, args.type, args.table)()
        database: str | None = args.db
    elif args.kind == "totals_async":
        projection = async_totals_class(args.name, args.type, args.table)()
        database = args.db
    else:
        projection = applied_class(args.name, args.type, args.db, args.guarantee, args.delay)()
        database = None

    lock = threading.Lock()

    def assignment(parts: set[tuple[str, int]]) -> None:
        if args.assignments:
            line = json.dumps({"pid": os.getpid(), "t": time.time(), "parts": sorted(parts)})
            with lock, open(args.assignments, "a") as f:
                f.write(line + "\n")

    runner = ProjectionRunner(
        projection, config, database=database, batch_size=args.batch, on_assignment=assignment
    )
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    runner.run()


if __name__ == "__main__":
    main()
