"""What crypto-shredding costs: the same workload with and without personal fields.

    KES_BOOTSTRAP_SERVERS=127.0.0.1:9092 python -m benchmarks.shredding [--quick] [--out FILE]

Two aggregate classes with identical events and values (a user: created with a name and
an email, then email changes); in one the name and email are ``personal()``. Measured
``--runs`` times:

- **append**: ``--threads`` threads save new users through one ``Application`` (each save
  one atomic append of ``--events`` events; the first save of a subject creates its data
  key: one acks=all write to the key topic and a read to its end), events/s;
  **append_existing**: as many events again, appended to those users (keys exist);
- **load**: every user loaded through the repository (no cache, no snapshots: the full
  replay a cold load does), events/s; **load_long**: the same for ``--long`` users of
  500 events each, where replay, not the round trip, is the cost;
- **projection**: a ``ProjectionRunner`` reading the topic from the start with handlers
  that touch every payload, from its first batch until caught up, events/s;
- **cpu**: encrypting (``KeyRing.seal``) and decrypting (``reveal``) one event, microseconds,
  next to encoding and decoding its envelope, without Kafka.

Both variants run in one namespace, interleaved: appends in 10 rounds of alternating
order, loads user by user, the projection 4 times each; so a machine's drifting load hits
both alike. Ratios are personal / plain rate (1.0: free; 0.9: 10% slower), the median of
the per-run ratios. ``crypto_share_of_personal_time`` is the part of the personal
variant's time spent inside sealing and revealing (clocked around each call): on a busy
machine, where Kafka round trips swing, it tells the cost apart from the noise (the
ratio it implies is 1 - share). Prints one JSON document with the load average before
and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from benchmarks.common import ROOT
from kes import (
    Aggregate,
    Application,
    KafkaConfig,
    KafkaEventStore,
    KafkaKeyRing,
    LocalKeyEncryptionKey,
    NewEvent,
    event,
    personal,
)
from kes.envelope import decode, encode, to_envelope
from kes.projections import Projection, ProjectionRunner
from kes.projections.runner import RunStats
from kes.shredding import MemoryKeyRing


class PlainUser(Aggregate, id_field="user_id"):
    @event("UserCreated")
    def __init__(self, user_id: str, name: str, email: str, plan: str = "free") -> None:
        self.name, self.email, self.plan = name, email, plan

    @event("EmailChanged")
    def change_email(self, email: str) -> None:
        self.email = email


class PersonalUser(Aggregate, id_field="user_id"):
    @event("UserCreated")
    def __init__(
        self,
        user_id: str,
        name: Annotated[str, personal()],
        email: Annotated[str, personal()],
        plan: str = "free",
    ) -> None:
        self.name, self.email, self.plan = name, email, plan

    @event("EmailChanged")
    def change_email(self, email: Annotated[str, personal()]) -> None:
        self.email = email


User = type[PlainUser] | type[PersonalUser]
VARIANTS: dict[str, User] = {
    "plain": PlainUser,
    "personal": PersonalUser,
}


def changed(user: Aggregate, events: int) -> Aggregate:
    """``user`` with ``events`` more email changes pending."""
    for i in range(events):
        user.change_email(f"{user.id}.again.{i}@example.org")  # type: ignore[attr-defined]
    return user


def build(cls: User, uid: str, events: int) -> Aggregate:
    user = cls(uid, f"Person Number {uid}", f"person.{uid}@example.org")
    for i in range(events - 1):
        user.change_email(f"person.{uid}.{i}@example.org")
    return user


def config(namespace: str) -> KafkaConfig:
    return KafkaConfig.from_env(
        namespace=namespace,
        index_dir=str(ROOT / ".kes" / "bench-shredding" / namespace),
        partitions=4,
    )


class Touch(Projection):
    """Reads every payload field, as a read model would."""

    name = "bench-shredding"
    processing_guarantee = "at_least_once"

    def __init__(self) -> None:
        super().__init__()
        self.chars = 0

    def on_UserCreated(self, e: Any) -> None:
        self.chars += len(e.payload["name"]) + len(e.payload["email"])

    def on_EmailChanged(self, e: Any) -> None:
        self.chars += len(e.payload["email"])


LONG = 500  # events of each long stream
ROUNDS = 10  # each measure alternates the variants this often, so drifting load hits both


def orders(rounds: int) -> Iterator[tuple[str, ...]]:
    """The variants in alternating order, ``rounds`` times."""
    for r in range(rounds):
        yield tuple(VARIANTS) if r % 2 == 0 else tuple(reversed(VARIANTS))


def one_run(
    users: int, events: int, threads: int, long: int, kek: LocalKeyEncryptionKey
) -> dict[str, dict[str, float]]:
    """measure -> variant -> events/s, both variants interleaved in one namespace."""
    cfg = config(f"bsh{uuid.uuid4().hex[:8]}")
    keys = KafkaKeyRing(cfg, kek)
    app = Application(KafkaEventStore(cfg), keys=keys, cache_size=0)
    spent: dict[str, dict[str, float]] = {}
    counts: dict[str, dict[str, int]] = {}
    crypto = [0.0]  # seconds inside KeyRing.seal / reveal (all threads)
    in_crypto: dict[str, float] = {}

    def clocked(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args)
            finally:
                crypto[0] += time.perf_counter() - t

        return run

    keys.seal = clocked(keys.seal)  # type: ignore[method-assign]
    keys.reveal = clocked(keys.reveal)  # type: ignore[method-assign]

    def timed(measure: str, variant: str, n: int, fn: Callable[[], object]) -> None:
        before = crypto[0]
        t = time.perf_counter()
        fn()
        by = spent.setdefault(measure, dict.fromkeys(VARIANTS, 0.0))
        by[variant] += time.perf_counter() - t
        counted = counts.setdefault(measure, dict.fromkeys(VARIANTS, 0))
        counted[variant] += n
        in_crypto[measure] = in_crypto.get(measure, 0.0) + crypto[0] - before

    made: dict[User, list[Aggregate]] = {cls: [] for cls in VARIANTS.values()}

    def save(user: Aggregate) -> Aggregate:
        app.save(user)
        return user

    try:
        for cls in VARIANTS.values():
            app.save(build(cls, "warm-up", 1))
        ids = [f"u{i}" for i in range(users)]
        chunks = [ids[i::ROUNDS] for i in range(ROUNDS)]
        with ThreadPoolExecutor(threads) as pool:
            for chunk, order in zip(chunks, orders(ROUNDS), strict=True):
                for v in order:
                    cls = VARIANTS[v]

                    def save_all(cls: User = cls, chunk: list[str] = chunk) -> None:
                        built = list(pool.map(lambda uid: save(build(cls, uid, events)), chunk))
                        made[cls].extend(built)

                    timed("append", v, len(chunk) * events, save_all)
            # Appending to subjects whose key exists: encryption alone, no key created.
            for r, order in enumerate(orders(ROUNDS)):
                for v in order:
                    users_r = made[VARIANTS[v]][r::ROUNDS]

                    def more(users_r: list[Aggregate] = users_r) -> None:
                        list(pool.map(lambda u: save(changed(u, events)), users_r))

                    timed("append_existing", v, len(users_r) * events, more)
        long_ids = [f"long{i}" for i in range(long)]
        for cls in VARIANTS.values():
            for uid in long_ids:
                app.save(build(cls, uid, LONG))
        keys._cache.clear()  # loads start cold: each key unwrapped once, then cached
        for uid, order in zip(ids, orders(len(ids)), strict=True):
            for v in order:
                timed("load", v, 2 * events, partial(app.get, VARIANTS[v], uid))
        for uid, order in zip(long_ids, orders(len(long_ids)), strict=True):
            for v in order:
                timed("load_long", v, LONG, partial(app.get, VARIANTS[v], uid))
        expected = 2 * users * events + long * LONG + 1
        for r, order in enumerate(orders(4)):
            for v in order:
                keys._cache.clear()

                class Reader(Touch):
                    name = f"bench-shredding-{r}"
                    aggregate_types = (VARIANTS[v].aggregate_type,)

                first: list[tuple[float, int]] = []

                def on_batch(stats: RunStats, first: list[tuple[float, int]] = first) -> None:
                    if not first:
                        first.append((time.perf_counter(), stats.records))

                runner = ProjectionRunner(
                    Reader(), cfg, until_caught_up=True, keys=keys, on_batch=on_batch
                )
                before = crypto[0]
                stats = runner.run()
                in_crypto["projection"] = in_crypto.get("projection", 0.0) + crypto[0] - before
                assert stats.records == expected, (stats.records, expected)
                by = spent.setdefault("projection", dict.fromkeys(VARIANTS, 0.0))
                by[v] += time.perf_counter() - first[0][0]
                counted = counts.setdefault("projection", dict.fromkeys(VARIANTS, 0))
                counted[v] += stats.records - first[0][1]
        return {
            m: {
                **{v: counts[m][v] / spent[m][v] for v in VARIANTS},
                # of thread time: appends run on ``threads`` threads at once
                "crypto_share": in_crypto.get(m, 0.0)
                / (spent[m]["personal"] * (threads if m.startswith("append") else 1)),
            }
            for m in spent
        }
    finally:
        app.close()


def cpu_costs(kek: LocalKeyEncryptionKey, n: int) -> dict[str, float]:
    """Microseconds per event: seal / reveal vs encode / decode of its envelope."""
    keys = MemoryKeyRing(kek)
    user = build(PersonalUser, "cpu", 1)
    (created,) = user.collect_events()
    fields = PersonalUser.personal_fields()["UserCreated"]
    sealed = keys.seal(fields, "cpu", created)
    env = to_envelope("PersonalUser", "cpu", 1, sealed)
    raw = encode(env)

    def per_event(fn: Any) -> float:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) / n * 1e6

    plain = to_envelope("PlainUser", "cpu", 1, NewEvent(event_type="UserCreated", payload={}))
    return {
        "seal_us": per_event(lambda: keys.seal(fields, "cpu", created)),
        "reveal_us": per_event(lambda: keys.reveal(env)),
        "encode_us": per_event(lambda: encode(plain)),
        "decode_us": per_event(lambda: decode(raw)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--events", type=int, default=5, help="events per user (1 created)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--long", type=int, default=None, help="users with 500 events")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    users = args.users or (300 if args.quick else 2000)
    long = args.long or (6 if args.quick else 20)
    kek = LocalKeyEncryptionKey(os.urandom(32))
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = [one_run(users, args.events, args.threads, long, kek) for _ in range(args.runs)]
    result: dict[str, Any] = {
        "workload": {
            "users": users,
            "events_per_user": args.events,
            "threads": args.threads,
            "long_streams": f"{long} users x {LONG} events",
            "runs": args.runs,
            "personal_fields": "name and email of every event (2 in UserCreated, 1 after)",
        },
        "load_average_before": load_before,
    }
    for measure in ("append", "append_existing", "load", "load_long", "projection"):
        plain = [r[measure]["plain"] for r in runs]
        personal_ = [r[measure]["personal"] for r in runs]
        ratios = [p / q for p, q in zip(personal_, plain, strict=True)]
        shares = [r[measure]["crypto_share"] for r in runs]
        result[measure] = {
            "crypto_share_of_personal_time": round(statistics.median(shares), 3),
            "plain_events_per_s": round(statistics.median(plain)),
            "personal_events_per_s": round(statistics.median(personal_)),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
        }
    result["cpu_per_event"] = {
        k: round(v, 2) for k, v in cpu_costs(kek, 2000 if args.quick else 20000).items()
    }
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
