"""kes.aio under load: single-event appends from one process, asyncio next to threads.

    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 python -m benchmarks.aio [--quick] [--out FILE]

Appends: ``--tasks`` (1,000) tasks on one event loop (uvloop when installed), each
appending one event at a time to its own stream with ``expected_version`` = the version
it knows (a conditional append, as an application does), through one
``AsyncKafkaEventStore``; next to ``--threads`` (64) threads doing the same through one
``KafkaEventStore``. Each side runs ``--seconds`` in its own namespace (a fresh writer
that owns every partition it writes), after a warm-up append.

The shop (``--shop``, needs fastapi and uvicorn): ``examples.shop`` served by uvicorn in
a child process on kes.aio, then the same service with its store calls made through the
threaded API in a thread pool (``KES_SHOP_API=threaded``); 64 HTTP clients (a minimal
keep-alive HTTP/1.1 client on asyncio streams) place orders and add lines with If-Match.

Prints one JSON document with both sides, their ratios and the load average (the machine
may be shared: read the figures with it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, latency_ms
from kes import NO_STREAM, KafkaConfig, KafkaEventStore, NewEvent
from kes.aio import AsyncKafkaEventStore

PAYLOAD = {"userId": "abc123", "username": "jdoe", "email": "jdoe@example.com", "n": 0}
SHOP_PORT = int(os.environ.get("KES_BENCH_SHOP_PORT", "18481"))


def config(namespace: str) -> KafkaConfig:
    return KafkaConfig.from_env(
        namespace=namespace, index_dir=str(ROOT / ".kes" / "bench-aio" / namespace)
    )


def cpu_s() -> float:
    """CPU seconds this process used so far (every thread, librdkafka's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(
    latencies: list[float], elapsed: float, writer: Any = None, cpu: float = 0.0
) -> dict[str, Any]:
    ms = latency_ms(latencies)
    out = {
        "appends": len(latencies),
        "seconds": round(elapsed, 2),
        "events_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(ms["p50"], 2),
        "p99_ms": round(ms["p99"], 2),
        # What an append costs this process, whatever the broker's speed.
        "cpu_us_per_append": round(cpu / max(1, len(latencies)) * 1e6, 1),
    }
    if writer is not None and writer.stats.transactions:
        out["events_per_transaction"] = round(writer.stats.events / writer.stats.transactions, 1)
    return out


def threaded(threads: int, seconds: float) -> dict[str, Any]:
    store = KafkaEventStore(config(f"bat{uuid.uuid4().hex[:6]}"))
    try:
        store.append("User", "warm-up", [NewEvent(event_type="W", payload=PAYLOAD)], NO_STREAM)
        store.owned_partitions("User")
        latencies: list[float] = []
        lock = threading.Lock()
        stop_at = time.perf_counter() + seconds

        def client(c: int) -> None:
            mine: list[float] = []
            v = 0
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                store.append(
                    "User", f"u-{c}", [NewEvent(event_type="UserModified", payload=PAYLOAD)], v
                )
                mine.append(time.perf_counter() - t0)
                v += 1
            with lock:
                latencies.extend(mine)

        store.writer.stats.transactions = store.writer.stats.events = 0
        started, cpu = time.perf_counter(), cpu_s()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(client, range(threads)))
        elapsed = time.perf_counter() - started
        return summary(latencies, elapsed, store.writer, cpu_s() - cpu)
    finally:
        store.close()


async def native(tasks: int, seconds: float) -> dict[str, Any]:
    store = AsyncKafkaEventStore(config(f"baa{uuid.uuid4().hex[:6]}"))
    try:
        await store.append(
            "User", "warm-up", [NewEvent(event_type="W", payload=PAYLOAD)], NO_STREAM
        )
        await store.owned_partitions("User")
        latencies: list[float] = []
        stop_at = time.perf_counter() + seconds

        async def client(c: int) -> None:
            v = 0
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await store.append(
                    "User", f"u-{c}", [NewEvent(event_type="UserModified", payload=PAYLOAD)], v
                )
                latencies.append(time.perf_counter() - t0)
                v += 1

        store.sync.writer.stats.transactions = store.sync.writer.stats.events = 0
        started, cpu = time.perf_counter(), cpu_s()
        await asyncio.gather(*(client(c) for c in range(tasks)))
        elapsed = time.perf_counter() - started
        return summary(latencies, elapsed, store.sync.writer, cpu_s() - cpu)
    finally:
        await store.close()


def event_loop_name() -> str:
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401

        return "uvloop"
    return "asyncio"


def run_async(coro: Any) -> Any:
    if event_loop_name() == "uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


# ---- the shop over HTTP -------------------------------------------------------------


class Connection:
    """A minimal keep-alive HTTP/1.1 client (httpx would spend more CPU than the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
            f"{headers}Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        found: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                found[k.strip().lower()] = v.strip()
        data = await self.reader.readexactly(int(found.get("content-length", "0")))
        return status, found, data

    def close(self) -> None:
        self.writer.close()


class ShopServer:
    def __init__(self, namespace: str, api: str, port: int = SHOP_PORT) -> None:
        env = dict(
            os.environ,
            KES_NAMESPACE=namespace,
            KES_INDEX_DIR=str(ROOT / ".kes" / "bench-aio" / namespace),
            KES_SHOP_API=api,
            KES_SHOP_DB="none",  # commands only: the read model is not what is measured
        )
        self.port = port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.shop.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
            cwd=ROOT,
        )

    async def ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                conn = await Connection.open(self.port)
                status, _, _ = await conn.request("GET", "/healthz")
                conn.close()
                if status == 200:
                    return
            await asyncio.sleep(0.3)
        raise SystemExit("the shop did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def shop_load(port: int, clients: int, seconds: float) -> dict[str, Any]:
    """Each client: place an order, then add lines to it with If-Match (the ETag)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds

    async def client(c: int) -> None:
        conn = await Connection.open(port)
        try:
            while time.perf_counter() < stop_at:
                order = f"o-{c}-{uuid.uuid4().hex[:8]}"
                body = json.dumps({"orderId": order, "customer": f"c{c}"}).encode()
                t0 = time.perf_counter()
                status, headers, _ = await conn.request("POST", "/orders", body)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                etag = headers.get("etag", '"1"')
                for n in range(4):
                    line = json.dumps({"sku": f"sku-{n}", "quantity": 1, "price": "9.90"})
                    t0 = time.perf_counter()
                    status, headers, _ = await conn.request(
                        "POST",
                        f"/orders/{order}/add-line",
                        line.encode(),
                        f"If-Match: {etag}\r\n",
                    )
                    latencies.append(time.perf_counter() - t0)
                    statuses[status] = statuses.get(status, 0) + 1
                    etag = headers.get("etag", etag)
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    ms = latency_ms(latencies)
    return {
        "commands": len(latencies),
        "seconds": round(elapsed, 2),
        "commands_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(ms["p50"], 2),
        "p99_ms": round(ms["p99"], 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def measure_shop(server: ShopServer, clients: int, seconds: float) -> dict[str, Any]:
    await server.ready()
    await shop_load(server.port, 4, 2)  # warm-up: topics, group, takeovers
    return await shop_load(server.port, clients, seconds)


def shop(clients: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for api in ("asyncio", "threaded"):
        server = ShopServer(f"bas{uuid.uuid4().hex[:6]}", api)
        try:
            out[api] = asyncio.run(measure_shop(server, clients, seconds))
        finally:
            server.stop()
    return out


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per side")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--shop", action="store_true", help="also the shop service over HTTP")
    parser.add_argument("--shop-clients", type=int, default=64)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    result: dict[str, Any] = {
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "event_loop": event_loop_name(),
        "bootstrap_servers": KafkaConfig.from_env().bootstrap_servers,
    }
    a = run_async(native(args.tasks, seconds))
    t = threaded(args.threads, seconds)
    result["appends"] = {
        "what": "single-event conditional appends, one stream per caller, one process",
        f"asyncio_{args.tasks}_tasks": a,
        f"threaded_{args.threads}_threads": t,
        "ratio_events_per_s": ratio(a["events_per_s"], t["events_per_s"]),
        "ratio_cpu_per_append": ratio(a["cpu_us_per_append"], t["cpu_us_per_append"]),
    }
    if args.shop:
        s = shop(args.shop_clients, seconds)
        result["shop"] = {
            "what": f"{args.shop_clients} HTTP clients: place an order, add 4 lines (If-Match)",
            **s,
            "ratio_commands_per_s": ratio(
                s["asyncio"]["commands_per_s"], s["threaded"]["commands_per_s"]
            ),
        }
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
