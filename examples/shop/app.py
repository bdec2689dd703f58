"""The shop service: FastAPI on kes.aio.

Commands are POST endpoints; each answers with the order's new state and its version as
the ``ETag``. Optimistic concurrency the HTTP way:

* a command on an existing order needs ``If-Match: "<version>"`` (428 without it;
  ``If-Match: *`` runs it on the latest state, retrying on conflict);
* a stale ``If-Match`` gets 412 with the actual version (body ``actualVersion`` and the
  current ``ETag``); placing an order that exists gets 409 with its version;
* ``Idempotency-Key`` makes a retried command (a lost response, a restarted server)
  write nothing new: its event ids derive from the key and the store recognises them.

Queries (GET) are served from the exactly-once read model (``read_model.py``), which lags
the commands by some milliseconds; ``GET /orders/{id}?minVersion=N`` waits (up to 2 s)
until it shows version N, so a client reads its own writes. Errors are problem details (RFC 9457,
``application/problem+json``). The OpenAPI document is at ``/openapi.json``.

    make shop      # broker, PostgreSQL, then uvicorn examples.shop.app:app on 127.0.0.1

Environment: ``KES_*`` (Kafka; see kes.KafkaConfig), ``KES_SHOP_DB`` (the read model's
PostgreSQL; ``none`` serves commands only), ``KES_SHOP_TABLES`` (table prefix, default
``shop``), ``KES_SHOP_API=threaded`` (the threaded store on a 64-thread pool instead of
the native asyncio one: the benchmark's comparison).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response

from examples.shop.domain import Order
from examples.shop.models import (
    AddLine,
    Cancel,
    IdempotencyKey,
    IfMatch,
    OrderView,
    Pay,
    PlaceOrder,
    RemoveLine,
    etag,
    view,
)
from examples.shop.problems import Problem, install, problem_responses
from examples.shop.read_model import OrderQueries, summaries
from kes.aio import AsyncApplication, AsyncEventStore

log = logging.getLogger("examples.shop")
READ_WAIT_S = 2.0  # the longest a query waits for the read model to reach ``minVersion``


# ---- the service --------------------------------------------------------------------


@dataclass
class Shop:
    """What the endpoints use: the application and the read model's queries."""

    app: AsyncApplication
    queries: OrderQueries | None = None

    async def place(self, body: PlaceOrder, key: str | None) -> Order:
        order = Order(body.order_id or str(uuid.uuid4()), body.customer)
        await self.app.save(order, metadata=_meta(key), idempotency_key=key)
        return order

    async def command(
        self, order_id: str, if_match: str | None, key: str | None, run: Callable[[Order], None]
    ) -> Order:
        """Run ``run`` on the order at the version ``If-Match`` names, and save."""
        if if_match is None:
            raise Problem(
                428,
                "If-Match required",
                f"commands on order {order_id!r} need If-Match with the version they were "
                'decided on ("<version>", from the ETag), or If-Match: * for the latest.',
                code="precondition_required",
            )
        if if_match.strip() == "*":

            def apply(order: Order) -> Order:
                run(order)
                return order

            await self.app.update(Order, order_id, apply, metadata=_meta(key), idempotency_key=key)
            # The stored state (the command's own object differs from it when this was a
            # retry recognised as already saved).
            return await self.app.get(Order, order_id)
        wanted = _version(if_match)
        order = await self.app.get(Order, order_id)  # the cached state, caught up
        if order.version != wanted:
            if key is None or order.version < wanted:
                raise _stale(order_id, wanted, order.version)
            # A retry of a command that may have been saved already: decide it again on
            # the state it was first decided on; its events are recognised if stored.
            order = await self.app.get(Order, order_id, version=wanted)
        run(order)
        await self.app.save(order, metadata=_meta(key), idempotency_key=key)
        return order


def _meta(key: str | None) -> dict[str, str]:
    return {"commandId": key} if key else {}


def _version(if_match: str) -> int:
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise Problem(
            400,
            "Bad If-Match",
            f'If-Match must be a version in quotes ("3") or *, got {if_match!r}.',
            code="bad_if_match",
        )
    return int(text)


def _stale(order_id: str, expected: int, actual: int) -> Problem:
    return Problem(
        412,
        "Precondition failed",
        f"order {order_id!r} is at version {actual}, not {expected}: it changed since you read "
        "it. Read it again and decide the command on its current state.",
        code="stale_version",
        actual_version=actual,
    )


def create_app(
    application: AsyncApplication | None = None,
    read_model: str | None = None,
    tables: str | None = None,
    project: bool = True,
) -> FastAPI:
    """The service. Without arguments it is configured from the environment at start-up
    (see the module docstring); tests pass an application and a read-model DSN."""
    tables = tables or os.environ.get("KES_SHOP_TABLES", "shop")

    @contextlib.asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        app = application or _from_env()
        dsn = read_model if read_model is not None else os.environ.get("KES_SHOP_DB", "none")
        async with contextlib.AsyncExitStack() as stack:
            if application is None:
                stack.push_async_callback(app.close)
            queries = None
            if dsn != "none":
                queries = await stack.enter_async_context(_read_model(app, dsn, tables, project))
            api.state.shop = Shop(app, queries)
            yield

    api = FastAPI(
        title="kes shop",
        version="1.0",
        summary="Orders on kes.aio: commands with ETag/If-Match, queries from a read model.",
        lifespan=lifespan,
        responses=problem_responses(422),
    )
    install(api)

    def shop(request: Request) -> Shop:
        found: Shop = request.app.state.shop
        return found

    def answer(response: Response, order: Order) -> OrderView:
        response.headers["ETag"] = etag(order.version)
        response.headers["Location"] = f"/orders/{order.id}"
        return view(order)

    @api.post(
        "/orders",
        status_code=201,
        response_model=OrderView,
        responses=problem_responses(409),
        summary="Place an order",
    )
    async def place(
        body: PlaceOrder,
        request: Request,
        response: Response,
        idempotency_key: IdempotencyKey = None,
    ) -> OrderView:
        return answer(response, await shop(request).place(body, idempotency_key))

    commands: dict[str, Any] = {
        "response_model": OrderView,
        "responses": problem_responses(400, 404, 409, 412, 428),
    }

    @api.post("/orders/{order_id}/add-line", summary="Add a line", **commands)
    async def add_line(
        order_id: str,
        body: AddLine,
        request: Request,
        response: Response,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> OrderView:
        order = await shop(request).command(
            order_id,
            if_match,
            idempotency_key,
            lambda o: o.add_line(body.sku, body.quantity, body.price),
        )
        return answer(response, order)

    @api.post("/orders/{order_id}/remove-line", summary="Remove a line", **commands)
    async def remove_line(
        order_id: str,
        body: RemoveLine,
        request: Request,
        response: Response,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> OrderView:
        order = await shop(request).command(
            order_id, if_match, idempotency_key, lambda o: o.remove_line(body.sku)
        )
        return answer(response, order)

    @api.post("/orders/{order_id}/pay", summary="Pay the order's total", **commands)
    async def pay(
        order_id: str,
        body: Pay,
        request: Request,
        response: Response,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> OrderView:
        order = await shop(request).command(
            order_id, if_match, idempotency_key, lambda o: o.pay(body.amount)
        )
        return answer(response, order)

    @api.post("/orders/{order_id}/cancel", summary="Cancel an open order", **commands)
    async def cancel(
        order_id: str,
        body: Cancel,
        request: Request,
        response: Response,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> OrderView:
        order = await shop(request).command(
            order_id, if_match, idempotency_key, lambda o: o.cancel(body.reason)
        )
        return answer(response, order)

    @api.get(
        "/orders/{order_id}",
        response_model=OrderView,
        responses=problem_responses(404, 503),
        summary="An order, from the read model",
    )
    async def get_order(
        order_id: str,
        request: Request,
        response: Response,
        min_version: Annotated[
            int | None,
            Query(
                alias="minVersion",
                ge=1,
                description="wait (up to 2 s) until the read model has this version: read "
                "your own writes by passing the version a command answered",
            ),
        ] = None,
    ) -> Any:
        queries = _queries(shop(request))
        found = await queries.order(order_id)
        deadline = time.monotonic() + READ_WAIT_S
        while min_version is not None and time.monotonic() < deadline:
            if found is not None and found["version"] >= min_version:
                break
            await asyncio.sleep(0.02)
            found = await queries.order(order_id)
        if found is None:
            raise Problem(
                404,
                "No such order",
                f"the read model has no order {order_id!r} (yet: it lags commands by "
                "milliseconds; pass minVersion to wait for your own writes).",
                code="not_found",
            )
        response.headers["ETag"] = etag(found["version"])
        return found

    @api.get(
        "/orders",
        response_model=list[OrderView],
        responses=problem_responses(503),
        summary="Orders by customer and status, from the read model",
    )
    async def list_orders(
        request: Request,
        customer: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Any:
        return await _queries(shop(request)).orders(customer, status, limit)

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return api


def _queries(shop: Shop) -> OrderQueries:
    if shop.queries is None:
        raise Problem(
            503,
            "No read model",
            "this instance serves commands only (KES_SHOP_DB=none).",
            code="no_read_model",
        )
    return shop.queries


def _from_env() -> AsyncApplication:
    """kes.aio on Kafka, or (``KES_SHOP_API=threaded``) the threaded store in a pool."""
    if os.environ.get("KES_SHOP_API", "asyncio") == "threaded":
        from kes import KafkaEventStore

        return AsyncApplication(AsyncEventStore(KafkaEventStore(), threads=64))
    return AsyncApplication.from_env(snapshots=False)


@contextlib.asynccontextmanager
async def _read_model(
    app: AsyncApplication, dsn: str, tables: str, project: bool
) -> AsyncIterator[OrderQueries]:
    """The read model's queries, and (``project``) its projection running in a thread."""
    from psycopg_pool import AsyncConnectionPool

    from kes.projections import ProjectionRunner

    projection = summaries(tables)
    runner: ProjectionRunner | None = None
    thread: threading.Thread | None = None
    if project:
        config = getattr(app.store.sync, "config", None)
        runner = await app.store.run_blocking(
            lambda: ProjectionRunner(projection, config, database=dsn)
        )
        thread = threading.Thread(target=runner.run, name="shop-read-model", daemon=True)
        thread.start()
    pool = AsyncConnectionPool(dsn, min_size=2, max_size=8, open=False)
    await pool.open()
    try:
        yield OrderQueries(pool, tables)
    finally:
        await pool.close()
        if runner is not None and thread is not None:
            runner.stop()
            await app.store.run_blocking(thread.join, 30)


app = create_app()
