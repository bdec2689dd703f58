"""`kes project reset` against real Kafka: after a reset the next run rebuilds the read
model from the first event, each event once."""

from __future__ import annotations

from pathlib import Path

import pytest

from kes.projections import ProjectionRunner
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.cli_support import kes
from tests.test_projections import append, expected_totals, sqlite_totals
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
