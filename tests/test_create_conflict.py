"""Creating an aggregate whose id exists: the writer's and a forwarding client's
Application.save both say it exists (StreamExistsError), not "reload and retry"."""

from __future__ import annotations

import pytest
from examples.users.domain import User

from kes import Application, ConcurrencyError, StreamExistsError
from kes.store.kafka import KafkaEventStore

pytestmark = pytest.mark.kafka


def test_saving_a_new_aggregate_under_an_existing_id_says_it_exists(
    kafka_store: KafkaEventStore,
) -> None:
    kafka_store.owned_partitions("User")  # the writer owns every partition
    writer = Application(kafka_store)
    writer.save(User("jdoe-1", "jdoe", "jdoe@example.com"))
    with KafkaEventStore(kafka_store.config, role="client") as client_store:
        client = Application(client_store)  # every append is forwarded to the writer
        for app in (writer, client):
            with pytest.raises(StreamExistsError) as info:
                app.save(User("jdoe-1", "other", "other@example.com"))
            message = str(info.value)
            assert "User 'jdoe-1' already exists (it is at version 1)" in message
            assert "cannot succeed" in message and "retry the command" not in message
            assert isinstance(info.value, ConcurrencyError)  # still caught as a conflict
        assert client.get(User, "jdoe-1").username == "jdoe"
