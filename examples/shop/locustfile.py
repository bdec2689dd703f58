"""A load of shoppers for the shop service (Locust).

    locust -f examples/shop/locustfile.py --headless -u 64 -r 64 -t 30s -H http://127.0.0.1:8000

Each shopper places an order, adds lines (If-Match: the ETag it got), sometimes removes
one, looks the order up (read model), then pays or cancels, and lists its customer's
orders. Every command carries an ``Idempotency-Key``; a command that got no answer (a
connection error: the server was killed) or a 5xx is retried with the same key, so the
retry writes nothing twice. With ``SHOP_LOAD_LOG=path`` every command's outcome is written
there as a JSON line (time, kind, key, order, status, version), and every query's
status: the load test checks each 2xx command against the log of events.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from decimal import Decimal
from typing import Any, TextIO

from locust import FastHttpUser, between, task

_log: TextIO | None = None
RETRIES = 40  # 0.5 s apart: rides out a restart of the service


def record(**row: Any) -> None:
    global _log
    path = os.environ.get("SHOP_LOAD_LOG")
    if not path:
        return
    if _log is None:
        _log = open(path, "a", buffering=1)  # noqa: SIM115 - one line-buffered file per process
    _log.write(json.dumps({"t": time.time(), **row}) + "\n")


class Shopper(FastHttpUser):
    wait_time = between(0.0, 0.02)

    def command(
        self, kind: str, order_id: str, path: str, body: dict[str, Any], version: int | None
    ) -> dict[str, Any] | None:
        """Send a command until it is answered (same Idempotency-Key on every try)."""
        key = uuid.uuid4().hex
        headers = {"Idempotency-Key": key}
        if version is not None:
            headers["If-Match"] = f'"{version}"'
        for _ in range(RETRIES):
            with self.client.post(
                path, json=body, headers=headers, name=kind, catch_response=True
            ) as r:
                status = r.status_code or 0
                ok = 200 <= status < 300
                data = r.json() if ok else None
                record(
                    kind=kind,
                    key=key,
                    order=order_id,
                    status=status,
                    version=data["version"] if data else None,
                )
                if status in (400, 404, 409, 412, 422, 428):
                    r.success()  # a decided answer: the flow goes on without this order
                    return None
                if ok:
                    r.success()
                    return dict(data or {})
                r.failure(f"{status}: retrying with the same Idempotency-Key")
            time.sleep(0.5)  # cooperative: Locust patches time.sleep for gevent
        return None

    @task
    def shop(self) -> None:
        order_id = f"o-{uuid.uuid4().hex[:12]}"
        customer = f"c{random.randrange(100)}"
        order = self.command(
            "place", order_id, "/orders", {"orderId": order_id, "customer": customer}, None
        )
        if order is None:
            return
        for _ in range(random.randint(1, 3)):
            line = {
                "sku": f"sku-{random.randrange(20)}",
                "quantity": random.randint(1, 3),
                "price": f"{random.randint(100, 2000) / 100:.2f}",
            }
            order = self.command(
                "add-line", order_id, f"/orders/{order_id}/add-line", line, order["version"]
            )
            if order is None:
                return
        if random.random() < 0.3 and len(order["lines"]) > 1:
            sku = order["lines"][0]["sku"]
            order = self.command(
                "remove-line",
                order_id,
                f"/orders/{order_id}/remove-line",
                {"sku": sku},
                order["version"],
            )
            if order is None:
                return
        with self.client.get(
            f"/orders/{order_id}?minVersion={order['version']}",
            name="get order",
            catch_response=True,
        ) as r:
            record(kind="get order", key=None, order=order_id, status=r.status_code or 0)
            if r.status_code in (200, 404):  # 404: the read model was 2 s behind
                r.success()
        if random.random() < 0.8:
            total = str(Decimal(order["total"]))
            self.command(
                "pay", order_id, f"/orders/{order_id}/pay", {"amount": total}, order["version"]
            )
        else:
            self.command(
                "cancel", order_id, f"/orders/{order_id}/cancel", {"reason": "no"}, order["version"]
            )
        r = self.client.get(f"/orders?customer={customer}&limit=20", name="list orders")
        record(kind="list orders", key=None, order=None, status=r.status_code or 0)
