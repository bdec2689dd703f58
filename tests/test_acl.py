"""The role matrix matches the names kes gives to Kafka, and a refusal names the grant
that fixes it (no Kafka needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kes.cli import cli
from kes.errors import InvalidInputError
from kes.kafka.acl import Args, Role, grants, matrix_table
from kes.kafka.config import KafkaConfig
from kes.kafka.refusals import denied, need

ROOT = Path(__file__).resolve().parent.parent
CONFIG = KafkaConfig(namespace="shop", client={"sasl.username": "svc"}, member_name="host-1-ab")
ME = "User:svc"


def allowed(role: Role, args: Args, resource_type: str, name: str, operation: str) -> bool:
    return any(g.covers(resource_type, name, operation) for g in grants(CONFIG, role, ME, args))


def test_the_writer_role_covers_every_name_a_writer_process_uses() -> None:
    args = Args(aggregate_types=("Order",))
    for resource_type, name, operation in [
        ("TOPIC", CONFIG.topic("Order"), "WRITE"),
        ("TOPIC", CONFIG.topic("Order"), "CREATE"),
        ("TOPIC", CONFIG.topic("Order"), "DESCRIBE_CONFIGS"),
        ("TOPIC", CONFIG.request_topic("Order"), "READ"),
        ("TOPIC", CONFIG.request_topic("Order"), "WRITE"),
        ("GROUP", CONFIG.writer_group("Order"), "READ"),
        ("TRANSACTIONAL_ID", CONFIG.writer_transactional_id(), "WRITE"),
        ("TOPIC", CONFIG.reply_topic(), "CREATE"),
        ("TOPIC", CONFIG.reply_topic(), "READ"),
        ("TOPIC", CONFIG.reply_topic(), "DELETE"),
        ("TOPIC", "shop.replies.someone-else.host-2", "WRITE"),  # answering a caller
        ("GROUP", CONFIG.reader_group(), "DESCRIBE"),
        ("TOPIC", CONFIG.schema_topic(), "READ"),
    ]:
        assert allowed("writer", args, resource_type, name, operation), (name, operation)


def test_no_role_but_the_writer_of_a_type_may_send_it_requests() -> None:
    request_topic = CONFIG.request_topic("Order")
    every = Args(aggregate_types=(), group="g", emits=("Other",))
    for role in ("reader", "projection", "pipeline", "schemas"):
        assert not allowed(role, every, "TOPIC", request_topic, "WRITE"), role
    assert not allowed("writer", Args(aggregate_types=("Other",)), "TOPIC", request_topic, "WRITE")


def test_a_principal_may_not_read_or_delete_another_principals_replies_or_use_its_ids() -> None:
    other = KafkaConfig(namespace="shop", client={"sasl.username": "svc2"})
    args = Args(aggregate_types=("Order",))
    for operation in ("READ", "DELETE", "CREATE"):
        assert not allowed("writer", args, "TOPIC", other.reply_topic(), operation)
    assert not allowed("writer", args, "TRANSACTIONAL_ID", other.writer_transactional_id(), "WRITE")
    # A name that only starts like ours ("svc" vs "svc2") is not ours.
    assert CONFIG.reply_topic().startswith("shop.replies.svc.")
    assert not other.reply_topic().startswith("shop.replies.svc.")


def test_roles_need_their_arguments() -> None:
    with pytest.raises(InvalidInputError, match="--aggregate-type"):
        grants(CONFIG, "writer", ME, Args())
    with pytest.raises(InvalidInputError, match="--group"):
        grants(CONFIG, "projection", ME, Args())


@pytest.mark.parametrize(
    ("resource_type", "name", "operation", "role", "grant"),
    [
        (
            "TOPIC",
            "shop.events.Order.requests",
            "WRITE",
            "writer",
            "--role writer --aggregate-type Order",
        ),
        ("GROUP", "shop.writers.Order", "READ", "writer", "--role writer --aggregate-type Order"),
        ("TOPIC", "shop.events.Order", "READ", "reader", "--role reader --aggregate-type Order"),
        ("TOPIC", "shop.dlq.totals", "CREATE", "projection", "--role projection --group totals"),
        ("GROUP", "shop.totals", "READ", "projection", "--role projection --group totals"),
        ("TOPIC", "_shop_schemas", "WRITE", "schemas", "--role schemas"),
        (
            "TOPIC",
            "changelog__shop.stream.rates--x--y",
            "CREATE",
            "pipeline",
            "--role pipeline --group rates",
        ),
    ],
)
def test_a_refusal_names_the_grant_that_fixes_it(
    resource_type: str, name: str, operation: str, role: Role, grant: str
) -> None:
    right = need(CONFIG, resource_type, name, operation, role)  # type: ignore[arg-type]
    error = denied(right, "doing it", "X_AUTHORIZATION_FAILED")
    assert error.principal == ME and error.operation == operation
    assert error.grant == f"kes acl grant {grant} --principal {ME} --namespace shop"
    assert f"{ME} may not {operation} " in str(error) and error.grant in str(error)


def test_the_role_matrix_in_the_docs_is_the_one_kes_grants() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert matrix_table() in operations
    result = CliRunner().invoke(cli, ["acl", "roles"])
    assert result.exit_code == 0 and result.output.strip() == matrix_table()


def test_every_acl_and_user_command_has_help() -> None:
    for args in (["acl"], ["acl", "grant"], ["acl", "revoke"], ["acl", "list"], ["acl", "roles"]):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, args
    for args in (["broker", "user", "add"], ["broker", "start"]):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, args
    assert "--secure" in CliRunner().invoke(cli, ["broker", "start", "--help"]).output
