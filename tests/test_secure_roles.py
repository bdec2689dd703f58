"""Each kes role on a secured Kafka does what it needs, and what it does not need is
refused at once with an error that names principal, resource, operation and the
`kes acl grant` that gives it; nothing is written (checked by the admin principal with
a plain consumer)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from kes import ANY, NO_STREAM, AccessDeniedError, NewEvent
from kes.broker import LocalCluster
from kes.schemas import SchemaRegistry
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.faults import read_topic, worker_args
from tests.secure_support import config_of, plain_conf, principal

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent


def event(**payload: object) -> NewEvent:
    return NewEvent(event_type="Happened", payload=payload)


def log_of(cluster: LocalCluster, config: KafkaConfig, aggregate_type: str) -> list[bytes]:
    """Every committed record of the type's event topic, read as the admin by a plain
    consumer (no kes code)."""
    topic = config.topic(aggregate_type)
    records = read_topic(cluster.bootstrap_servers, topic, conf=plain_conf(cluster, "admin"))
    return [r.value or b"" for r in records]


def refused_quickly(action: object, seconds: float = 10) -> AccessDeniedError:
    started = time.monotonic()
    with pytest.raises(AccessDeniedError) as caught:
        action()  # type: ignore[operator]
    assert time.monotonic() - started < seconds, "the refusal took longer than it may"
    return caught.value


@pytest.fixture
def written(secure_broker: LocalCluster, secure_base: KafkaConfig, unique: str) -> KafkaConfig:
    """A writer of type T that appended one event to stream s; its config."""
    writer = principal(secure_broker, secure_base, f"w-{unique}", "writer", aggregate_types=("T",))
    with KafkaEventStore(writer) as store:
        store.append("T", "s", [event(n=1)], NO_STREAM)
    return writer


def test_reader_reads_streams_and_history_but_its_append_is_refused_and_nothing_written(
    secure_broker: LocalCluster, secure_base: KafkaConfig, written: KafkaConfig, unique: str
) -> None:
    reader = principal(secure_broker, secure_base, f"r-{unique}", "reader", aggregate_types=("T",))
    with KafkaEventStore(reader, role="client") as store:
        assert [e.payload for e in store.read_stream("T", "s")] == [{"n": 1}]
        assert store.stream_version("T", "s") == 1
        assert [e.aggregate_id for e in store.read_all("T")] == ["s"]
        error = refused_quickly(lambda: store.append("T", "s", [event(n=2)], 1))
    assert error.principal == f"User:r-{unique}"
    assert error.resource == f"Topic:{unique}.events.T.requests"
    assert error.operation == "DESCRIBE"
    assert error.grant == (
        f"kes acl grant --role writer --aggregate-type T --principal User:r-{unique} "
        f"--namespace {unique}"
    )
    assert error.grant in str(error) and "Nothing was written" in str(error)
    assert len(log_of(secure_broker, written, "T")) == 1


def test_projection_principal_appending_is_refused_and_nothing_written(
    secure_broker: LocalCluster, secure_base: KafkaConfig, written: KafkaConfig, unique: str
) -> None:
    projector = principal(
        secure_broker, secure_base, f"p-{unique}", "projection", aggregate_types=("T",), group="g"
    )
    with KafkaEventStore(projector) as store:
        error = refused_quickly(lambda: store.append("T", "s", [event(n=2)], ANY))
    assert error.principal == f"User:p-{unique}"
    assert error.resource == f"Topic:{unique}.events.T.requests"
    assert "--role writer --aggregate-type T" in error.grant
    assert len(log_of(secure_broker, written, "T")) == 1


def test_reader_principal_joining_a_writer_group_is_refused_and_owns_nothing(
    secure_broker: LocalCluster, secure_base: KafkaConfig, written: KafkaConfig, unique: str
) -> None:
    # A reader of every type may describe (and read) request topics, so it gets as far
    # as joining the writer group: Kafka refuses that.
    reader = principal(secure_broker, secure_base, f"r-{unique}", "reader")
    with KafkaEventStore(reader) as store:
        error = refused_quickly(lambda: store.owned_partitions("T"))
        refused_quickly(lambda: store.append("T", "s", [event(n=2)], ANY))
    assert error.resource == f"Group:{unique}.writers.T"
    assert error.operation == "READ"
    assert "--role writer --aggregate-type T" in error.grant
    admin = AdminClient(plain_conf(secure_broker, "admin"))
    group = written.writer_group("T")
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    assert not description.members  # the writer has closed; the reader never joined
    assert len(log_of(secure_broker, written, "T")) == 1


def test_writer_of_one_type_appending_to_another_is_refused_and_nothing_written(
    secure_broker: LocalCluster, written: KafkaConfig, unique: str
) -> None:
    other = principal(secure_broker, written, f"o-{unique}", "writer", aggregate_types=("Other",))
    with KafkaEventStore(other) as store:
        store.append("Other", "x", [event()], NO_STREAM)  # its own type: fine
        error = refused_quickly(lambda: store.append("T", "s", [event(n=2)], ANY))
    assert error.resource == f"Topic:{unique}.events.T"
    assert error.operation == "DESCRIBE"
    assert error.grant.startswith("kes acl grant --role writer --aggregate-type T ")
    assert len(log_of(secure_broker, written, "T")) == 1


def test_writer_authenticated_by_client_certificate_appends(
    secure_broker: LocalCluster, secure_base: KafkaConfig, unique: str
) -> None:
    user = f"m-{unique}"
    principal(secure_broker, secure_base, user, "writer", aggregate_types=("T",))
    tls = config_of(secure_broker, user, secure_base, tls=True)
    assert tls.client["security.protocol"] == "SSL" and tls.principal_name == user
    with KafkaEventStore(tls) as store:
        assert store.append("T", "s", [event()], NO_STREAM).version == 1
        assert store.read_stream("T", "s")[0].payload == {}


def test_schemas_role_registers_and_a_writer_reads_but_may_not_register(
    secure_broker: LocalCluster, secure_base: KafkaConfig, unique: str
) -> None:
    schema = json.dumps({"type": "object", "properties": {"n": {"type": "integer"}}})
    registrar = principal(secure_broker, secure_base, f"s-{unique}", "schemas")
    with SchemaRegistry(registrar) as registry:
        registered = registry.register("T-Happened", schema, "JSON")
    writer = principal(secure_broker, secure_base, f"w-{unique}", "writer", aggregate_types=("T",))
    with SchemaRegistry(writer) as registry:
        assert registry.subjects() == ["T-Happened"]
        assert registry.get("T-Happened").id == registered.id
        error = refused_quickly(lambda: registry.register("T-Other", schema, "JSON"))
    assert error.resource == f"TransactionalId:{unique}-schemas._{unique}_schemas"
    assert error.grant.startswith("kes acl grant --role schemas ")


@pytest.mark.slow
def test_pipeline_role_runs_a_windowed_pipeline_exactly_once(
    secure_broker: LocalCluster, secure_base: KafkaConfig, unique: str, tmp_path: Path
) -> None:
    name = f"{unique}-signups"
    one = dataclasses.replace(secure_base, partitions=1)  # one order to reason about
    writer = principal(secure_broker, one, f"w-{unique}", "writer", aggregate_types=("User",))
    t0 = datetime(2024, 5, 1, 10, tzinfo=UTC)
    with KafkaEventStore(writer) as store:
        for i, minutes in enumerate((5, 20, 65, 150)):
            payload = {"user_id": f"u{i}", "username": f"user{i}", "email": f"u{i}@x.org"}
            created = NewEvent(
                event_type="UserCreated", payload=payload, timestamp=t0 + timedelta(minutes=minutes)
            )
            store.append("User", f"u{i}", [created], NO_STREAM)
    runner = principal(
        secure_broker,
        one,
        f"q-{unique}",
        "pipeline",
        aggregate_types=("User",),
        group=name,
        emits=("SignupRate",),
    )
    fields, env = worker_args(runner)
    cmd = [
        sys.executable,
        "-m",
        "tests.workers.streamer",
        "--config",
        json.dumps(fields),
        "--pipeline",
        "examples.users.streams:signups_per_hour",
        "--name",
        name,
        "--state-dir",
        str(tmp_path),
    ]
    assert "sasl.password" not in " ".join(cmd)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if len(log_of(secure_broker, runner, "SignupRate")) >= 2:
                break
            time.sleep(2)
        assert proc.poll() is None, "the pipeline process died"
        outputs = [json.loads(v) for v in log_of(secure_broker, runner, "SignupRate")]
        assert [e["payload"]["signups"] for e in outputs] == [2, 1]
    finally:
        proc.terminate()
        proc.wait(60)
