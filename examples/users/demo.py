"""The users example against real Kafka: ``python -m examples.users.demo``.

Needs ``KES_BOOTSTRAP_SERVERS`` (``make demo`` starts a local broker and sets it).
Every run uses fresh user ids, so it can be run again and again on the same topics.
"""

from __future__ import annotations

import json
import uuid

from confluent_kafka import Consumer, TopicPartition
from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from examples.users.domain import User, UserDeactivatedError
from kes import Application, KafkaConfig, Position


def read_raw(config: KafkaConfig, position: Position) -> tuple[str, list[tuple[str, str]], str]:
    """Key, headers and value of the record at ``position``, read with a plain consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": config.bootstrap_servers,
            **config.client,
            "group.id": f"kes-demo-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        consumer.assign([TopicPartition(position.topic, position.partition, position.offset)])
        for _ in range(100):  # up to ~10 s: the commit marker may land just after the append
            msg = consumer.poll(0.1)
            if msg is not None and msg.error() is None:
                key = (msg.key() or b"").decode()
                headers = [(k, (v or b"").decode()) for k, v in msg.headers() or []]
                return key, headers, (msg.value() or b"").decode()
        raise RuntimeError(f"no committed record at {position}")
    finally:
        consumer.close()


def main() -> None:
    console = Console(highlight=False)
    run = uuid.uuid4().hex[:6]
    with Application.from_env(snapshot_every={"User": 3}) as app:
        config = KafkaConfig.from_env()  # the same settings, for the plain consumer below
        console.rule(f"[bold]kes users demo[/] — Kafka at {config.bootstrap_servers}")

        # 1. Register three users: one append (one Kafka transaction) each.
        alice = User(f"alice-{run}", "alice", "alice@example.com")
        bob = User(f"bob-{run}", "bob", "bob@example.com")
        carol = User(f"carol-{run}", "carol", "carol@example.com")
        first, *_ = app.save(alice, bob, carol)
        console.print(f"Registered alice, bob and carol (run {run}).")

        # 2. Change them: each save appends only the new events, with optimistic concurrency.
        alice.change_email("alice@work.example.com")
        alice.rename("alice.smith")
        alice.change_email("alice.smith@work.example.com")
        bob.deactivate("left the company")
        app.save(alice, bob)

        table = Table("user", "username", "email", "active", "version", title="Current state")
        for user_id in (alice.id, bob.id, carol.id):
            u = app.get(User, user_id)
            table.add_row(u.id, u.username, u.email, str(u.active), str(u.version))
        console.print(table)

        # 3. One event exactly as it lies in Kafka, read back by the position of its append.
        position = first.positions[0]
        key, headers, value = read_raw(config, position)
        head = f"key: {key}\nheaders: " + ", ".join(f"{k}={v}" for k, v in headers)
        console.print(
            Panel(
                Group(head, Syntax(json.dumps(json.loads(value), indent=2), "json")),
                title=f"Raw record {position.topic}[{position.partition}]@{position.offset}",
            )
        )

        # 4. Replay: the state is rebuilt from events, now and at an earlier version.
        events = app.store.read_stream("User", alice.id)
        replayed = User.replay(events)
        assert replayed is not None
        console.print(
            f"Rebuilt {alice.id} by replaying {len(events)} events: "
            f"username={replayed.username!r} email={replayed.email!r} version={replayed.version}"
        )
        old = app.get(User, alice.id, version=2)
        console.print(f"{alice.id} at version 2: username={old.username!r} email={old.email!r}")
        offsets = ", ".join(str(e.position.offset) for e in events)
        where = events[0].position
        console.print(
            f"Its events live in topic {where.topic}, partition {where.partition}, "
            f"offsets {offsets} (the gaps hold transaction commit markers)."
        )

        # 5. A command that breaks a rule is refused with a typed error; nothing is written.
        deactivated = app.get(User, bob.id)
        try:
            deactivated.change_email("bob@new.example.com")
        except UserDeactivatedError as exc:
            console.print(f"[red]Refused:[/] {type(exc).__name__}: {exc}")
        console.print(f"{bob.id} is still at version {app.get(User, bob.id).version}.")


if __name__ == "__main__":
    main()
