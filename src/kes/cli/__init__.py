"""The ``kes`` command."""

from __future__ import annotations

import click

from kes.cli.acl import acl
from kes.cli.broker import broker
from kes.cli.dlq import dlq
from kes.cli.forget import forget
from kes.cli.project import project
from kes.cli.schemas import schemas
from kes.cli.serve import serve
from kes.cli.status import status
from kes.cli.store import events, index, topics
from kes.cli.stream import stream
from kes.errors import KesError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kes")
def cli() -> None:
    """kes: event sourcing with Apache Kafka as the event store."""


cli.add_command(broker)
cli.add_command(acl)
cli.add_command(topics)
cli.add_command(events)
cli.add_command(index)
cli.add_command(schemas)
cli.add_command(project)
cli.add_command(dlq)
cli.add_command(stream)
cli.add_command(serve)
cli.add_command(forget)
cli.add_command(status)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except KesError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        raise SystemExit(1) from None
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
