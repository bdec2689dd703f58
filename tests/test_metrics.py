"""Prometheus metrics against real Kafka: what a scrape says a writer and a projection did
equals what the log holds, counted by a plain consumer."""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kes import ANY, NewEvent, metrics
from kes.errors import ConcurrencyError, InvalidInputError
from kes.projections import Projection, ProjectionRunner
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import read_topic
from tests.serve_support import free_port

pytestmark = [pytest.mark.kafka]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of http://127.0.0.1:port/metrics, by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_writer_and_a_projection_report_what_the_log_holds(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig, unique: str
) -> None:
    port = free_port()
    metrics.serve(port)
    type_ = f"Metered{unique}"  # labels of this test only, in a registry the process shares
    written = conflicts = 0

    def work(i: int) -> tuple[int, int]:
        ok = refused = 0
        agg = f"a{i}"
        for v in range(4):  # 4 appends of 1..3 events each
            events = [NewEvent(event_type="Ticked", payload={"n": n}) for n in range(v % 3 + 1)]
            kafka_store.append(type_, agg, events, _version(v))
            ok += 1
        try:  # a stale writer: refused
            kafka_store.append(type_, agg, [NewEvent(event_type="Ticked", payload={})], 1)
        except ConcurrencyError:
            refused += 1
        return ok, refused

    with ThreadPoolExecutor(8) as pool:
        for ok, refused in pool.map(work, range(40)):
            written += ok
            conflicts += refused
    records = read_topic(kafka_config.bootstrap_servers, kafka_config.topic(type_), 4, seconds=60)
    assert conflicts == 40 and written == 160
    assert len(records) == 40 * (1 + 2 + 3 + 1)

    s = scrape(port)
    assert sample(s, "kes_appends_total", aggregate_type=type_, outcome="written") == written
    assert sample(s, "kes_appends_total", aggregate_type=type_, outcome="conflict") == conflicts
    assert sample(s, "kes_events_appended_total", aggregate_type=type_) == len(records)
    assert sample(s, "kes_owned_partitions", aggregate_type=type_) == 4
    assert sample(s, "kes_takeovers_total", aggregate_type=type_, outcome="done") == 4
    topic = kafka_config.topic(type_)
    index = sum(sample(s, "kes_index_aggregates", topic=topic, partition=str(p)) for p in range(4))
    assert index == 40  # aggregates in the version index of the four partitions
    assert s[("kes_writer_transactions_total", (("outcome", "committed"),))] >= 1

    # A projection reading that log: events counted, lag down to 0 on every partition.
    handled: list[int] = []

    class Counting(Projection):
        name = f"{unique}-metered"
        aggregate_types = (type_,)

        def on_Ticked(self, event: Any) -> None:
            handled.append(1)

    runner = ProjectionRunner(Counting(), kafka_config)
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        lags: list[float] = []
        while time.monotonic() < deadline:
            s = scrape(port)
            lags = [
                sample(s, "kes_consumer_lag", consumer=Counting.name, topic=topic, partition=str(p))
                for p in range(4)
            ]
            reported = [
                k for k in s if k[0] == "kes_consumer_lag" and ("consumer", Counting.name) in k[1]
            ]
            if len(handled) == len(records) and len(reported) == 4 and not any(lags):
                break
            time.sleep(0.5)
        events = sample(s, "kes_projection_events_total", projection=Counting.name)
        assert len(handled) == len(records), "the projection did not handle the whole log"
        assert events == len(records)
        assert len(reported) == 4 and lags == [0, 0, 0, 0], f"lag never reached 0: {lags}"
    finally:
        runner.stop()
        thread.join(timeout=30)


def _version(appends_done: int) -> int:
    """The stream's version after ``appends_done`` appends of 1, 2, 3, 1, ... events."""
    return sum(v % 3 + 1 for v in range(appends_done))


def test_lag_while_behind_is_the_offsets_still_to_read(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig, unique: str
) -> None:
    """The lag gauge is not stuck at 0: a slow projection reports how far it is from the
    end (offsets: records and commit markers), then 0 once it has read everything."""
    port = free_port()
    metrics.serve(port)
    type_ = f"Lagging{unique}"
    for i in range(200):
        kafka_store.append(type_, "one", [NewEvent(event_type="Ticked", payload={"i": i})], i)
    topic = kafka_config.topic(type_)
    (record, *_) = read_topic(kafka_config.bootstrap_servers, topic, 4)
    partition = str(record.partition)
    end = 400  # 200 appends, each one transaction: a record and a commit marker

    class Slow(Projection):
        name = f"{unique}-slow"
        aggregate_types = (type_,)

        def on_Ticked(self, event: Any) -> None:
            time.sleep(0.02)

    runner = ProjectionRunner(Slow(), kafka_config, batch_size=10)
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        seen: list[float] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            s = scrape(port)
            lag = sample(
                s, "kes_consumer_lag", consumer=Slow.name, topic=topic, partition=partition
            )
            seen.append(lag)
            if runner.stats.records == 200 and lag == 0 and any(seen):
                break
            time.sleep(0.2)
        behind = [v for v in seen if v > 0]
        assert behind, f"no lag reported while behind: {seen}"
        assert all(v <= end for v in behind), f"lag beyond the end of the log: {behind}"
        assert behind == sorted(behind, reverse=True), f"lag grew with nothing appended: {behind}"
        assert runner.stats.records == 200
        assert seen[-1] == 0, f"lag never came back to 0: {seen[-5:]}"
    finally:
        runner.stop()
        thread.join(timeout=30)


def test_a_metrics_port_that_is_taken_is_an_error_that_says_so() -> None:
    port = free_port()
    metrics.serve(port)
    metrics.serve(port)  # the same address again: already served, nothing to do
    with pytest.raises(InvalidInputError, match=r"port must be 1\.\.65535"):
        metrics.serve(0)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(InvalidInputError, match=r"cannot serve metrics on 127\.0\.0\.1"):
            metrics.serve(taken.getsockname()[1])


def test_recording_can_be_turned_off_and_on() -> None:
    before = metrics.APPENDS.labels("Toggled", "written")._value.get()
    metrics.set_enabled(False)
    try:
        metrics.append_finished("Toggled", "written")
    finally:
        metrics.set_enabled(True)
    assert metrics.APPENDS.labels("Toggled", "written")._value.get() == before
    metrics.append_finished("Toggled", "written")
    assert metrics.APPENDS.labels("Toggled", "written")._value.get() == before + 1


def test_kes_project_run_serves_its_metrics_on_the_port_given(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig, unique: str, tmp_path: Any
) -> None:
    """`kes project run --metrics-port`: a scraper finds the projection's counters and lag
    there, as they stand in the log."""
    import os
    import signal
    import subprocess
    import sys

    from tests.serve_support import ROOT

    type_ = f"Served{unique}"
    for i in range(25):
        kafka_store.append(type_, f"s{i % 5}", [NewEvent(event_type="Ticked", payload={})], ANY)
    name = f"{unique}-served"
    (tmp_path / f"served_{unique}.py").write_text(
        "from kes.projections import Projection\n"
        "class Served(Projection):\n"
        f"    name = {name!r}\n"
        f"    aggregate_types = ({type_!r},)\n"
        "    def on_Ticked(self, event):\n"
        "        pass\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "KES_BOOTSTRAP_SERVERS": kafka_config.bootstrap_servers,
        "KES_NAMESPACE": kafka_config.ns,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
    }
    cmd = ["project", "run", f"served_{unique}:Served", "--metrics-port", str(port)]
    proc = subprocess.Popen([sys.executable, "-m", "kes.cli", *cmd], env=env, cwd=tmp_path)
    try:
        # (a partition with no record and no position yet reports no lag)
        topic = kafka_config.topic(type_)
        filled = {r.partition for r in read_topic(kafka_config.bootstrap_servers, topic, 4)}
        deadline = time.monotonic() + 60
        events, lags = 0.0, {}
        while time.monotonic() < deadline:
            try:
                s = scrape(port)
            except OSError:  # not listening yet
                time.sleep(0.5)
                continue
            events = sample(s, "kes_projection_events_total", projection=name)
            lags = {
                int(dict(labels)["partition"]): v
                for (n, labels), v in s.items()
                if n == "kes_consumer_lag" and ("consumer", name) in labels
            }
            if events == 25 and filled <= set(lags) and not any(lags.values()):
                break
            time.sleep(0.5)
        assert events == 25, events
        assert filled <= set(lags) and not any(lags.values()), (filled, lags)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
