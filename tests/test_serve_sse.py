"""Server-Sent Events from `kes serve`, on a real Kafka and a real uvicorn process: many
subscribers get every event of a burst once and in order, Last-Event-ID resumes exactly,
and a subscriber that stops reading is cut off with the server's memory bounded."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import msgspec
import pytest

from kes import ANY, KafkaConfig, KafkaEventStore, NewEvent
from kes.serve import ServeSettings, create_app
from tests.serve_support import rss_bytes, serve_process, serving

pytestmark = pytest.mark.kafka

TYPE = "Meter"


def burst(
    store: KafkaEventStore, events: int, streams: int, payload: dict[str, Any], per_append: int = 20
) -> list[str]:
    """Append ``events`` events over ``streams`` streams, ``per_append`` at a time, from 16
    threads; returns the event ids in the order each stream got them."""
    per_stream = events // streams
    ids = [[str(uuid.uuid4()) for _ in range(per_stream)] for _ in range(streams)]

    def fill(s: int) -> None:
        for start in range(0, per_stream, per_append):
            batch = [
                NewEvent(
                    event_type="Read",
                    payload={**payload, "n": start + i},
                    event_id=ids[s][start + i],
                )
                for i in range(min(per_append, per_stream - start))
            ]
            store.append(TYPE, f"m-{s}", batch, ANY)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(fill, range(streams)))
    return [i for stream in ids for i in stream]


class Subscriber:
    """Reads one SSE stream, keeping (eventId, aggregateId, version, partition, offset)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int, int, int]] = []
        self.ids: list[str] = []
        self.started = asyncio.Event()

    async def run(
        self, client: httpx.AsyncClient, url: str, want: int, headers: dict[str, str] | None = None
    ) -> None:
        decoder = msgspec.json.Decoder()
        async with client.stream("GET", url, headers=headers or {}) as response:
            assert response.status_code == 200, await response.aread()
            buffer = b""
            async for chunk in response.aiter_bytes():
                buffer += chunk
                *blocks, buffer = buffer.split(b"\n\n")
                for block in blocks:
                    event_id = data = None
                    for line in block.split(b"\n"):
                        if line.startswith(b"id: "):
                            event_id = line[4:].decode()
                        elif line.startswith(b"data: "):
                            data = line[6:]
                    if event_id is not None and data is None:
                        self.started.set()  # the position it starts from
                    if data is not None:
                        e = decoder.decode(data)
                        p = e["position"]
                        self.events.append(
                            (
                                e["eventId"],
                                e["aggregateId"],
                                e["version"],
                                p["partition"],
                                p["offset"],
                            )
                        )
                        assert event_id is not None
                        self.ids.append(event_id)
                if len(self.events) >= want:
                    return


def check_order(events: list[tuple[str, str, int, int, int]]) -> None:
    """Versions of each stream and offsets of each partition only go up, one by one."""
    last_version: dict[str, int] = defaultdict(int)
    last_offset: dict[int, int] = defaultdict(lambda: -1)
    for _, aggregate, version, partition, offset in events:
        assert version == last_version[aggregate] + 1, (aggregate, version, last_version[aggregate])
        assert offset > last_offset[partition]
        last_version[aggregate], last_offset[partition] = version, offset


@pytest.fixture
def writer(kafka_config: KafkaConfig) -> Iterator[KafkaEventStore]:
    """The test's own writer; the server under test is a client (it owns nothing)."""
    store = KafkaEventStore(kafka_config)
    store.topics.ensure_event_topic(TYPE)
    yield store
    store.close()


def test_fifty_subscribers_get_every_event_of_a_20000_event_burst_once_and_in_order(
    kafka_config: KafkaConfig, writer: KafkaEventStore
) -> None:
    """One of them drops its connection mid-burst and comes back with Last-Event-ID."""
    with serve_process(kafka_config, "--role", "client") as (url, _):

        async def main() -> None:
            subscribers = [Subscriber() for _ in range(50)]
            limits = httpx.Limits(max_connections=60)
            timeout = httpx.Timeout(120)
            async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
                path = f"/subscriptions/{TYPE}?from=end"

                async def reconnecting(first: Subscriber) -> Subscriber:
                    await first.run(client, path, 5_000)  # then it hangs up
                    second = Subscriber()
                    headers = {"Last-Event-ID": first.ids[-1]}
                    await second.run(client, path, 20_000 - len(first.events), headers)
                    return second

                resumed = asyncio.create_task(reconnecting(subscribers[0]))
                tasks = [asyncio.create_task(s.run(client, path, 20_000)) for s in subscribers[1:]]
                await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in subscribers)), 60)
                loop = asyncio.get_running_loop()
                expected = set(await loop.run_in_executor(None, burst, writer, 20_000, 200, {}))
                await asyncio.wait_for(asyncio.gather(*tasks), 300)
                second = await asyncio.wait_for(resumed, 300)
            subscribers[0].events += second.events
            for s in subscribers:
                assert len(s.events) == 20_000
                assert len({e[0] for e in s.events}) == 20_000, "an event came twice"
                assert {e[0] for e in s.events} == expected, "an event is missing"
                check_order(s.events)

        asyncio.run(main())


def test_a_subscriber_resuming_with_last_event_id_gets_exactly_what_follows(
    kafka_config: KafkaConfig, writer: KafkaEventStore
) -> None:
    first_ids = burst(writer, 300, 30, {"kwh": 1})
    with serving(create_app(writer, ServeSettings())) as url:

        async def main() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                head = Subscriber()  # from the start: reads history from Kafka
                await asyncio.wait_for(head.run(client, f"/subscriptions/{TYPE}", 100), 60)
                resume_at = head.ids[99]
                later_ids = await asyncio.get_running_loop().run_in_executor(
                    None, burst, writer, 100, 10, {"kwh": 2}
                )
                rest = Subscriber()
                await asyncio.wait_for(
                    rest.run(client, f"/subscriptions/{TYPE}", 300, {"Last-Event-ID": resume_at}),
                    60,
                )
                got = [e[0] for e in head.events[:100]] + [e[0] for e in rest.events]
                assert len(got) == len(set(got)) == 400, "a resumed subscriber saw an event again"
                assert set(got) == set(first_ids) | set(later_ids)
                check_order(head.events[:100] + rest.events)
                # from=<id> is the same as Last-Event-ID
                same = Subscriber()
                await asyncio.wait_for(
                    same.run(client, f"/subscriptions/{TYPE}?from={resume_at}", 300), 60
                )
                assert [e[0] for e in same.events] == [e[0] for e in rest.events]

        asyncio.run(main())


def test_a_subscriber_that_stops_reading_is_cut_off_and_server_memory_stays_bounded(
    kafka_config: KafkaConfig, writer: KafkaEventStore
) -> None:
    stalled_count, payload_bytes, events = 4, 2000, 20_000
    args = ("--role", "client", "--sse-send-timeout", "2", "--tail-bytes", str(4 * 1024 * 1024))
    with serve_process(kafka_config, *args) as (url, proc):
        port = int(url.rsplit(":", 1)[1])
        burst(writer, 200, 20, {"warm": "x" * payload_bytes})  # first clients, first tail
        stalled = []
        for _ in range(stalled_count):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            s.connect(("127.0.0.1", port))
            s.sendall(f"GET /subscriptions/{TYPE}?from=end HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert b"200 OK" in s.recv(4096)  # then it never reads again
            stalled.append(s)
        time.sleep(1)
        before = rss_bytes(proc.pid)
        sent = events * payload_bytes
        burst(writer, events, 200, {"blob": "x" * payload_bytes})
        deadline = time.monotonic() + 120
        cut = 0
        while time.monotonic() < deadline:
            metrics = httpx.get(f"{url}/metrics").text
            cut = int(
                next(
                    line.split()[1]
                    for line in metrics.splitlines()
                    if line.startswith("kes_serve_sse_cut_off_total")
                )
            )
            if cut >= stalled_count:
                break
            time.sleep(0.5)
        after = rss_bytes(proc.pid)
        assert cut == stalled_count, metrics
        growth = after - before
        # Holding what the stalled subscribers did not read would take stalled_count x sent
        # (160 MB); the server holds one tail (4 MiB) and one write per subscriber.
        assert growth < sent, f"RSS grew {growth / 1e6:.1f} MB while {sent / 1e6:.0f} MB was sent"
        print(
            f"\nRSS before {before / 1e6:.1f} MB, after {after / 1e6:.1f} MB "
            f"({growth / 1e6:+.1f} MB); "
            f"{stalled_count} stalled subscribers x {sent / 1e6:.0f} MB"
        )
        for s in stalled:  # the server closed them: reading drains what was buffered, then EOF
            s.settimeout(30)
            while s.recv(1 << 20):
                pass
            s.close()

        async def healthy() -> Subscriber:  # and a subscriber that reads is still served
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                s = Subscriber()
                task = asyncio.create_task(s.run(client, f"/subscriptions/{TYPE}?from=end", 1))
                await asyncio.wait_for(s.started.wait(), 30)
                writer.append(TYPE, "after-cut", [NewEvent(event_type="Read", payload={})], ANY)
                await asyncio.wait_for(task, 30)
                return s

        assert asyncio.run(healthy()).events[0][1] == "after-cut"


def test_more_subscribers_than_allowed_get_503(
    kafka_config: KafkaConfig, writer: KafkaEventStore
) -> None:
    with serving(create_app(writer, replace(ServeSettings(), max_sse_connections=2))) as url:

        async def main() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                subs = [Subscriber(), Subscriber()]
                tasks = [
                    asyncio.create_task(s.run(client, f"/subscriptions/{TYPE}?from=end", 1))
                    for s in subs
                ]
                await asyncio.wait_for(asyncio.gather(*(s.started.wait() for s in subs)), 30)
                third = await client.get(f"/subscriptions/{TYPE}")
                assert third.status_code == 503 and third.json()["code"] == "too_many_subscribers"
                assert third.headers["retry-after"] == "5"
                for t in tasks:
                    t.cancel()

        asyncio.run(main())


def test_subscribing_to_every_type_interleaves_them_with_one_position(
    kafka_config: KafkaConfig, writer: KafkaEventStore
) -> None:
    writer.append("Gauge", "g-1", [NewEvent(event_type="Set", payload={"v": 1})], ANY)
    burst(writer, 40, 4, {"kwh": 1})
    with serving(create_app(writer, ServeSettings())) as url:

        async def main() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                everything = Subscriber()
                await asyncio.wait_for(everything.run(client, "/subscriptions", 41), 60)
                assert {e[1] for e in everything.events} == {"g-1"} | {f"m-{s}" for s in range(4)}
                last = everything.ids[-1]
                assert last.startswith("Gauge/") and ";Meter/" in last
                writer.append("Gauge", "g-1", [NewEvent(event_type="Set", payload={"v": 2})], 1)
                after = Subscriber()
                headers = {"Last-Event-ID": last}
                await asyncio.wait_for(after.run(client, "/subscriptions", 1, headers), 60)
                assert [(e[1], e[2]) for e in after.events] == [("g-1", 2)]

        asyncio.run(main())
