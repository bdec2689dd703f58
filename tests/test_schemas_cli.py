"""`kes schemas register|list|show|check` against a registry topic in real Kafka."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kes.cli import cli

pytestmark = pytest.mark.kafka


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_register_then_list_show_and_check_the_users_example(
    bootstrap_servers: str, unique: str
) -> None:
    where = ["--bootstrap-servers", bootstrap_servers, "--topic", f"{unique}_schemas"]
    run("schemas", "register", "examples.users.domain:User", *where)
    run("schemas", "register", "examples.users.domain:User", *where)  # idempotent
    listed = {r["subject"]: r for r in json.loads(run("schemas", "list", "--json", *where))}
    assert {"User-UserCreated", "User-EmailChanged", "User-UserDeactivated"} <= set(listed)
    assert listed["User-UserCreated"]["versions"] == [1]  # the second register added none
    assert listed["User-UserCreated"]["compatibility"] == "BACKWARD"
    shown = json.loads(run("schemas", "show", "User-UserCreated", "--json", *where))
    payload = shown["schema"]["$defs"]["UserCreated"]
    assert payload["required"] == ["userId", "username", "email"]
    assert payload["additionalProperties"] is False
    run("schemas", "check", "examples.users.domain:User", *where)
