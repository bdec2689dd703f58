"""Soak kes.aio's cancellation: rounds of 3-event appends from one event loop, each
cancelled at a random moment (some before they start), owned by this process or
forwarded to it from a client store; after each task ends its stream's version is read,
and at the end the log is read with a plain read_committed consumer.

    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 python scripts/aio_cancel_soak.py --seconds 60

Checks: no stream is half-written; the version read right after a cancelled task ended
is what the log holds (the outcome was decided when the task ended); both outcomes
(withdrawn, written anyway) occur. Prints a JSON summary; exits 1 on a violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kes import NO_STREAM, KafkaConfig, KafkaEventStore, NewEvent
from kes.aio import AsyncKafkaEventStore

TYPE = "Soak"


async def soak(seconds: float, per_round: int, config: KafkaConfig) -> dict[str, Any]:
    writer = KafkaEventStore(config)
    client = KafkaEventStore(config, role="client")
    rng = random.Random()
    seen: dict[str, int] = {}
    outcomes: Counter[str] = Counter()
    try:
        stores = {
            "owner": AsyncKafkaEventStore(store=writer),
            "forwarded": AsyncKafkaEventStore(store=client),
        }
        await stores["owner"].append(TYPE, "warm-up", [NewEvent(event_type="W", payload={})], 0)
        await stores["owner"].owned_partitions(TYPE)
        loop = asyncio.get_running_loop()
        stop_at = time.monotonic() + seconds
        rounds = 0

        async def one(via: str, aggregate_id: str) -> None:
            store = stores[via]
            events = [NewEvent(event_type="Happened", payload={"n": n}) for n in range(3)]
            task = asyncio.ensure_future(store.append(TYPE, aggregate_id, events, NO_STREAM))
            if rng.random() < 0.1:
                task.cancel()
            else:
                loop.call_later(rng.uniform(0, 0.05), task.cancel)
            try:
                await task
                outcomes[f"{via}: finished before the cancel"] += 1
            except asyncio.CancelledError:
                pass
            version = await store.stream_version(TYPE, aggregate_id)
            seen[aggregate_id] = version
            if task.cancelled():
                outcomes[f"{via}: cancelled, {'written' if version else 'withdrawn'}"] += 1

        while time.monotonic() < stop_at:
            await asyncio.gather(
                *(
                    one(rng.choice(["owner", "forwarded"]), f"s{uuid.uuid4().hex[:10]}")
                    for _ in range(per_round)
                )
            )
            rounds += 1
    finally:
        client.close()
        writer.close()
    return {"rounds": rounds, "appends": len(seen), "outcomes": dict(outcomes), "seen": seen}


def read_log(config: KafkaConfig) -> Counter[str]:
    """Events per aggregate, by a plain read_committed consumer (no kes code)."""
    topic = config.topic(TYPE)
    consumer = Consumer(
        {
            "bootstrap.servers": config.bootstrap_servers,
            "group.id": f"soak-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        counts: Counter[str] = Counter()
        versions: dict[str, list[int]] = {}
        done: set[int] = set()
        while len(done) < partitions:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                continue
            envelope = json.loads(msg.value())
            counts[envelope["aggregateId"]] += 1
            versions.setdefault(envelope["aggregateId"], []).append(envelope["version"])
        for aggregate_id, found in versions.items():
            if found != list(range(1, len(found) + 1)):
                raise SystemExit(f"{aggregate_id}: versions {found} in the log")
        return counts
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    config = KafkaConfig.from_env(
        namespace=f"soak{uuid.uuid4().hex[:6]}", index_dir=f".kes/soak/{uuid.uuid4().hex[:6]}"
    )
    result = asyncio.run(soak(args.seconds, args.per_round, config))
    log = read_log(config)
    seen = result.pop("seen")
    half = {a: n for a, n in log.items() if a != "warm-up" and n != 3}
    undecided = {a: (v, log.get(a, 0)) for a, v in seen.items() if v != log.get(a, 0)}
    result["half_written"] = len(half)
    result["read_after_end_disagrees_with_log"] = len(undecided)
    print(json.dumps(result, indent=2))
    withdrawn = any("withdrawn" in k for k in result["outcomes"])
    written = any("cancelled, written" in k for k in result["outcomes"])
    sys.exit(1 if half or undecided or not (withdrawn and written) else 0)


if __name__ == "__main__":
    main()
