"""``kes status`` against real Kafka: as JSON for scripts, and as a refreshing screen in a
real terminal (tmux), next to a live writer and a projection with one dead letter."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kes import NewEvent
from kes.projections import Projection, ProjectionRunner
from kes.store.kafka import KafkaConfig, KafkaEventStore

pytestmark = [pytest.mark.kafka]

KES = str(Path(sys.executable).parent / "kes")


def status_json(config: KafkaConfig) -> dict[str, Any]:
    done = subprocess.run(
        [KES, "status", "--json", "--interval", "0", "--namespace", config.ns],
        env={**os.environ, "KES_BOOTSTRAP_SERVERS": config.bootstrap_servers},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def orders(store: KafkaEventStore, start: int, n: int) -> None:
    for i in range(start, start + n):
        event = NewEvent(event_type="Placed", payload={"bad": i == 3})
        store.append("Order", f"o{i}", [event], 0)


def project(config: KafkaConfig) -> None:
    tries = []

    class Orders(Projection):
        name = "orders"
        aggregate_types = ("Order",)
        max_attempts = 1

        def on_Placed(self, event: Any) -> None:
            if event.payload["bad"]:
                tries.append(event.event_id)
                raise ValueError("a bad order")

    ProjectionRunner(Orders(), config, until_caught_up=True).run()
    assert len(tries) == 1, "max_attempts = 1: the bad order is parked after one try"


def test_status_as_json_names_the_owner_the_lag_and_the_dead_letter(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig
) -> None:
    orders(kafka_store, 0, 20)  # 20 appends, one transaction each: 20 records, 20 markers
    project(kafka_config)
    st = status_json(kafka_config)
    assert st["namespace"] == kafka_config.ns
    assert st["brokers"] and st["controller"] in [int(b) for b in st["brokers"]]
    (topic,) = st["topics"]
    assert topic["aggregate_type"] == "Order" and topic["partitions"] == 4
    assert topic["end_offsets"] == 40
    (writer,) = st["writers"]
    assert writer["owners"] == {kafka_config.member_name: [0, 1, 2, 3]}
    (consumer,) = st["consumers"]
    assert consumer["name"] == "orders" and consumer["kind"] == "projection"
    assert consumer["lag"] == 0 and consumer["dead_letters"] == 1

    orders(kafka_store, 20, 5)  # the projection has not read these yet
    st = status_json(kafka_config)
    assert st["topics"][0]["end_offsets"] == 50
    assert st["consumers"][0]["lag"] == 10


def test_an_empty_namespace_is_an_error_not_an_empty_screen(kafka_config: KafkaConfig) -> None:
    done = subprocess.run(
        [KES, "status", "--namespace", "nothing" + uuid.uuid4().hex[:6]],
        env={**os.environ, "KES_BOOTSTRAP_SERVERS": kafka_config.bootstrap_servers},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "has no event topics and no projection or pipeline" in done.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_status_screen_refreshes_in_a_real_terminal(
    kafka_store: KafkaEventStore, kafka_config: KafkaConfig, unique: str
) -> None:
    orders(kafka_store, 0, 10)
    project(kafka_config)
    session = f"kes-status-{unique}"
    # (COLUMNS: rich, started by tmux from within pytest, measured 80 columns.)
    command = (
        f"COLUMNS=200 KES_BOOTSTRAP_SERVERS={shlex.quote(kafka_config.bootstrap_servers)} "
        f"{shlex.quote(KES)} status --watch 1 --namespace {kafka_config.ns}"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", command],
        check=True,
    )
    try:
        screen = wait_for_screen(session, "end offsets")
        assert f"namespace {kafka_config.ns}" in screen
        assert kafka_config.topic("Order") in screen
        assert kafka_config.member_name in screen and "0,1,2,3" in screen
        assert "orders" in screen and "projection" in screen
        assert row_of(screen, kafka_config.topic("Order"))[-2] == "20"  # end offsets
        orders(kafka_store, 10, 15)  # the screen follows: 25 appends, 50 offsets
        topic = kafka_config.topic("Order")
        screen = wait_for_screen(session, topic, lambda s: row_of(s, topic)[-2] == "50", 30)
        assert row_of(screen, "orders")[-2] == "30"  # its lag in offsets: 15 records, 15 markers
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and alive(session):
            time.sleep(0.2)
        assert not alive(session), "kes status --watch did not end on Ctrl-C"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


def wait_for_screen(
    session: str, text: str, ok: Callable[[str], bool] = lambda _: True, timeout: float = 60
) -> str:
    """The screen once it shows ``text`` and ``ok(screen)`` holds."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        if text in screen and ok(screen):
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{text!r} never appeared as expected; the screen:\n{screen}")


def row_of(screen: str, first: str) -> list[str]:
    """The cells of the table row holding ``first``."""
    (line,) = [line for line in screen.splitlines() if f" {first} " in line]
    return [cell.strip() for cell in line.split("│") if cell.strip()]


def alive(session: str) -> bool:
    return (
        subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode == 0
    )
