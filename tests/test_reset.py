"""`kes project reset` and `kes stream reset` against real Kafka: after a reset the next
run rebuilds the read model, or recomputes the pipeline's results, from the first event,
each event once."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from kes import NewEvent
from kes.kafka.topics import Topics
from kes.projections import ProjectionRunner
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.cli_support import ROOT, kes
from tests.faults import read_log
from tests.test_projections import append, expected_totals, sqlite_totals
from tests.test_streams import T0
from tests.workers.projector import totals_class

pytestmark = [pytest.mark.kafka]


def test_a_reset_projection_is_rebuilt_from_the_log_by_its_next_run(
    kafka_config: KafkaConfig, kafka_store: KafkaEventStore, tmp_path: Path, unique: str
) -> None:
    db = tmp_path / "totals.db"
    module = f"proj_{unique}"
    (tmp_path / f"{module}.py").write_text(
        "from tests.workers.projector import totals_class\n"
        f"Totals = totals_class({unique + '.totals'!r}, 'Acct', 'totals')\n"
        f"Totals.database = {'sqlite:///' + str(db)!r}\n"
    )
    for i in range(30):
        append(kafka_store, "Acct", f"a{i % 7}", "Added", amount=i)
    want = expected_totals(kafka_config, "Acct")
    projection = totals_class(f"{unique}.totals", "Acct", "totals")
    run = ProjectionRunner(projection(), kafka_config, database=str(db), until_caught_up=True)
    assert run.run().records == 30
    assert sqlite_totals(db) == want

    env = {
        "KES_BOOTSTRAP_SERVERS": kafka_config.bootstrap_servers,
        "KES_NAMESPACE": kafka_config.ns,
    }
    done = kes("project", "reset", f"{module}:Totals", "--yes", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "reset to the first event" in done.stdout
    assert sqlite_totals(db) == {}  # emptied, in the same transaction as the offsets

    again = ProjectionRunner(projection(), kafka_config, database=str(db), until_caught_up=True)
    assert again.run().records == 30  # from the first event, not from where it was
    assert sqlite_totals(db) == want  # once: nothing counted twice


def test_a_reset_pipeline_recomputes_its_results_once(
    kafka_config: KafkaConfig, tmp_path: Path, unique: str
) -> None:
    """`kes stream reset`: after a run, the outputs, internal topics, group and local state
    are deleted (refused while it runs), and the next run writes each hour once again,
    versions from 1: no state of the first run survived."""
    config = dataclasses.replace(kafka_config, partitions=1)  # one partition: one order
    with KafkaEventStore(config) as store:
        for i, minute in enumerate([10, 20, 70, 80, 140, 220]):  # after T0 = 09:00
            user = f"u{i}"
            created = NewEvent(
                event_type="UserCreated",
                payload={"user_id": user, "username": user, "email": f"{user}@x.org"},
                timestamp=T0 + timedelta(minutes=minute),
            )
            store.append("User", user, [created], 0)
    (tmp_path / f"pipe_{unique}.py").write_text(
        "from examples.users.domain import User\n"
        "from examples.users.streams import count_signups\n"
        "from kes.streams import Pipeline\n"
        f"pipeline = Pipeline({unique!r}, count_signups, aggregates=[User])\n"
    )
    spec = f"pipe_{unique}:pipeline"
    env = {"KES_BOOTSTRAP_SERVERS": config.bootstrap_servers, "KES_NAMESPACE": config.ns}
    hour = 3_600_000
    start = int(T0.timestamp() * 1000)
    want = [(1, start, 2), (2, start + hour, 2), (3, start + 2 * hour, 1)]

    def hours() -> list[tuple[int, int, int]]:
        return [
            (r["version"], r["payload"]["hourStart"], r["payload"]["signups"])
            for r in read_log(config.bootstrap_servers, config.topic("SignupRate"), 1)
        ]

    def run_until_results() -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kes.cli", "stream", "run", spec, "--state-dir", "st"],
            env={**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])},
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and hours() != want:
                time.sleep(1)
            assert hours() == want
            refused = kes("stream", "reset", spec, "--yes", env=env, cwd=tmp_path)
            assert refused.returncode == 1 and "running member" in refused.stderr
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0

    run_until_results()
    state = tmp_path / "st" / unique
    assert state.is_dir()
    topics = Topics(config)
    group = config.stream_group(unique)
    internal = topics.names(f"changelog__{group}--") + topics.names(f"repartition__{group}--")
    assert internal  # the windows' changelog and the re-keyed records

    done = kes("stream", "reset", spec, "--state-dir", "st", "--yes", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert config.topic("SignupRate") in done.stdout and internal[0] in done.stdout
    assert all(topics.describe(t) is None for t in [config.topic("SignupRate"), *internal])
    assert not state.exists()

    run_until_results()  # recomputed from the source: each hour once, versions from 1
    time.sleep(2)
    assert hours() == want
