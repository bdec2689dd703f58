"""``kes schemas``: the event schema registry kept in Kafka."""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

import click

from kes.cli.options import bootstrap_option, json_option
from kes.domain import Aggregate
from kes.errors import InvalidInputError
from kes.kafka.config import KafkaConfig
from kes.schemas.compatibility import Mode, Policy, json_differences
from kes.schemas.generate import aggregate_schemas
from kes.schemas.registry import SchemaRegistry

topic_option = click.option(
    "--topic",
    envvar="KES_SCHEMAS_TOPIC",
    default=None,
    help="Compacted topic holding the registry (env KES_SCHEMAS_TOPIC; default "
    "_<namespace>_schemas, i.e. _kes_schemas).",
)


def _registry(bootstrap_servers: str, topic: str | None) -> SchemaRegistry:
    return SchemaRegistry(KafkaConfig.from_env(bootstrap_servers=bootstrap_servers), topic=topic)


def _load_class(target: str) -> type[Aggregate]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InvalidInputError(f"{target!r} is not MODULE:Class (e.g. myapp.users:User).")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: MODULE may be local code
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(f"cannot import {module_name!r}: {exc}.") from exc
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise InvalidInputError(f"{module_name} has no {attr!r}.")
    if not (isinstance(obj, type) and issubclass(obj, Aggregate)):
        raise InvalidInputError(f"{target} is not an Aggregate subclass.")
    return obj


@click.group()
def schemas() -> None:
    """Event schemas: list, show, check, register, diff, config, delete, serve
    (Confluent-compatible)."""


@schemas.command("list")
@bootstrap_option
@topic_option
@json_option
def list_(bootstrap_servers: str, topic: str | None, as_json: bool) -> None:
    """List subjects with their versions and compatibility level."""
    with _registry(bootstrap_servers, topic) as reg:
        rows = [
            {
                "subject": s,
                "versions": reg.versions(s),
                "latestId": reg.get(s).id,
                "compatibility": reg.compatibility(s).value,
                "policy": reg.policy(s).value,
            }
            for s in reg.subjects()
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no subjects in {topic}")
    for r in rows:
        click.echo(
            f"{r['subject']}  versions {r['versions']}  id {r['latestId']}  "
            f"{r['compatibility']} {r['policy']}"
        )


@schemas.command()
@click.argument("subject")
@click.argument("version", default="latest")
@bootstrap_option
@topic_option
@json_option
def show(
    subject: str, version: str, bootstrap_servers: str, topic: str | None, as_json: bool
) -> None:
    """Show VERSION (default latest) of SUBJECT."""
    with _registry(bootstrap_servers, topic) as reg:
        got = reg.get(subject, version)
    if as_json:
        click.echo(json.dumps(got.to_json() | {"schema": got.parsed}, indent=2))
        return
    click.echo(f"{got.subject} version {got.version} id {got.id} ({got.schema_type})")
    click.echo(json.dumps(got.parsed, indent=2))


def _check_or_register(target: str, bootstrap: str, topic: str | None, register: bool) -> list[Any]:
    cls = _load_class(target)
    rows: list[Any] = []
    with _registry(bootstrap, topic) as reg:
        for subject, (schema_version, schema) in aggregate_schemas(cls).items():
            row: dict[str, Any] = {"subject": subject, "schemaVersion": schema_version}
            if register:
                got = reg.register(subject, schema)  # raises IncompatibleSchemaError
                row |= {"version": got.version, "id": got.id}
            else:
                breaking = reg.check(subject, schema)
                row |= {
                    "compatibility": reg.compatibility(subject).value,
                    "compatible": not breaking,
                    "breaking": [b.to_json() for b in breaking],
                }
            rows.append(row)
    return rows


@schemas.command()
@click.argument("target", metavar="MODULE:Class")
@bootstrap_option
@topic_option
@json_option
def check(target: str, bootstrap_servers: str, topic: str | None, as_json: bool) -> None:
    """Check each event schema of an aggregate class against the registry (exit 1 if any
    change breaks its subject's compatibility level)."""
    rows = _check_or_register(target, bootstrap_servers, topic, register=False)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            state = "ok" if r["compatible"] else "INCOMPATIBLE"
            click.echo(f"{r['subject']}: {state} ({r['compatibility']})")
            for b in r["breaking"]:
                click.echo(f"  {b['field']}: {b['change']} - {b['why']} ({b['direction']})")
    if not all(r["compatible"] for r in rows):
        raise SystemExit(1)


@schemas.command()
@click.argument("target", metavar="MODULE:Class")
@bootstrap_option
@topic_option
@json_option
def register(target: str, bootstrap_servers: str, topic: str | None, as_json: bool) -> None:
    """Register each event schema of an aggregate class (idempotent)."""
    rows = _check_or_register(target, bootstrap_servers, topic, register=True)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['subject']}: version {r['version']} id {r['id']}")


@schemas.command()
@click.argument("subject")
@click.argument("v1")
@click.argument("v2")
@bootstrap_option
@topic_option
@json_option
def diff(
    subject: str, v1: str, v2: str, bootstrap_servers: str, topic: str | None, as_json: bool
) -> None:
    """Differences between versions V1 and V2 of SUBJECT (JSON Schema), judged under the
    subject's compatibility policy."""
    with _registry(bootstrap_servers, topic) as reg:
        a, b = reg.get(subject, v1, deleted=True), reg.get(subject, v2, deleted=True)
        policy = reg.policy(subject)
    if "JSON" not in (a.schema_type, b.schema_type) or a.schema_type != b.schema_type:
        raise InvalidInputError("kes schemas diff compares JSON Schema versions only.")
    allowed = policy.compatible_changes
    forward_breaking = {
        d.path for d in json_differences(b.parsed, a.parsed, allowed) if not d.compatible
    }
    rows = [
        {
            "field": d.field,
            "path": d.path,
            "change": d.type,
            "backward": d.compatible,
            "forward": d.path not in forward_breaking,
        }
        for d in json_differences(a.parsed, b.parsed, allowed)
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"{subject} v{a.version} and v{b.version} are equal")
    for r in rows:
        flags = ("backward-ok" if r["backward"] else "BACKWARD-BREAKING") + (
            "" if r["forward"] else ", FORWARD-BREAKING"
        )
        click.echo(f"{r['field']}: {r['change']} ({flags})")


@schemas.command()
@click.argument("subject", required=False)
@click.option(
    "--compatibility",
    type=click.Choice([m.value for m in Mode], case_sensitive=False),
    help="Set the compatibility level.",
)
@click.option(
    "--policy",
    type=click.Choice([p.value for p in Policy], case_sensitive=False),
    help="Set the JSON Schema compatibility policy (STRICT is Confluent's default).",
)
@click.option(
    "--delete", is_flag=True, help="Forget the level and policy set (fall back to global)."
)
@bootstrap_option
@topic_option
@json_option
def config(
    subject: str | None,
    compatibility: str | None,
    policy: str | None,
    delete: bool,
    bootstrap_servers: str,
    topic: str | None,
    as_json: bool,
) -> None:
    """Show or set the compatibility level and policy of SUBJECT (or, without SUBJECT, the
    global ones). Without options it shows what is in force and what is set there."""
    if delete and (compatibility or policy):
        raise InvalidInputError("--delete cannot be combined with --compatibility or --policy.")
    with _registry(bootstrap_servers, topic) as reg:
        if delete:
            reg.delete_config(subject)
        elif compatibility or policy:
            reg.configure(subject, compatibility, policy)
        own_level, own_policy = reg.config_override(subject)
        row = {
            "subject": subject,
            "compatibility": reg.compatibility(subject).value,
            "policy": reg.policy(subject).value,
            "ownCompatibility": own_level.value if own_level else None,
            "ownPolicy": own_policy.value if own_policy else None,
        }
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    scope = subject or "(global)"
    own = "set here" if own_level or own_policy else "inherited"
    click.echo(f"{scope}: compatibility {row['compatibility']}, policy {row['policy']} ({own})")


@schemas.command()
@click.argument("subject")
@click.argument("version", required=False)
@click.option(
    "--permanent",
    is_flag=True,
    help="Remove for good what was soft-deleted before (Confluent's permanent=true).",
)
@bootstrap_option
@topic_option
@json_option
def delete(
    subject: str,
    version: str | None,
    permanent: bool,
    bootstrap_servers: str,
    topic: str | None,
    as_json: bool,
) -> None:
    """Soft-delete SUBJECT, or VERSION of it ('latest' works); --permanent removes what
    a soft delete left. Soft-deleted schemas keep their ids and still decode old data."""
    with _registry(bootstrap_servers, topic) as reg:
        if version is None:
            deleted = reg.delete_subject(subject, permanent)
        else:
            deleted = [reg.delete_version(subject, version, permanent)]
    if as_json:
        click.echo(json.dumps({"subject": subject, "deleted": deleted, "permanent": permanent}))
        return
    how = "permanently deleted" if permanent else "soft-deleted"
    click.echo(f"{subject}: {how} version(s) {deleted}")


@schemas.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8081, show_default=True, help="Port to listen on.")
@bootstrap_option
@topic_option
def serve(host: str, port: int, bootstrap_servers: str, topic: str | None) -> None:
    """Serve the registry over a Confluent Schema Registry compatible REST API (the same
    API `kes serve` offers next to the event store's; tokens from KES_SERVE_TOKENS)."""
    from kes.schemas.server import SchemaRegistryServer
    from kes.serve.settings import ServeSettings

    with _registry(bootstrap_servers, topic) as reg:
        reg.subjects()  # read the topic (and fail early if Kafka is away)
        server = SchemaRegistryServer(reg, host, port, ServeSettings.load_tokens())
        click.echo(f"kes schemas serving {reg.topic} at {server.url} (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
