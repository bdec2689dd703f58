"""``kes acl``: give principals the rights of a kes role on a secured Kafka."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from kes.cli.options import bootstrap_option, json_option, kafka_config, prefix_option
from kes.kafka import acl as acls
from kes.kafka.acl import ROLES, Args, Role
from kes.kafka.config import KafkaConfig


@click.group()
def acl() -> None:
    """Grant, revoke and list the ACLs kes roles need (run as an admin principal)."""


def _role_options(fn: Any) -> Any:
    options: list[Callable[[Any], Any]] = [
        click.option(
            "--role",
            type=click.Choice(ROLES),
            required=True,
            help="writer: append to and own the aggregate types; reader: read their "
            "events; projection / pipeline: run the one named by --group; schemas: "
            "write the schema registry.",
        ),
        click.option(
            "--principal",
            required=True,
            help="User:NAME (a SASL user, or a certificate's mapped name).",
        ),
        click.option(
            "--aggregate-type",
            "aggregate_types",
            multiple=True,
            help="Repeatable. writer: required; reader, projection, pipeline: the "
            "types read (default: every type of the namespace).",
        ),
        click.option("--group", help="projection or pipeline: its name."),
        click.option(
            "--emit",
            "emits",
            multiple=True,
            help="pipeline: an aggregate type it emits events to (repeatable).",
        ),
        click.option(
            "--output",
            "outputs",
            multiple=True,
            help="pipeline: a plain output topic (repeatable).",
        ),
        bootstrap_option,
        prefix_option,
        json_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _plan(
    role: str,
    principal: str,
    aggregate_types: tuple[str, ...],
    group: str | None,
    emits: tuple[str, ...],
    outputs: tuple[str, ...],
    bootstrap_servers: str,
    topic_prefix: str | None,
) -> tuple[KafkaConfig, list[acls.Grant]]:
    config = kafka_config(bootstrap_servers, topic_prefix)
    args = Args(tuple(aggregate_types), group, tuple(emits), tuple(outputs))
    name: Role = role  # type: ignore[assignment]
    return config, acls.grants(config, name, principal, args)


@acl.command()
@_role_options
def grant(
    role: str,
    principal: str,
    aggregate_types: tuple[str, ...],
    group: str | None,
    emits: tuple[str, ...],
    outputs: tuple[str, ...],
    bootstrap_servers: str,
    topic_prefix: str | None,
    as_json: bool,
) -> None:
    """Create the least set of ACLs ROLE needs for PRINCIPAL (idempotent)."""
    config, plan = _plan(
        role, principal, aggregate_types, group, emits, outputs, bootstrap_servers, topic_prefix
    )
    created = acls.create(config, principal, plan)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(a) for a in created], indent=2))
        return
    click.echo(f"{principal}: role {role}, {len(created)} ACLs (allow, any host):")
    for g in plan:
        click.echo(
            f"  {g.resource_type} {g.name} ({g.pattern.lower()}): "
            f"{', '.join(g.operations)} - {g.why}"
        )
    if role in ("reader", "projection", "pipeline") and not aggregate_types:
        click.echo(
            "note: every type of the namespace, request topics included (read-only): do not "
            "also give this principal a writer role, or it could answer other writers' "
            "callers; name the types (--aggregate-type) instead."
        )


@acl.command()
@_role_options
def revoke(
    role: str,
    principal: str,
    aggregate_types: tuple[str, ...],
    group: str | None,
    emits: tuple[str, ...],
    outputs: tuple[str, ...],
    bootstrap_servers: str,
    topic_prefix: str | None,
    as_json: bool,
) -> None:
    """Delete the ACLs that `kes acl grant` with the same options created."""
    config, plan = _plan(
        role, principal, aggregate_types, group, emits, outputs, bootstrap_servers, topic_prefix
    )
    deleted = acls.delete(config, principal, plan)
    if as_json:
        click.echo(json.dumps({"deleted": deleted}))
    else:
        click.echo(f"{principal}: role {role}: {deleted} ACLs deleted.")


@acl.command("list")
@click.option("--principal", help="Only this principal's ACLs (User:NAME).")
@bootstrap_option
@prefix_option
@json_option
def list_(
    principal: str | None, bootstrap_servers: str, topic_prefix: str | None, as_json: bool
) -> None:
    """Every ACL of the cluster (or of one principal)."""
    config = kafka_config(bootstrap_servers, topic_prefix)
    found = acls.describe(config, principal)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(a) for a in found], indent=2))
        return
    if not found:
        click.echo(
            "no ACLs"
            + (f" for {principal}" if principal else "")
            + " (Kafka lists only what this principal may see: run as an admin)."
        )
        return
    table = Table(title="ACLs")
    for col in ("principal", "resource", "name", "pattern", "operation", "permission", "host"):
        table.add_column(col)
    for a in found:
        table.add_row(
            a.principal, a.resource_type, a.name, a.pattern, a.operation, a.permission, a.host
        )
    Console(width=200).print(table)


@acl.command()
def roles() -> None:
    """Print the role matrix (namespace kes, principal User:P, type T, group G)."""
    click.echo(acls.matrix_table())
