"""A writer process for fault tests: appends with expected versions from several threads
and logs every outcome (one JSON line, written with O_APPEND and no buffering, so a
kill -9 loses at most the line being written, never an acknowledged one)."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import random
import signal
import threading
import time
import uuid

from kes import ConcurrencyError, KesError, NewEvent
from kes.partitioning import partition_for
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import client_from_env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="KafkaConfig fields as JSON")
    ap.add_argument("--type", default="Race")
    ap.add_argument("--aggregates", type=int, default=50)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready", help="file to write the owned partitions to once joined")
    ap.add_argument("--own-only", action="store_true", help="append only where we own")
    ap.add_argument(
        "--pause-in-commit",
        help="when this file appears: stop this process (SIGSTOP) inside a commit, after the "
        "transaction's offsets were sent and before it commits; writes FILE.paused first",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.pause_in_commit:
        pause_in_commit(args.pause_in_commit)

    config = KafkaConfig(**json.loads(args.config), client=client_from_env())
    store = KafkaEventStore(config)
    owned = store.owned_partitions(args.type)
    names = [f"agg-{i}" for i in range(args.aggregates)]
    if args.own_only:
        names = [n for n in names if partition_for(n, config.partitions) in owned]
    if args.ready:
        with open(args.ready + ".tmp", "w") as f:
            json.dump(
                {"pid": os.getpid(), "owned": owned, "aggregates": names, "at": time.time()}, f
            )
        os.replace(args.ready + ".tmp", args.ready)
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    stop_at = time.monotonic() + args.seconds
    stopping = threading.Event()  # SIGTERM: finish the appends in flight, close, exit 0

    def on_sigterm(*_: object) -> None:
        stopping.set()
        # A stop that hangs is a failure the test reports by timing out; then the stacks
        # of every thread say where (printed on stderr, captured with the test's output).
        faulthandler.dump_traceback_later(40)

    signal.signal(signal.SIGTERM, on_sigterm)

    def log(**fields: object) -> None:
        os.write(fd, (json.dumps(fields) + "\n").encode())

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        while time.monotonic() < stop_at and names and not stopping.is_set():
            agg = rnd.choice(names)
            event_id = str(uuid.uuid4())
            started = time.time()
            log(agg=agg, id=event_id, outcome="started", t0=started)
            try:
                expected = store.stream_version(args.type, agg)
                result = store.append(
                    args.type,
                    agg,
                    [NewEvent(event_type="Bumped", payload={"by": os.getpid()}, event_id=event_id)],
                    expected,
                )
                log(
                    agg=agg,
                    id=event_id,
                    outcome="ok",
                    version=result.version,
                    offset=result.positions[0].offset,
                    t0=started,
                    t1=time.time(),
                )
            except ConcurrencyError as exc:
                log(
                    agg=agg,
                    id=event_id,
                    outcome="conflict",
                    expected=exc.expected,
                    actual=exc.actual,
                    t0=started,
                    t1=time.time(),
                )
            except KesError as exc:
                log(
                    agg=agg,
                    id=event_id,
                    outcome="error",
                    error=type(exc).__name__,
                    message=str(exc)[:300],
                    t0=started,
                    t1=time.time(),
                )

    threads = [threading.Thread(target=work, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store.close()
    os.close(fd)


def pause_in_commit(trigger: str) -> None:
    """Make the next commit after ``trigger`` appears stop the whole process, the way a
    long GC pause or a frozen VM would, at the worst moment for its successor. FILE.paused
    says when, and when that transaction began (its timeout runs from a moment after it)."""
    from kes.kafka.produce import TransactionalProducer

    begin, commit = TransactionalProducer.begin, TransactionalProducer.commit
    begun: dict[int, float] = {}

    def timed_begin(self: TransactionalProducer) -> None:
        begun[id(self)] = time.time()
        begin(self)

    def paused_commit(self: TransactionalProducer) -> None:
        if os.path.exists(trigger):
            os.remove(trigger)
            with open(trigger + ".paused", "w") as f:
                json.dump({"at": time.time(), "begun": begun[id(self)]}, f)
            os.kill(os.getpid(), signal.SIGSTOP)
        commit(self)

    TransactionalProducer.begin = timed_begin  # type: ignore[method-assign]
    TransactionalProducer.commit = paused_commit  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
