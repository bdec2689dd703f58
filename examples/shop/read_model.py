"""The shop's read model: orders and their lines in PostgreSQL, exactly once, written by
``async def`` handlers through psycopg's asyncio driver; queried by the service.

Run it on its own: ``kes project run examples.shop.read_model:OrderSummaries``
(``KES_PROJECTION_DB=postgresql://...``); the service runs it in-process by default.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kes import RecordedEvent
from kes.projections import AsyncTx, SqlProjection


class OrderSummaries(SqlProjection):
    """Orders by id with status, version and lines; exactly once into PostgreSQL."""

    name = "examples.shop.orders"
    aggregate_types = ("Order",)
    database = "postgresql://postgres@127.0.0.1:15432/postgres"
    #: table names start with this (tests use one prefix each)
    prefix: ClassVar[str] = "shop"

    async def setup(self, tx: AsyncTx) -> None:
        p = self.prefix
        await tx.execute(
            f"CREATE TABLE IF NOT EXISTS {p}_orders (order_id TEXT PRIMARY KEY, "
            "customer TEXT NOT NULL, status TEXT NOT NULL, paid NUMERIC NOT NULL DEFAULT 0, "
            "version INTEGER NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"
        )
        await tx.execute(f"CREATE INDEX IF NOT EXISTS {p}_orders_customer ON {p}_orders (customer)")
        await tx.execute(
            f"CREATE TABLE IF NOT EXISTS {p}_order_lines (order_id TEXT NOT NULL, "
            "sku TEXT NOT NULL, quantity INTEGER NOT NULL, price NUMERIC NOT NULL, "
            "PRIMARY KEY (order_id, sku))"
        )

    async def reset(self, tx: AsyncTx) -> None:
        await tx.execute(f"DELETE FROM {self.prefix}_order_lines")
        await tx.execute(f"DELETE FROM {self.prefix}_orders")

    async def _touch(self, tx: AsyncTx, event: RecordedEvent, status: str | None = None) -> None:
        sql = f"UPDATE {self.prefix}_orders SET version = ?, updated_at = ?"
        params: list[Any] = [event.version, event.timestamp]
        if status is not None:
            sql += ", status = ?"
            params.append(status)
        if event.event_type == "OrderPaid":
            sql += ", paid = ?"
            params.append(event.payload["amount"])
        await tx.execute(sql + " WHERE order_id = ?", [*params, event.aggregate_id])

    async def on_OrderPlaced(self, event: RecordedEvent, tx: AsyncTx) -> None:
        await tx.execute(
            f"INSERT INTO {self.prefix}_orders (order_id, customer, status, version, updated_at) "
            "VALUES (?, ?, 'open', ?, ?)",
            (event.aggregate_id, event.payload["customer"], event.version, event.timestamp),
        )

    async def on_LineAdded(self, event: RecordedEvent, tx: AsyncTx) -> None:
        p = event.payload
        await tx.execute(
            f"INSERT INTO {self.prefix}_order_lines (order_id, sku, quantity, price) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (order_id, sku) DO UPDATE SET "
            f"quantity = {self.prefix}_order_lines.quantity + excluded.quantity, "
            "price = excluded.price",
            (event.aggregate_id, p["sku"], p["quantity"], p["price"]),
        )
        await self._touch(tx, event)

    async def on_LineRemoved(self, event: RecordedEvent, tx: AsyncTx) -> None:
        await tx.execute(
            f"DELETE FROM {self.prefix}_order_lines WHERE order_id = ? AND sku = ?",
            (event.aggregate_id, event.payload["sku"]),
        )
        await self._touch(tx, event)

    async def on_OrderPaid(self, event: RecordedEvent, tx: AsyncTx) -> None:
        await self._touch(tx, event, "paid")

    async def on_OrderCancelled(self, event: RecordedEvent, tx: AsyncTx) -> None:
        await self._touch(tx, event, "cancelled")


def summaries(prefix: str) -> OrderSummaries:
    """The read model writing tables ``<prefix>_orders`` and ``<prefix>_order_lines``, in a
    consumer group of its own."""
    cls = type(
        "OrderSummaries",
        (OrderSummaries,),
        {"prefix": prefix, "name": f"examples.shop.orders.{prefix}"},
    )
    projection: OrderSummaries = cls()
    return projection


class OrderQueries:
    """Reads of the read model (a pool of async connections)."""

    def __init__(self, pool: Any, prefix: str) -> None:
        self.pool = pool
        self.prefix = prefix

    async def order(self, order_id: str) -> dict[str, Any] | None:
        p = self.prefix
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT order_id, customer, status, paid, version FROM {p}_orders "
                "WHERE order_id = %s",
                (order_id,),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            cur = await conn.execute(
                f"SELECT sku, quantity, price FROM {p}_order_lines WHERE order_id = %s "
                "ORDER BY sku",
                (order_id,),
            )
            lines = await cur.fetchall()
        return _order(row, lines)

    async def orders(
        self, customer: str | None, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        p = self.prefix
        where, params = [], []
        if customer is not None:
            where.append("customer = %s")
            params.append(customer)
        if status is not None:
            where.append("status = %s")
            params.append(status)
        sql = f"SELECT order_id, customer, status, paid, version FROM {p}_orders"
        if where:
            sql += " WHERE " + " AND ".join(where)
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql + " ORDER BY order_id LIMIT %s", [*params, limit])
            rows = await cur.fetchall()
            ids = [r[0] for r in rows]
            cur = await conn.execute(
                f"SELECT order_id, sku, quantity, price FROM {p}_order_lines "
                "WHERE order_id = ANY(%s) ORDER BY sku",
                (ids,),
            )
            lines: dict[str, list[tuple[Any, ...]]] = {}
            for order_id, *line in await cur.fetchall():
                lines.setdefault(order_id, []).append(tuple(line))
        return [_order(r, lines.get(r[0], [])) for r in rows]


def _order(row: Any, lines: Any) -> dict[str, Any]:
    order_id, customer, status, paid, version = row
    items = [{"sku": s, "quantity": int(q), "price": str(p)} for s, q, p in lines]
    total = sum((p * q for _, q, p in lines), start=0)
    return {
        "orderId": order_id,
        "customer": customer,
        "status": status,
        "lines": items,
        "total": str(total),
        "paid": str(paid),
        "version": int(version),
    }
