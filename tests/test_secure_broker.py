"""`kes broker start --secure`: who may not connect is told so within seconds, the
admin manages users and ACLs from the command line, and no secret is ever printed or
logged."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kes import NO_STREAM, AuthenticationError, NewEvent
from kes.broker import LocalCluster
from kes.broker.security import Secrets
from kes.store.kafka import KafkaConfig, KafkaEventStore
from tests.secure_support import principal

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent


def kes(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kes.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
        cwd=ROOT,
    )


def env_of(config: KafkaConfig) -> dict[str, str]:
    """The environment that runs kes as ``config``'s principal (KES_KAFKA_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KES_")}
    env["KES_BOOTSTRAP_SERVERS"] = config.bootstrap_servers
    env["KES_NAMESPACE"] = config.ns
    env.update(
        {f"KES_KAFKA_{k.upper().replace('.', '_')}": str(v) for k, v in config.client.items()}
    )
    return env


Case = Callable[[LocalCluster, KafkaConfig, Path], KafkaConfig]


def wrong_password(cluster: LocalCluster, user: KafkaConfig, _: Path) -> KafkaConfig:
    return dataclasses.replace(user, client={**user.client, "sasl.password": "not-it"})


def unknown_user(cluster: LocalCluster, user: KafkaConfig, _: Path) -> KafkaConfig:
    return dataclasses.replace(user, client={**user.client, "sasl.username": "nobody"})


def untrusted_certificate(cluster: LocalCluster, user: KafkaConfig, tmp: Path) -> KafkaConfig:
    stranger = Secrets(tmp)  # another CA, unknown to the brokers
    stranger.ensure_user_files("mallory", "-", "-")
    client = {**stranger.tls_conf("mallory"), "ssl.ca.location": str(cluster.secrets.ca)}
    return dataclasses.replace(user, bootstrap_servers=cluster.tls_bootstrap_servers, client=client)


def plaintext_on_the_tls_port(cluster: LocalCluster, user: KafkaConfig, _: Path) -> KafkaConfig:
    return dataclasses.replace(user, bootstrap_servers=cluster.tls_bootstrap_servers, client={})


@pytest.mark.parametrize(
    ("case", "says"),
    [
        (wrong_password, "the user is unknown or the password is wrong"),
        (unknown_user, "the user is unknown or the password is wrong"),
        (untrusted_certificate, "is not signed by a CA the brokers trust"),
        (plaintext_on_the_tls_port, "the listener speaks another security protocol"),
    ],
)
def test_a_client_kafka_does_not_accept_gets_a_clear_error_within_10s(
    secure_broker: LocalCluster,
    secure_base: KafkaConfig,
    unique: str,
    tmp_path: Path,
    case: Case,
    says: str,
) -> None:
    user = principal(secure_broker, secure_base, f"w-{unique}", "writer", aggregate_types=("T",))
    config = case(secure_broker, user, tmp_path)
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        KafkaEventStore(config)
    assert time.monotonic() - started < 10
    assert says in str(caught.value)
    assert config.bootstrap_servers in str(caught.value)
    assert "nothing was done" in str(caught.value).lower()


def test_the_cli_reports_a_wrong_password_within_10s(
    secure_broker: LocalCluster, secure_base: KafkaConfig, unique: str
) -> None:
    user = principal(secure_broker, secure_base, f"w-{unique}", "writer", aggregate_types=("T",))
    env = env_of(wrong_password(secure_broker, user, Path()))
    started = time.monotonic()
    result = kes("events", "read", "T", "x", "--scan", env=env)
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert result.stderr.startswith("error: Kafka at") and "password is wrong" in result.stderr


def test_the_admin_grants_lists_and_revokes_a_role_from_the_cli(
    secure_broker: LocalCluster, secure_base: KafkaConfig, unique: str
) -> None:
    added = kes("broker", "user", "add", f"u-{unique}", "--data-dir", secure_broker.data_dir)
    assert added.returncode == 0, added.stderr
    admin = env_of(principal(secure_broker, secure_base, "admin"))
    who = f"User:u-{unique}"
    grant = kes(
        "acl", "grant", "--role", "reader", "--aggregate-type", "T", "--principal", who, env=admin
    )
    assert grant.returncode == 0, grant.stderr
    listed = json.loads(kes("acl", "list", "--principal", who, "--json", env=admin).stdout)
    assert {(a["resource_type"], a["name"], a["operation"]) for a in listed} == {
        ("TOPIC", f"{unique}.events.T", "READ"),
        ("TOPIC", f"{unique}.events.T", "DESCRIBE_CONFIGS"),
        ("GROUP", f"{unique}.reader.u-{unique}.", "DESCRIBE"),
        ("TOPIC", f"_{unique}_schemas", "READ"),
        ("TOPIC", f"_{unique}_schemas", "DESCRIBE_CONFIGS"),
    }
    revoke = kes(
        "acl", "revoke", "--role", "reader", "--aggregate-type", "T", "--principal", who, env=admin
    )
    assert revoke.returncode == 0 and "5 ACLs deleted" in revoke.stdout
    assert json.loads(kes("acl", "list", "--principal", who, "--json", env=admin).stdout) == []
    # A principal that is not the admin may not manage ACLs: told so, not hung.
    user_env = env_of(principal(secure_broker, secure_base, f"u-{unique}"))
    refused = kes("acl", "grant", "--role", "schemas", "--principal", who, env=user_env)
    assert refused.returncode == 1
    assert f"error: Kafka refused creating 6 ACLs for {who}: {who} may not ALTER" in refused.stderr
    assert "Run it as an admin principal" in refused.stderr


def test_no_secret_appears_in_a_log_line_or_in_cli_output(
    secure_broker: LocalCluster,
    secure_base: KafkaConfig,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("kes.kafka").setLevel(logging.DEBUG)  # librdkafka's own lines too
    try:
        user = principal(
            secure_broker, secure_base, f"w-{unique}", "writer", aggregate_types=("T",)
        )
        with KafkaEventStore(user) as store:
            store.append("T", "a", [NewEvent(event_type="E", payload={})], NO_STREAM)
        with pytest.raises(AuthenticationError):
            KafkaEventStore(wrong_password(secure_broker, user, Path()))
    finally:
        logging.getLogger("kes.kafka").setLevel(logging.ERROR)
    admin = env_of(principal(secure_broker, secure_base, "admin"))
    data = ["--data-dir", secure_broker.data_dir]
    port = str(secure_broker.nodes[0].port)
    outputs = [
        kes("broker", "start", "--secure", "--port", port, *data),
        kes("broker", "status", *data),
        kes("broker", "status", "--json", *data),
        kes("broker", "user", "add", f"x-{unique}", *data),
        kes(
            "acl",
            "grant",
            "--role",
            "writer",
            "--aggregate-type",
            "T",
            "--principal",
            f"User:x-{unique}",
            env=admin,
        ),
        kes("acl", "list", env=admin),
        kes("events", "read", "T", "a", "--scan", env=env_of(user)),
        kes(
            "events",
            "read",
            "T",
            "a",
            "--scan",
            env=env_of(wrong_password(secure_broker, user, Path())),
        ),
    ]
    assert all(o.returncode in (0, 1) for o in outputs), [o.stderr for o in outputs]
    assert "secured: SASL_SSL" in outputs[0].stdout and "error:" in outputs[-1].stderr
    texts = [o.stdout + o.stderr for o in outputs]
    texts += [r.getMessage() for r in caplog.records]
    for node in secure_broker.nodes:
        for name in ("server.log", "server.out"):
            path = Path(node.dir) / "logs" / name
            if path.exists():
                texts.append(path.read_text(errors="replace"))
    secrets = secure_broker.secrets.secret_values()
    assert len(secrets) >= 10  # passwords of every user, and private key material
    for secret in secrets:
        for text in texts:
            assert secret not in text, "a password or private key was printed or logged"
