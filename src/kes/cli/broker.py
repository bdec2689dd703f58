"""``kes broker``: run a local Apache Kafka (KRaft) for development and tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from kes.broker import DEFAULT_DATA_DIR, DEFAULT_PORT, LocalCluster
from kes.broker.cluster import STATE_FILE
from kes.broker.errors import BrokerError
from kes.broker.security import ADMIN, MECHANISM


def find_data_dir(start: Path | None = None) -> str:
    """The nearest ``.kes/broker`` holding a cluster, in ``start`` (default: the current
    directory) or a parent; ``./.kes/broker`` when there is none, for a new one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_DATA_DIR
        if (candidate / STATE_FILE).is_file():
            return str(candidate)
    return str(here / DEFAULT_DATA_DIR)


def _resolve_data_dir(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    return value if value else find_data_dir()


def data_dir_option(fn: Any) -> Any:
    return click.option(
        "--data-dir",
        envvar="KES_BROKER_DIR",
        default=None,
        callback=_resolve_data_dir,
        type=click.Path(file_okay=False),
        help="Folder holding the nodes' data, logs and cluster.json (env KES_BROKER_DIR; "
        f"default: the nearest {DEFAULT_DATA_DIR} with a cluster in this directory or a "
        f"parent, else ./{DEFAULT_DATA_DIR}).",
    )(fn)


def _existing(data_dir: str) -> LocalCluster:
    cluster = LocalCluster.load(data_dir)
    if cluster is None:
        raise BrokerError(f"no kes-managed Kafka in {data_dir}; start one with `kes broker start`.")
    return cluster


@click.group()
def broker() -> None:
    """Start, stop and inspect a local Apache Kafka (no Docker needed)."""


@broker.command()
@click.option(
    "--nodes",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    help="1 combined broker+controller, or a 3-node KRaft quorum.",
)
@click.option(
    "--port",
    type=int,
    default=DEFAULT_PORT,
    show_default=True,
    help="Broker port of node 1; node i listens on PORT+i-1 (controllers on +100).",
)
@click.option(
    "--secure",
    is_flag=True,
    help="SASL_SSL (SCRAM-SHA-512) on PORT+i-1 and mTLS on PORT+50+i-1, a private CA, "
    "ACLs enforced (nobody may do anything without one), an admin principal; writes the "
    "admin's client settings under DATA_DIR/secure/users/.",
)
@data_dir_option
def start(nodes: str, port: int, secure: bool, data_dir: str) -> None:
    """Start Kafka in KRaft mode and wait until it answers metadata requests."""
    cluster = LocalCluster.load(data_dir)
    if cluster is not None and cluster.secure != secure:
        state = "a secured" if cluster.secure else "an unsecured"
        raise BrokerError(
            f"{data_dir} holds {state} cluster; start it "
            f"{'with' if cluster.secure else 'without'} --secure, or use another --data-dir "
            "(or delete the folder) for a new one."
        )
    if cluster is not None and cluster.running():
        if len(cluster.running()) == len(cluster.nodes):
            cluster.wait_ready(timeout=60)
            click.echo(
                f"Kafka is already running ({len(cluster.nodes)} node(s)): "
                f"{cluster.bootstrap_servers}"
            )
            if cluster.secure:
                _echo_secured(cluster)
            return
        cluster.start()
    else:
        if cluster is None or len(cluster.nodes) != int(nodes) or cluster.nodes[0].port != port:
            if cluster is not None:
                raise BrokerError(
                    f"{data_dir} holds a stopped {len(cluster.nodes)}-node cluster on port "
                    f"{cluster.nodes[0].port}; start it with those settings, or use another "
                    "--data-dir (or delete the folder) for a new one."
                )
            cluster = LocalCluster.plan(data_dir, nodes=int(nodes), port=port, secure=secure)
        cluster.start()
    click.echo(
        f"Kafka is up ({len(cluster.nodes)} node(s)). bootstrap servers: "
        f"{cluster.bootstrap_servers}"
    )
    if cluster.secure:
        _echo_secured(cluster)
    else:
        click.echo(f"export KES_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}")


def _echo_secured(cluster: LocalCluster) -> None:
    """Where the admin's settings are; never the secrets themselves."""
    admin = cluster.secrets.user(ADMIN)
    click.echo(
        f"secured: SASL_SSL with {MECHANISM} on {cluster.bootstrap_servers}, mTLS on "
        f"{cluster.tls_bootstrap_servers}; ACLs enforced (no ACL: no access); CA "
        f"{cluster.secrets.ca}"
    )
    click.echo(f"admin principal User:{ADMIN}: settings in {admin.properties}")
    click.echo(f"source {admin.env}   # the same as KES_* variables")
    click.echo("add users with `kes broker user add NAME`, rights with `kes acl grant`.")


@broker.command()
@data_dir_option
def stop(data_dir: str) -> None:
    """Stop every node gracefully."""
    cluster = LocalCluster.load(data_dir)
    if cluster is None or not cluster.running():
        click.echo("Kafka is not running.")
        return
    cluster.stop()
    click.echo("Kafka stopped.")


@broker.command()
@click.argument("node", type=int)
@data_dir_option
def kill(node: int, data_dir: str) -> None:
    """SIGKILL one node (a crash, for fault tests)."""
    _existing(data_dir).kill(node)
    click.echo(f"node {node} killed.")


@broker.command()
@click.argument("node", type=int)
@data_dir_option
def restart(node: int, data_dir: str) -> None:
    """Restart one node and wait until it is back in the cluster."""
    _existing(data_dir).restart(node)
    click.echo(f"node {node} is back.")


@broker.command()
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(data_dir: str, as_json: bool) -> None:
    """Nodes, pids, ports, data folders, up or down."""
    cluster = LocalCluster.load(data_dir)
    rows = (
        []
        if cluster is None
        else [
            {
                "node": n.node_id,
                "state": "up" if n.is_running() else "down",
                "pid": n.pid if n.is_running() else None,
                "port": n.port,
                "tls_port": n.tls_port,
                "controller_port": n.controller_port,
                "dir": n.dir,
            }
            for n in cluster.nodes
        ]
    )
    if as_json:
        security: dict[str, Any] | None = None
        if cluster is not None and cluster.secure:
            admin = cluster.secrets.user(ADMIN)
            security = {
                "sasl_ssl": cluster.bootstrap_servers,
                "mtls": cluster.tls_bootstrap_servers,
                "mechanism": MECHANISM,
                "ca": str(cluster.secrets.ca),
                "admin_properties": str(admin.properties),
                "admin_env": str(admin.env),
            }
        click.echo(
            json.dumps(
                {
                    "data_dir": data_dir,
                    "bootstrap_servers": cluster.bootstrap_servers if cluster else None,
                    "secure": security,
                    "nodes": rows,
                },
                indent=2,
            )
        )
        return
    if not rows:
        click.echo(
            f"no kes-managed Kafka in {Path(data_dir).resolve()} (nor in a {DEFAULT_DATA_DIR} of "
            "a parent folder). Pass --data-dir (or KES_BROKER_DIR) where `kes broker start` "
            "put it, or start one."
        )
        return
    assert cluster is not None
    table = Table(title=f"Kafka in {data_dir}" + (" (secured)" if cluster.secure else ""))
    for col in ("node", "state", "pid", "port", "tls_port", "controller_port", "dir"):
        table.add_column(col)
    for r in rows:
        table.add_row(*("-" if v is None else str(v) for v in r.values()))
    Console().print(table)
    if cluster.secure:
        _echo_secured(cluster)


@broker.group()
def user() -> None:
    """Users of a secured local cluster (SCRAM-SHA-512 password and client certificate)."""


@user.command("add")
@click.argument("name")
@data_dir_option
def user_add(name: str, data_dir: str) -> None:
    """Create user NAME (principal User:NAME) with a random password and a certificate
    signed by the cluster's CA; print where its client settings are. It may do nothing
    until `kes acl grant` gives it a role."""
    files = _existing(data_dir).add_user(name)
    click.echo(f"principal User:{name}")
    click.echo(f"SASL_SSL settings: {files.properties}  (source {files.env})")
    click.echo(f"mTLS settings: source {files.tls_env}  (certificate {files.certificate})")
