"""`kes schemas register|list|show|check` against a registry topic in real Kafka."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kes.cli import cli
from kes.errors import InvalidInputError
from kes.schemas.errors import SubjectSoftDeletedError, VersionNotSoftDeletedError

pytestmark = pytest.mark.kafka


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def fails(*args: str) -> BaseException:
    """The KesError ``kes`` would print and exit 1 with."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code != 0 and result.exception is not None, result.output
    return result.exception


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


def test_config_sets_level_and_policy_per_subject_and_delete_soft_then_permanent(
    bootstrap_servers: str, unique: str
) -> None:
    where = ["--bootstrap-servers", bootstrap_servers, "--topic", f"{unique}_schemas"]
    run("schemas", "register", "examples.users.domain:User", *where)
    subject = "User-EmailChanged"
    shown = json.loads(run("schemas", "config", subject, "--json", *where))
    assert (shown["compatibility"], shown["policy"], shown["ownCompatibility"]) == (
        "BACKWARD",
        "STRICT",
        None,
    )
    set_ = ["schemas", "config", subject, "--compatibility", "none", "--policy", "LENIENT"]
    assert json.loads(run(*set_, "--json", *where))["ownCompatibility"] == "NONE"
    run("schemas", "config", "--compatibility", "FULL", *where)  # global
    listed = {r["subject"]: r for r in json.loads(run("schemas", "list", "--json", *where))}
    assert (listed[subject]["compatibility"], listed[subject]["policy"]) == ("NONE", "LENIENT")
    assert listed["User-UserCreated"]["compatibility"] == "FULL"
    run("schemas", "config", subject, "--delete", *where)
    assert "inherited" in run("schemas", "config", subject, *where)
    # unknown names and contradictory options are errors that change nothing
    assert "SIDEWAYS" in run(
        "schemas", "config", subject, "--compatibility", "SIDEWAYS", *where, code=2
    )
    assert isinstance(
        fails("schemas", "config", subject, "--delete", "--policy", "STRICT", *where),
        InvalidInputError,
    )
    assert json.loads(run("schemas", "config", subject, "--json", *where))["ownPolicy"] is None

    gone = json.loads(run("schemas", "delete", subject, "--json", *where))
    assert gone == {"subject": subject, "deleted": [1], "permanent": False}
    assert subject not in json.dumps(json.loads(run("schemas", "list", "--json", *where)))
    assert isinstance(fails("schemas", "delete", subject, *where), SubjectSoftDeletedError)
    run("schemas", "delete", subject, "--permanent", *where)
    live = fails("schemas", "delete", "User-UserCreated", "1", "--permanent", *where)
    assert isinstance(live, VersionNotSoftDeletedError) and live.error_code == 40407


def test_every_schemas_command_has_help() -> None:
    for command in ("list", "show", "check", "register", "diff", "config", "delete", "serve"):
        assert "Usage:" in run("schemas", command, "--help")
