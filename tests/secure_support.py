"""Principals on a secured local cluster for tests: users, their roles, their settings."""

from __future__ import annotations

import dataclasses
from typing import Any

from kes.broker import LocalCluster
from kes.broker.security import ADMIN
from kes.kafka import acl
from kes.kafka.acl import Args, Role
from kes.store.kafka import KafkaConfig

_made: set[tuple[str, str]] = set()  # users made in this run, per cluster


def config_of(
    cluster: LocalCluster, user: str, base: KafkaConfig, *, tls: bool = False
) -> KafkaConfig:
    """``base`` (namespace, partitions, ...) as user ``user``, over SASL_SSL or mTLS."""
    if tls:
        servers = cluster.tls_bootstrap_servers
        client: dict[str, Any] = cluster.secrets.tls_conf(user)
    else:
        client = cluster.secrets.sasl_conf(user)
        servers = client.pop("bootstrap.servers")
    return dataclasses.replace(base, bootstrap_servers=servers, client=client)


def admin_config(cluster: LocalCluster, base: KafkaConfig) -> KafkaConfig:
    return config_of(cluster, ADMIN, base)


def principal(
    cluster: LocalCluster,
    base: KafkaConfig,
    user: str,
    role: Role | None = None,
    **args: Any,
) -> KafkaConfig:
    """User ``user`` (created when new) granted ``role`` in ``base``'s namespace; its
    config. ``args``: the role's (aggregate_types=(...), group=...)."""
    if (cluster.data_dir, user) not in _made:
        cluster.add_user(user)
        _made.add((cluster.data_dir, user))
    if role is not None:
        admin = admin_config(cluster, base)
        acl.create(admin, f"User:{user}", acl.grants(admin, role, f"User:{user}", Args(**args)))
    return config_of(cluster, user, base)


def plain_conf(cluster: LocalCluster, user: str) -> dict[str, Any]:
    """Bare confluent-kafka settings of ``user`` (SASL_SSL), for clients made by tests."""
    return cluster.secrets.sasl_conf(user)
