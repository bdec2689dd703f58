"""Operator commands on event topics: ``kes topics``, ``kes events``, ``kes index``."""

from __future__ import annotations

import click


@click.command()
def topics() -> None:
    """List event topics with partitions and settings."""
    raise click.ClickException("not implemented yet")


@click.group()
def events() -> None:
    """Read events from Kafka."""


@click.group()
def index() -> None:
    """Inspect and rebuild a writer's version index."""
