"""The shop service as a real uvicorn process under Locust (64 shoppers, 30 s), killed
with SIGKILL in the middle and started again: every command answered 2xx is in the log
exactly once, no 5xx is answered outside the outage, and the read model converges to
what the log says."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from kes.store.kafka import KafkaConfig
from tests.faults import read_log
from tests.pg import postgres_dsn

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("KES_TEST_SHOP_PORT", "18482"))
SECONDS = int(os.environ.get("KES_SHOP_LOAD_SECONDS", "30"))
USERS = int(os.environ.get("KES_SHOP_LOAD_USERS", "64"))
OUTAGE_GRACE_S = 5.0  # after the restarted service answers /healthz


def start_service(config: KafkaConfig, dsn: str, tables: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        KES_BOOTSTRAP_SERVERS=config.bootstrap_servers,
        KES_NAMESPACE=config.namespace or "",
        KES_INDEX_DIR=config.index_dir,
        KES_PARTITIONS=str(config.partitions),
        KES_INSTANCE_ID="shop-1",  # static membership: the restart gets its partitions back
        KES_SHOP_DB=dsn,
        KES_SHOP_TABLES=tables,
    )
    cmd = [sys.executable, "-m", "uvicorn", "examples.shop.app:app", "--host", "127.0.0.1"]
    cmd += ["--port", str(PORT), "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=log.open("ab"))


def wait_ready(proc: subprocess.Popen[bytes], timeout: float = 90) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the shop service exited"
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1).status_code == 200:
                return time.time()
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the shop service did not start")


def test_shop_under_locust_with_a_kill_9_loses_and_duplicates_no_acknowledged_command(
    kafka_config: KafkaConfig, unique: str, tmp_path: Path
) -> None:
    import psycopg

    dsn = postgres_dsn()
    tables = f"shop_{unique}"
    outcomes_path = tmp_path / "outcomes.jsonl"
    server_log = tmp_path / "server.log"
    service = start_service(kafka_config, dsn, tables, server_log)
    locust: subprocess.Popen[bytes] | None = None
    try:
        wait_ready(service)
        httpx.post(  # warm up: topics, writer group, takeovers, read model tables
            f"http://127.0.0.1:{PORT}/orders", json={"customer": "warm-up"}, timeout=90
        ).raise_for_status()
        locust = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                "examples/shop/locustfile.py",
                "--headless",
                "-u",
                str(USERS),
                "-r",
                str(USERS),
                "-t",
                f"{SECONDS}s",
                "-H",
                f"http://127.0.0.1:{PORT}",
                "--only-summary",
                "--stop-timeout",
                "30",
            ],
            cwd=ROOT,
            env=dict(os.environ, SHOP_LOAD_LOG=str(outcomes_path)),
            stdout=(tmp_path / "locust.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        time.sleep(SECONDS / 2)
        killed_at = time.time()
        service.send_signal(signal.SIGKILL)
        service.wait(10)
        service = start_service(kafka_config, dsn, tables, server_log)
        ready_at = wait_ready(service)
        assert locust.wait(SECONDS + 120) is not None
        rows = [json.loads(line) for line in outcomes_path.read_text().splitlines() if line]
        outcomes = [o for o in rows if o["key"] is not None]  # commands
        queries = [o for o in rows if o["key"] is None]

        # -- every 2xx command is in the log exactly once ------------------------------
        records = read_log(
            kafka_config.bootstrap_servers, kafka_config.topic("Order"), kafka_config.partitions
        )
        by_command = Counter(r["metadata"].get("commandId") for r in records)
        ok = [o for o in outcomes if 200 <= o["status"] < 300]
        acknowledged = {o["key"]: o for o in ok}
        missing = [k for k in acknowledged if by_command[k] == 0]
        twice = [k for k in acknowledged if by_command[k] > 1]
        assert not missing, f"{len(missing)} acknowledged commands are not in the log"
        assert not twice, f"{len(twice)} acknowledged commands are in the log twice"
        assert all(n == 1 for k, n in by_command.items() if k is not None), "a duplicate"
        for r in records:  # ... at the version the client was told
            key = r["metadata"].get("commandId")
            if key in acknowledged:
                assert r["version"] == acknowledged[key]["version"], key

        # -- no 5xx but during the outage ----------------------------------------------
        errors = [o for o in rows if o["status"] >= 500]
        outside = [o for o in errors if not killed_at <= o["t"] <= ready_at + OUTAGE_GRACE_S]
        assert not outside, f"5xx outside the outage: {outside[:5]}"
        retried = {o["key"] for o in outcomes if o["status"] == 0 or o["status"] >= 500}
        kinds = Counter(o["kind"] for o in ok)
        print(
            f"\nshop under locust: {len(ok)} commands 2xx ({dict(kinds)}), "
            f"{len(retried)} retried across the kill ({sum(o['status'] == 0 for o in outcomes)} "
            f"connection errors, {len(errors)} 5xx), {len(queries)} queries "
            f"({dict(Counter(q['status'] for q in queries))}), outage "
            f"{ready_at - killed_at:.1f}s, {len(records)} events in the log"
        )
        assert sum(q["status"] == 200 for q in queries) > 100, "the queries did not happen"
        assert len(ok) > 500 and retried, "the load or the kill did not happen"

        # -- the read model converges on the log -----------------------------------------
        want = orders_from_log(records)
        deadline = time.monotonic() + 90
        got: dict[str, Any] = {}
        while time.monotonic() < deadline:
            got = orders_from_read_model(dsn, tables)
            if got == want:
                break
            time.sleep(1)
        diff = {k for k in want.keys() | got.keys() if want.get(k) != got.get(k)}
        assert got == want, f"{len(diff)} orders differ, e.g. {sorted(diff)[:3]}"
    finally:
        if locust is not None and locust.poll() is None:
            locust.kill()
        service.terminate()
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {tables}_orders, {tables}_order_lines")


def orders_from_log(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per order: (status, version, {sku: quantity}) computed from the events alone."""
    orders: dict[str, Any] = {}
    for r in sorted(records, key=lambda r: (r["_partition"], r["_offset"])):
        oid, p = r["aggregateId"], r["payload"]
        if r["eventType"] == "OrderPlaced":
            orders[oid] = ["open", 0, {}]
        elif r["eventType"] == "LineAdded":
            lines = orders[oid][2]
            lines[p["sku"]] = lines.get(p["sku"], 0) + p["quantity"]
        elif r["eventType"] == "LineRemoved":
            del orders[oid][2][p["sku"]]
        elif r["eventType"] == "OrderPaid":
            orders[oid][0] = "paid"
        elif r["eventType"] == "OrderCancelled":
            orders[oid][0] = "cancelled"
        orders[oid][1] = r["version"]
    return {k: (s, v, lines) for k, (s, v, lines) in orders.items()}


def orders_from_read_model(dsn: str, tables: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        try:
            rows = conn.execute(f"SELECT order_id, status, version FROM {tables}_orders").fetchall()
            lines = conn.execute(
                f"SELECT order_id, sku, quantity FROM {tables}_order_lines"
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    out: dict[str, Any] = {oid: (status, int(v), {}) for oid, status, v in rows}
    for oid, sku, q in lines:
        out[oid][2][sku] = int(q)
    return out
