"""The eventsourcing library's own test cases, subclassed (not copied), against kes on
real Kafka: recorders, the infrastructure factory, and applications.

Each test runs in a namespace of its own (fresh topics), and each recorder a test makes
gets a log of its own, as the library's cases expect of a fresh database table.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import TestCase

import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    TrackingRecorder,
)
from eventsourcing.tests import application as library_app
from eventsourcing.tests import persistence as library
from eventsourcing.utils import Environment

from kes.integrations.eventsourcing import (
    KafkaAggregateRecorder,
    KafkaApplicationRecorder,
    KafkaFactory,
    KafkaProcessRecorder,
    KafkaTrackingRecorder,
)
from kes.integrations.eventsourcing._shared import close_all

pytestmark = pytest.mark.kafka

MODULE = "kes.integrations.eventsourcing"


@pytest.fixture(autouse=True)
def kafka_env(
    bootstrap_servers: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The environment an application is given to run on kes, in a namespace of its own."""
    monkeypatch.setenv("PERSISTENCE_MODULE", MODULE)
    monkeypatch.setenv("KES_BOOTSTRAP_SERVERS", bootstrap_servers)
    monkeypatch.setenv("KES_NAMESPACE", "es" + uuid.uuid4().hex[:10])
    monkeypatch.setenv("KES_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("KES_SESSION_TIMEOUT_MS", "6000")
    yield
    gc.collect()  # applications the library's cases leave open close in __del__
    close_all()


class FreshLogs(TestCase):
    """Each recorder a test makes is on a log of its own (a new application name)."""

    def factory(self) -> KafkaFactory:
        factory = KafkaFactory(Environment("T" + uuid.uuid4().hex[:10], dict(os.environ)))
        self.addCleanup(factory.close)
        return factory


class WithTextOriginatorIDs:
    def new_originator_id(self) -> uuid.UUID | str:
        return "account-" + str(uuid.uuid4())


# ---- recorders --------------------------------------------------------------------------


class TestAggregateRecorder(FreshLogs, library.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory().aggregate_recorder()


class TestAggregateRecorderWithTextIDs(WithTextOriginatorIDs, TestAggregateRecorder):
    pass


class TestSnapshotRecorder(FreshLogs, library.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory().aggregate_recorder(purpose="snapshots")


class TestApplicationRecorder(
    FreshLogs, library.ApplicationRecorderTestCase[KafkaApplicationRecorder]
):
    def create_recorder(self) -> KafkaApplicationRecorder:
        recorder = self.factory().application_recorder()
        assert isinstance(recorder, KafkaApplicationRecorder)
        return recorder

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestApplicationRecorderWithTextIDs(WithTextOriginatorIDs, TestApplicationRecorder):
    pass


class TestNonInterleavingNotificationIDs(FreshLogs, library.NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()


class TestTrackingRecorder(FreshLogs, library.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.factory().tracking_recorder()


class TestProcessRecorder(FreshLogs, library.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.factory().process_recorder()


class TestProcessRecorderWithTextIDs(WithTextOriginatorIDs, TestProcessRecorder):
    pass


# ---- the infrastructure factory ----------------------------------------------------------


class CustomTrackingRecorder(KafkaTrackingRecorder):
    pass


class TestInfrastructureFactory(library.InfrastructureFactoryTestCase[KafkaFactory]):
    def setUp(self) -> None:
        self.env = Environment("TestCase", {"PERSISTENCE_MODULE": MODULE})
        super().setUp()

    def expected_factory_class(self) -> type[KafkaFactory]:
        return KafkaFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return KafkaAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return KafkaApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return KafkaTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return KafkaProcessRecorder


# ---- applications -------------------------------------------------------------------------


class TestApplication(library_app.ApplicationTestCase):
    pass


class TestExampleApplication(library_app.ExampleApplicationTestCase):
    expected_factory_topic = "kes.integrations.eventsourcing.factory:KafkaFactory"
