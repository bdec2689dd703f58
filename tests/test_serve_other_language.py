"""A client in another language (a single-file Java 17 program, run with the JDK the broker
already needs) appends and reads through `kes serve`, including a 409 on a stale version."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kes import KafkaConfig, KafkaEventStore
from kes.serve import ServeSettings, create_app, parse_tokens
from tests.serve_support import APPEND, READ, serving

pytestmark = pytest.mark.kafka

CLIENT = Path(__file__).resolve().parent / "clients" / "KesClient.java"


def test_a_java_client_appends_reads_and_gets_409_on_a_stale_version(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig
) -> None:
    java = shutil.which("java")
    assert java is not None, "java is needed (scripts/provision.sh installs it)"
    both = "java-client-token-0123456789 read,append java"
    settings = ServeSettings(
        tokens=(*parse_tokens(both, "t"), *parse_tokens(f"{READ} read\n{APPEND} append", "t"))
    )
    with serving(create_app(kafka_store, settings)) as url:
        run = subprocess.run(
            [java, str(CLIENT), url, "java-client-token-0123456789", "Wallet", "w-java"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["created"] == [201, 1]
    assert seen["appended"] == [201, 2]
    assert seen["stale"] == [409, 2, "application/problem+json"]
    assert seen["retry"] == [200, 2]  # same eventId: recognised, nothing written
    assert seen["read"] == [200, [1, 2], "2"]
    events = kafka_store.read_stream("Wallet", "w-java")
    assert [(e.event_type, e.payload["amount"], e.metadata) for e in events] == [
        ("Opened", 100, {"client": "java"}),
        ("Deposited", 25, {"client": "java"}),
    ]
