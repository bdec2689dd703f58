"""The price of TLS: batched and single-event appends and replay over SASL_SSL (and mTLS)
next to PLAINTEXT, in the same run.

``python -m benchmarks.secure [--quick] [--runs N] [--port P]`` starts two local
single-node brokers side by side (PLAINTEXT on P; ``--secure`` on P+1, mTLS on P+51),
runs each measurement on each protocol in turn (PLAINTEXT, SASL_SSL, SSL, then again,
``--runs`` times) so that drift on a shared machine hits them alike, stops both brokers,
and prints JSON: per protocol the median of the runs (and every run), and the ratios
secured/plaintext. The secured stores run as a principal with only the writer role
(ACLs are checked on every request, as in production).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, environment, percentile
from benchmarks.store import batched_append_rate, event, single_append
from kes import NO_STREAM
from kes.broker import LocalCluster
from kes.kafka import acl
from kes.kafka.acl import Args
from kes.store.kafka import KafkaConfig, KafkaEventStore

TYPES = ("BenchBatch", "BenchSingle", "BenchReplay")
PROTOCOLS = ("PLAINTEXT", "SASL_SSL", "SSL")


def start(data_dir: Path, port: int, secure: bool) -> tuple[LocalCluster, bool]:
    cluster = LocalCluster.load(data_dir)
    if cluster is not None and len(cluster.running()) == len(cluster.nodes):
        return cluster, False
    if cluster is None or cluster.nodes[0].port != port or cluster.secure != secure:
        cluster = LocalCluster.plan(data_dir, nodes=1, port=port, secure=secure)
    cluster.start()
    return cluster, True


def configs(plain: LocalCluster, secure: LocalCluster, namespace: str) -> dict[str, KafkaConfig]:
    """One KafkaConfig per protocol, each in its own namespace (two stores on one cluster
    in one namespace would share the writer groups and forward to each other); the
    secured ones as a principal with only the writer role."""
    user = "bench-writer"
    secure.add_user(user)
    admin_client = secure.secrets.sasl_conf("admin")
    admin_servers = admin_client.pop("bootstrap.servers")
    sasl = secure.secrets.sasl_conf(user)
    sasl_servers = sasl.pop("bootstrap.servers")
    out: dict[str, KafkaConfig] = {}
    for protocol, servers, client in (
        ("PLAINTEXT", plain.bootstrap_servers, {}),
        ("SASL_SSL", sasl_servers, sasl),
        ("SSL", secure.tls_bootstrap_servers, secure.secrets.tls_conf(user)),
    ):
        ns = f"{namespace}-{protocol.lower()}"
        out[protocol] = KafkaConfig(
            bootstrap_servers=servers,
            client=client,
            namespace=ns,
            partitions=12,
            index_dir=str(ROOT / ".kes" / "bench-secure-index" / ns),
            principal=f"User:{user}" if client else None,
        )
        if client:
            admin = KafkaConfig(bootstrap_servers=admin_servers, client=admin_client, namespace=ns)
            who = f"User:{user}"
            acl.create(admin, who, acl.grants(admin, "writer", who, Args(TYPES)))
    return out


def populate(store: KafkaEventStore, events: int) -> None:
    """``events`` events in 100-event streams, for the replay."""
    store.owned_partitions("BenchReplay")
    for _ in range(events // 100):
        store.append("BenchReplay", uuid.uuid4().hex, [event() for _ in range(100)], NO_STREAM)


def replay_rate(store: KafkaEventStore) -> float:
    """Events per second of ``read_all`` over the whole type, from its first record."""
    n = 0
    started = 0.0
    for _ in store.read_all("BenchReplay"):
        if n == 0:
            started = time.perf_counter()
        n += 1
    return (n - 1) / (time.perf_counter() - started)


def measure(stores: dict[str, KafkaEventStore], quick: bool, runs: int) -> dict[str, Any]:
    batches = 100 if quick else 400
    seconds = 4.0 if quick else 10.0
    replay_events = 20_000 if quick else 100_000
    runs_of: dict[str, dict[str, list[float]]] = {p: {} for p in stores}

    def record(protocol: str, name: str, value: float) -> None:
        runs_of[protocol].setdefault(name, []).append(value)

    for store in stores.values():
        populate(store, replay_events)
        store.owned_partitions("BenchBatch")
        store.owned_partitions("BenchSingle")
    cells: list[tuple[str, Callable[[KafkaEventStore], dict[str, float]]]] = [
        ("batched", lambda s: {"batched_events_per_s": batched_append_rate(s, batches, 4)}),
        ("single", lambda s: _single(s, seconds)),
        ("replay", lambda s: {"replay_events_per_s": replay_rate(s)}),
    ]
    for _ in range(runs):
        for _cell, fn in cells:
            for protocol, store in stores.items():  # in turn: drift hits each alike
                for name, value in fn(store).items():
                    record(protocol, name, value)
    medians = {
        p: {name: round(statistics.median(values), 2) for name, values in m.items()}
        for p, m in runs_of.items()
    }
    ratios = {
        f"{p}/PLAINTEXT": {
            name: round(medians[p][name] / medians["PLAINTEXT"][name], 3)
            for name in medians["PLAINTEXT"]
        }
        for p in stores
        if p != "PLAINTEXT"
    }
    return {
        "median": medians,
        "ratios": ratios,
        "runs": {
            p: {k: [round(v, 2) for v in vs] for k, vs in m.items()} for p, m in runs_of.items()
        },
        "sizes": {
            "batched": f"{batches} appends of 100 events, 4 callers",
            "single": f"1-event appends, 8 callers, {seconds:.0f} s",
            "replay": f"read_all of {replay_events} events (12 partitions)",
        },
    }


def _single(store: KafkaEventStore, seconds: float) -> dict[str, float]:
    rate, latencies = single_append(store, seconds, 8)
    return {
        "single_events_per_s": rate,
        "single_p50_ms": percentile(latencies, 50) * 1000,
        "single_p99_ms": percentile(latencies, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes)")
    parser.add_argument("--runs", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("KES_BENCH_SECURE_PORT", "19900")),
        help="PLAINTEXT broker port; the secured one takes PORT+1 (mTLS +51, controllers +100)",
    )
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    plain, started_plain = start(ROOT / ".kes" / "bench-plain", args.port, secure=False)
    secure, started_secure = start(ROOT / ".kes" / "bench-secure", args.port + 1, secure=True)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    stores: dict[str, KafkaEventStore] = {}
    try:
        for protocol, config in configs(plain, secure, namespace).items():
            stores[protocol] = KafkaEventStore(config)
        results = measure(stores, args.quick, args.runs)
    finally:
        for store in stores.values():
            store.close()
        if started_plain:
            plain.stop()
        if started_secure:
            secure.stop()
    report = {
        "benchmark": "secure",
        "environment": environment({"nodes": 1, "kafka": "local, one node per protocol"}),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
