"""The shop example (FastAPI on kes.aio), in-process through httpx's ASGI transport:
commands with ETag / If-Match / Idempotency-Key on the memory store, problem details,
the OpenAPI document; then on Kafka with its read model in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from examples.shop.app import create_app
from fastapi import FastAPI

from kes.aio import AsyncApplication, AsyncKafkaEventStore, AsyncMemoryEventStore
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.pg import postgres_dsn

T = TypeVar("T")
Scenario = Callable[[httpx.AsyncClient, AsyncApplication], Awaitable[None]]


async def _serve(api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        api.router.lifespan_context(api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://shop") as http,
    ):
        yield http


def on_memory(scenario: Scenario) -> None:
    async def main() -> None:
        app = AsyncApplication(AsyncMemoryEventStore())
        async for http in _serve(create_app(app, read_model="none")):
            await scenario(http, app)

    asyncio.run(main())


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def place(http: httpx.AsyncClient, order_id: str = "o1") -> httpx.Response:
    r = await http.post("/orders", json={"orderId": order_id, "customer": "ada"})
    assert r.status_code == 201, r.text
    return r


def test_commands_answer_the_new_state_with_the_version_as_etag() -> None:
    async def scenario(http: httpx.AsyncClient, app: AsyncApplication) -> None:
        r = await place(http)
        assert r.headers["etag"] == '"1"' and r.headers["location"] == "/orders/o1"
        line = {"sku": "tea", "quantity": 2, "price": "4.50"}
        r = await http.post("/orders/o1/add-line", json=line, headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.headers["etag"] == '"2"'
        assert r.json()["total"] == "9.00" and r.json()["lines"][0]["sku"] == "tea"
        r = await http.post("/orders/o1/pay", json={"amount": "9.00"}, headers={"If-Match": '"2"'})
        assert r.status_code == 200 and r.json()["status"] == "paid"
        assert r.json()["version"] == 3

    on_memory(scenario)


def test_stale_if_match_is_412_with_the_actual_version_and_nothing_is_written() -> None:
    async def scenario(http: httpx.AsyncClient, app: AsyncApplication) -> None:
        await place(http)
        line = {"sku": "tea", "quantity": 1, "price": "1"}
        await http.post("/orders/o1/add-line", json=line, headers={"If-Match": '"1"'})
        r = await http.post("/orders/o1/add-line", json=line, headers={"If-Match": '"1"'})
        assert r.status_code == 412
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["etag"] == '"2"'
        body = r.json()
        assert body["actualVersion"] == 2 and body["status"] == 412
        assert body["code"] == "stale_version" and "version 2, not 1" in body["detail"]
        assert body["instance"] == "/orders/o1/add-line"
        assert await app.store.stream_version("Order", "o1") == 2

    on_memory(scenario)


def test_missing_if_match_is_428_and_star_runs_on_the_latest_state() -> None:
    async def scenario(http: httpx.AsyncClient, app: AsyncApplication) -> None:
        await place(http)
        line = {"sku": "tea", "quantity": 1, "price": "1"}
        r = await http.post("/orders/o1/add-line", json=line)
        assert r.status_code == 428 and r.json()["code"] == "precondition_required"
        r = await http.post("/orders/o1/add-line", json=line, headers={"If-Match": "*"})
        assert r.status_code == 200 and r.headers["etag"] == '"2"'
        r = await http.post("/orders/o1/add-line", json=line, headers={"If-Match": "soon"})
        assert r.status_code == 400 and r.json()["code"] == "bad_if_match"

    on_memory(scenario)


def test_placing_an_existing_order_is_409_with_its_version() -> None:
    async def scenario(http: httpx.AsyncClient, app: AsyncApplication) -> None:
        await place(http)
        r = await http.post("/orders", json={"orderId": "o1", "customer": "bob"})
        assert r.status_code == 409
        assert r.json()["code"] == "exists" and r.json()["actualVersion"] == 1

    on_memory(scenario)


def test_domain_rules_are_problems_409_or_422_and_unknown_orders_404() -> None:
    async def scenario(http: httpx.AsyncClient, app: AsyncApplication) -> None:
        await place(http)
        r = await http.post("/orders/o1/pay", json={"amount": "0"}, headers={"If-Match": '"1"'})
        assert (r.status_code, r.json()["code"]) == (409, "order_empty")
        r = await http.post(
            "/orders/o1/remove-line", json={"sku": "nope"}, headers={"If-Match": '"1"'}
        )
        assert (r.status_code, r.json()["code"]) == (409, "unknown_line")
        r = await http.post("/orders/o1/cancel", json={}, headers={"If-Match": '"1"'})
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        line = {"sku": "tea", "quantity": 1, "price": "1"}
        r = await http.post("/orders/o1/add-line", json=line, headers={"If-Match": '"2"'})
        assert (r.status_code, r.json()["code"]) == (409, "order_closed")
        assert "it is cancelled" in r.json()["detail"]
        r = await http.post("/orders/zz/add-line", json=line, headers={"If-Match": '"1"'})
        assert (r.status_code, r.json()["code"]) == (404, "not_found")
        bad = {"sku": "tea", "quantity": 0, "price": "x"}
        r = await http.post("/orders/o1/add-line", json=bad, headers={"If-Match": '"2"'})
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert {tuple(e["loc"])[-1] for e in r.json()["errors"]} == {"quantity", "price"}
        assert await app.store.stream_version("Order", "o1") == 2

    on_memory(scenario)


def test_a_retried_command_with_its_idempotency_key_writes_nothing_new() -> None:
    async def scenario(http: httpx.AsyncClient, app: AsyncApplication) -> None:
        r = await http.post(
            "/orders", json={"orderId": "o1", "customer": "ada"}, headers={"Idempotency-Key": "k0"}
        )
        again = await http.post(
            "/orders", json={"orderId": "o1", "customer": "ada"}, headers={"Idempotency-Key": "k0"}
        )
        assert (r.status_code, again.status_code) == (201, 201)
        line = {"sku": "tea", "quantity": 1, "price": "2"}
        headers = {"If-Match": '"1"', "Idempotency-Key": "k1"}
        first = await http.post("/orders/o1/add-line", json=line, headers=headers)
        retry = await http.post("/orders/o1/add-line", json=line, headers=headers)
        assert first.status_code == retry.status_code == 200
        assert first.json() == retry.json() and retry.headers["etag"] == '"2"'
        events = await app.store.read_stream("Order", "o1")
        assert [e.version for e in events] == [1, 2]
        assert [e.metadata["commandId"] for e in events] == ["k0", "k1"]
        # With If-Match: * the retry runs on the latest state and is still recognised.
        star = {"If-Match": "*", "Idempotency-Key": "k3"}
        first = await http.post("/orders/o1/add-line", json=line, headers=star)
        retry = await http.post("/orders/o1/add-line", json=line, headers=star)
        assert first.status_code == retry.status_code == 200
        assert retry.headers["etag"] == '"3"' and retry.json()["lines"][0]["quantity"] == 2
        assert await app.store.stream_version("Order", "o1") == 3
        # Another command with the old version and a new key is stale, not a retry.
        other = await http.post(
            "/orders/o1/add-line", json=line, headers={"If-Match": '"1"', "Idempotency-Key": "k2"}
        )
        assert other.status_code == 412

    on_memory(scenario)


def test_the_openapi_document_describes_commands_queries_and_problems() -> None:
    async def scenario(http: httpx.AsyncClient, app: AsyncApplication) -> None:
        doc = (await http.get("/openapi.json")).json()
        paths = doc["paths"]
        assert set(paths) >= {
            "/orders",
            "/orders/{order_id}",
            "/orders/{order_id}/add-line",
            "/orders/{order_id}/remove-line",
            "/orders/{order_id}/pay",
            "/orders/{order_id}/cancel",
        }
        pay = paths["/orders/{order_id}/pay"]["post"]
        assert {"412", "428", "409"} <= set(pay["responses"])
        assert "application/problem+json" in pay["responses"]["412"]["content"]
        assert {p["name"] for p in pay["parameters"]} >= {"if-match", "idempotency-key"}
        assert "ProblemDetails" in doc["components"]["schemas"]
        r = await http.get("/orders/o1")
        assert r.status_code == 503 and r.json()["code"] == "no_read_model"

    on_memory(scenario)


# ---- on Kafka, with the read model in PostgreSQL ---------------------------------------


@pytest.mark.kafka
def test_queries_are_served_from_the_exactly_once_read_model(
    kafka_config: KafkaConfig, unique: str
) -> None:
    import psycopg

    dsn = postgres_dsn()
    tables = f"shop_{unique}"

    async def main() -> None:
        app = AsyncApplication(AsyncKafkaEventStore(store=KafkaEventStore(kafka_config)))
        try:
            async for http in _serve(create_app(app, read_model=dsn, tables=tables)):
                ids = [f"o{i}-{uuid.uuid4().hex[:4]}" for i in range(5)]
                for i, order_id in enumerate(ids):
                    await place(http, order_id)
                    line = {"sku": f"s{i}", "quantity": i + 1, "price": "2.5"}
                    r = await http.post(
                        f"/orders/{order_id}/add-line", json=line, headers={"If-Match": '"1"'}
                    )
                    assert r.status_code == 200, r.text
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    r = await http.get("/orders", params={"customer": "ada"})
                    done = r.status_code == 200 and len(r.json()) == 5
                    if done and all(o["version"] == 2 for o in r.json()):
                        break
                    await asyncio.sleep(0.2)
                listed = {o["orderId"]: o for o in r.json()}
                assert set(listed) == set(ids)
                one = await http.get(f"/orders/{ids[2]}")
                assert one.status_code == 200 and one.headers["etag"] == '"2"'
                assert one.json()["total"] == "7.5" and one.json()["lines"][0]["quantity"] == 3
                # Read your own write: wait for the version the command answered.
                line = {"sku": "late", "quantity": 1, "price": "1"}
                r = await http.post(
                    f"/orders/{ids[0]}/add-line", json=line, headers={"If-Match": '"2"'}
                )
                assert r.headers["etag"] == '"3"'
                mine = await http.get(f"/orders/{ids[0]}", params={"minVersion": 3})
                assert mine.status_code == 200 and mine.json()["version"] == 3
                assert "late" in {x["sku"] for x in mine.json()["lines"]}
                missing = await http.get("/orders/none-such")
                assert missing.status_code == 404
                assert missing.headers["content-type"] == "application/problem+json"
        finally:
            await app.close()

    try:
        run(main())
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {tables}_orders, {tables}_order_lines")
