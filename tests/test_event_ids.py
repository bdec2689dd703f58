"""Event ids: random version-4 UUIDs, drawn from a batch of random bytes per thread."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from kes.envelope import new_event_id


def test_event_ids_are_unique_version_4_uuids_across_threads() -> None:
    found: list[list[str]] = []

    def draw() -> None:
        found.append([new_event_id() for _ in range(20_000)])

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for batch in found for i in batch]
    assert len(set(ids)) == len(ids) == 80_000
    parsed = uuid.UUID(ids[123])
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == ids[123]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_draws_its_parents_next_event_id() -> None:
    new_event_id()  # the parent's batch of random bytes is filled now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    assert child != new_event_id()
