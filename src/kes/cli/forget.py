"""``kes forget SUBJECT``: erase a data subject's personal data (crypto-shredding)."""

from __future__ import annotations

import json

import click

from kes.cli.options import bootstrap_option, json_option, kafka_config, prefix_option


@click.command()
@click.argument("subject")
@click.option(
    "--keep-snapshots",
    is_flag=True,
    help="Do not read the snapshot topic to delete the subject's (sealed) snapshots now; "
    "they are unreadable anyway and are deleted when next loaded.",
)
@bootstrap_option
@prefix_option
@json_option
def forget(
    subject: str,
    keep_snapshots: bool,
    bootstrap_servers: str,
    topic_prefix: str | None,
    as_json: bool,
) -> None:
    """Forget data subject SUBJECT: delete its data keys (tombstones in <namespace>.keys)
    and record SubjectForgotten. Its personal fields then read as placeholders
    everywhere; every other field, version and event id stays. Forgetting twice changes
    nothing; an unknown subject is an error. Needs no key-encryption key."""
    from kes.application import Application
    from kes.store.kafka import KafkaEventStore, KafkaKeyRing, KafkaSnapshotStore

    config = kafka_config(bootstrap_servers, topic_prefix)
    keys = KafkaKeyRing.from_env(config)
    snapshots = None if keep_snapshots else KafkaSnapshotStore(config)
    with Application(KafkaEventStore(config), snapshots=snapshots, keys=keys) as app:
        forgotten = app.forget(subject)
    if as_json:
        click.echo(json.dumps({"subject": subject, "forgotten": forgotten}))
    elif forgotten:
        click.echo(
            f"forgot subject {subject!r}: its data keys are deleted from {config.key_topic()} "
            f"and SubjectForgotten is recorded; its personal fields now read as placeholders."
        )
    else:
        click.echo(f"subject {subject!r} was already forgotten; nothing was written.")
