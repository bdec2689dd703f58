"""`kes serve` under load: HTTP appends next to the same appends through the Python API,
and SSE delivery lag to 50 subscribers.

    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 python -m benchmarks.http [--quick] [--out FILE]

Appends: ``--clients`` (64) concurrent clients, each appending one event at a time to its
own stream with ``expectedVersion`` = the version it knows (a conditional append, as an
application does). Python API: 64 threads on one ``KafkaEventStore`` in this process.
HTTP: a real ``kes serve`` process (uvicorn, h11; the same store inside), driven by an
asyncio load generator in this process (a minimal keep-alive HTTP/1.1 client on
asyncio streams, 64 connections; httpx's own CPU cost per request exceeded the server's). Each side
gets its own namespace, so both stores own every partition they write.

SSE: ``--subscribers`` (50) subscribers of one type on the same server, events appended
at a steady rate through the Python API; lag = time the subscriber parsed the event minus
the time its append was called (so it includes the append itself).

Prints one JSON document (and writes it to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import msgspec

from benchmarks.common import ROOT, latency_ms, percentile
from kes import ANY, NO_STREAM, KafkaConfig, KafkaEventStore, NewEvent

PAYLOAD = {"userId": "abc123", "username": "jdoe", "email": "jdoe@example.com", "n": 0}
PORT = int(os.environ.get("KES_BENCH_HTTP_PORT", "18480"))


def config(namespace: str) -> KafkaConfig:
    return KafkaConfig.from_env(
        namespace=namespace, index_dir=str(ROOT / ".kes" / "bench-http" / namespace)
    )


def python_api(clients: int, per_client: int) -> dict[str, Any]:
    """Conditional single-event appends from ``clients`` threads through the Python API."""
    store = KafkaEventStore(config(f"bhp{uuid.uuid4().hex[:6]}"))
    try:
        store.append("User", "warm-up", [NewEvent(event_type="W", payload=PAYLOAD)], NO_STREAM)
        latencies: list[float] = []
        lock = threading.Lock()

        def client(c: int) -> None:
            mine: list[float] = []
            for v in range(per_client):
                t0 = time.perf_counter()
                store.append(
                    "User", f"u-{c}", [NewEvent(event_type="UserModified", payload=PAYLOAD)], v
                )
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        store.close()
    return _summary(latencies, elapsed)


def _summary(latencies: list[float], elapsed: float) -> dict[str, Any]:
    ms = latency_ms(latencies)
    return {
        "appends": len(latencies),
        "seconds": round(elapsed, 2),
        "appends_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(ms["p50"], 2),
        "p99_ms": round(ms["p99"], 2),
    }


class Server:
    """``kes serve`` in its own process."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.url = f"http://127.0.0.1:{PORT}"
        env = dict(
            os.environ,
            KES_NAMESPACE=namespace,
            KES_INDEX_DIR=str(ROOT / ".kes" / "bench-http" / namespace),
        )
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kes.cli",
                "serve",
                "--port",
                str(PORT),
                "--log-level",
                "warning",
                "--no-schemas",
            ],
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kes serve did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Connection:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams: the load generator. (httpx's
    AsyncClient spends more CPU per request than the server at 64 connections, so it would
    measure itself.)"""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: kes\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    async def get_stream(self, path: str) -> None:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: kes\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head

    async def chunk(self) -> bytes:
        """The next chunk of a chunked response body."""
        size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    def close(self) -> None:
        self.writer.close()


async def http_appends(url: str, clients: int, per_client: int) -> dict[str, Any]:
    warm = await Connection.open(url)
    status, text = await warm.post(
        "/streams/User/warm-up",
        json.dumps(
            {"expectedVersion": 0, "events": [{"eventType": "W", "payload": PAYLOAD}]}
        ).encode(),
    )
    assert status == 201, text
    warm.close()
    connections = [await Connection.open(url) for _ in range(clients)]
    latencies: list[float] = []

    async def one(c: int) -> None:
        conn = connections[c]
        for v in range(per_client):
            body = json.dumps(
                {
                    "expectedVersion": v,
                    "events": [{"eventType": "UserModified", "payload": PAYLOAD}],
                }
            ).encode()
            t0 = time.perf_counter()
            status, text = await conn.post(f"/streams/User/u-{c}", body)
            latencies.append(time.perf_counter() - t0)
            assert status == 201, text

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return _summary(latencies, elapsed)


async def sse_lag(
    url: str, namespace: str, subscribers: int, events: int, rate: float
) -> dict[str, Any]:
    """Append ``events`` at ``rate``/s through the Python API; each of ``subscribers``
    notes when it parsed each event."""
    store = KafkaEventStore(config(namespace))  # the server's namespace: a second writer
    store.topics.ensure_event_topic("Meter")
    lags: list[float] = []
    started = [asyncio.Event() for _ in range(subscribers)]
    decoder = msgspec.json.Decoder()

    async def subscriber(i: int) -> None:
        conn = await Connection.open(url)
        await conn.get_stream("/subscriptions/Meter?from=end")
        got = 0
        buffer = b""
        try:
            while got < events:
                buffer += await conn.chunk()
                now = time.time()
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    at = block.find(b"data: ")
                    if at < 0:
                        started[i].set()
                        continue
                    event = decoder.decode(block[at + 6 :])
                    lags.append(now - event["payload"]["sentAt"])
                    got += 1
        finally:
            conn.close()

    try:
        tasks = [asyncio.create_task(subscriber(i)) for i in range(subscribers)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 60)

        def append() -> None:
            t_next = time.time()
            for n in range(events):
                t_next += 1 / rate
                pause = t_next - time.time()
                if pause > 0:
                    time.sleep(pause)
                payload = {"sentAt": time.time(), "n": n}
                store.append(
                    "Meter", f"m-{n % 50}", [NewEvent(event_type="Read", payload=payload)], ANY
                )

        await asyncio.get_running_loop().run_in_executor(None, append)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    finally:
        store.close()
    return {
        "subscribers": subscribers,
        "events": events,
        "rate_per_s": rate,
        "deliveries": len(lags),
        "lag_p50_ms": round(percentile(lags, 50) * 1000, 1),
        "lag_p99_ms": round(percentile(lags, 99) * 1000, 1),
    }


def main() -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--per-client", type=int, default=None, help="appends per client")
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    per_client = args.per_client or (5 if args.quick else 60)
    sse_events = 200 if args.quick else 2000
    result: dict[str, Any] = {
        "workload": f"{args.clients} clients x {per_client} conditional single-event appends",
        "load_generator": "a minimal asyncio HTTP/1.1 keep-alive client in the benchmark process",
        "server": "kes serve (uvicorn, h11, uvloop), own process, role writer",
    }
    result["python_api"] = python_api(args.clients, per_client)
    namespace = f"bhh{uuid.uuid4().hex[:6]}"
    server = Server(namespace)
    try:
        result["http"] = asyncio.run(http_appends(server.url, args.clients, per_client))
        result["sse"] = asyncio.run(
            sse_lag(server.url, namespace, args.subscribers, sse_events, 200.0)
        )
    finally:
        server.stop()
    result["http_vs_python_api"] = round(
        result["http"]["appends_per_s"] / result["python_api"]["appends_per_s"], 2
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
