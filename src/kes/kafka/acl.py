"""The rights each kind of kes process needs on a secured Kafka, as ACLs.

A *role* is the least set of ACLs one kind of process needs, derived from the names
kes gives to Kafka (:class:`~kes.kafka.config.KafkaConfig`), so the matrix always
matches the code. ``kes acl grant`` writes them (:func:`create`).

kes.kafka.refusals turns Kafka's refusals into errors that name the grant that fixes
them. The command channel (docs/operations.md, "Security"): WRITE on a request topic is
append power over its aggregate type, so only the ``writer`` role of that type has it;
readers read partitions directly. Reply topics are written by writers (owners answer
there) and read only by the principal whose tag is in their name; a caller accepts a
reply only when it carries the digest of the very request it answers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kes.errors import InvalidInputError, StoreUnavailableError
from kes.kafka.config import KafkaConfig, principal_tag

__all__ = [
    "ROLES",
    "Acl",
    "Args",
    "Grant",
    "Role",
    "create",
    "delete",
    "describe",
    "grants",
    "matrix_table",
]

Role = Literal["writer", "projection", "reader", "schemas", "pipeline"]
ROLES: tuple[Role, ...] = ("writer", "projection", "reader", "schemas", "pipeline")

ResourceType = Literal["TOPIC", "GROUP", "TRANSACTIONAL_ID", "CLUSTER"]
Pattern = Literal["LITERAL", "PREFIXED"]
# READ, WRITE, DELETE and ALTER imply DESCRIBE in Kafka; none implies DESCRIBE_CONFIGS.
_READ = ("READ", "DESCRIBE_CONFIGS")
_OWN = ("CREATE", "READ", "WRITE", "DESCRIBE_CONFIGS")


@dataclass(frozen=True)
class Grant:
    """One resource pattern and the operations allowed on it (ALLOW, any host)."""

    resource_type: ResourceType
    name: str
    pattern: Pattern
    operations: tuple[str, ...]
    why: str

    def covers(self, resource_type: str, name: str, operation: str) -> bool:
        if resource_type != self.resource_type:
            return False
        if self.pattern == "LITERAL" and name != self.name:
            return False
        if self.pattern == "PREFIXED" and not name.startswith(self.name):
            return False
        implied = operation == "DESCRIBE" and any(
            op in ("READ", "WRITE", "DELETE", "ALTER") for op in self.operations
        )
        return operation in self.operations or implied


@dataclass(frozen=True)
class Args:
    """What a role is granted for: aggregate types, a group (projection or pipeline)
    and, for a pipeline, the aggregate types it emits to and its plain output topics."""

    aggregate_types: tuple[str, ...] = ()
    group: str | None = None
    emits: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


def grants(config: KafkaConfig, role: Role, principal: str, args: Args) -> list[Grant]:
    """The ACLs of ``role`` for ``principal`` (``User:NAME``) in ``config``'s namespace."""
    if role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}; roles: {', '.join(ROLES)}.")
    ns = config.ns
    tag = principal_tag(principal)
    readers = Grant(
        "GROUP",
        f"{ns}.reader.{tag}.",
        "PREFIXED",
        ("DESCRIBE",),
        "its readers' group ids (never joined; librdkafka looks up their coordinator)",
    )
    schemas = Grant(
        "TOPIC",
        config.schema_topic(),
        "LITERAL",
        _READ,
        "read the schemas (validation, upcasting)",
    )
    if role == "writer":
        if not args.aggregate_types:
            raise InvalidInputError("--role writer needs --aggregate-type (one or more).")
        out: list[Grant] = []
        for t in args.aggregate_types:
            out += [
                Grant("TOPIC", config.topic(t), "LITERAL", _OWN, f"{t}'s events: append"),
                Grant(
                    "TOPIC",
                    config.request_topic(t),
                    "LITERAL",
                    _OWN,
                    f"{t}'s requests: forward appends, serve them as owner",
                ),
                Grant(
                    "GROUP",
                    config.writer_group(t),
                    "LITERAL",
                    ("READ",),
                    f"own {t}'s partitions",
                ),
            ]
        return [
            *out,
            Grant(
                "TRANSACTIONAL_ID",
                f"{ns}.writer.{tag}.",
                "PREFIXED",
                ("WRITE",),
                "its writers' transactions (no other principal's)",
            ),
            Grant(
                "TOPIC",
                f"{config.replies_prefix}{tag}.",
                "PREFIXED",
                ("CREATE", "DELETE", "READ", "DESCRIBE_CONFIGS"),
                "its own reply topics",
            ),
            Grant(
                "TOPIC",
                config.replies_prefix,
                "PREFIXED",
                ("WRITE",),
                "answer forwarded requests (callers check each answer's digest)",
            ),
            readers,
            schemas,
        ]
    if role == "reader":
        return [*_sources(config, args, "read events"), readers, schemas]
    if role == "projection":
        if not args.group:
            raise InvalidInputError("--role projection needs --group (the projection's name).")
        group = config.group_id(args.group)
        return [
            *_sources(config, args, "read events"),
            Grant("GROUP", group, "LITERAL", ("READ", "DELETE"), "its consumer group (replay)"),
            Grant("TOPIC", config.dlq_topic(args.group), "LITERAL", _OWN, "its dead letters"),
            Grant(
                "GROUP",
                f"{ns}.dlq-replay.{args.group}",
                "LITERAL",
                ("READ",),
                "how far its dead letters were replayed",
            ),
            Grant(
                "TRANSACTIONAL_ID",
                f"{group}.",
                "PREFIXED",
                ("WRITE",),
                "exactly-once Kafka outputs",
            ),
            readers,
            schemas,
        ]
    if role == "pipeline":
        if not args.group:
            raise InvalidInputError("--role pipeline needs --group (the pipeline's name).")
        group = config.stream_group(args.group)
        out = [
            *_sources(config, args, "its sources"),
            Grant("GROUP", group, "LITERAL", ("READ",), "its consumer group"),
            Grant("TOPIC", config.late_topic(args.group), "LITERAL", _OWN, "late records"),
            Grant("TOPIC", config.dlq_topic(args.group), "LITERAL", _OWN, "dead letters"),
            Grant("TOPIC", f"changelog__{group}--", "PREFIXED", _OWN, "state changelogs"),
            Grant("TOPIC", f"repartition__{group}--", "PREFIXED", _OWN, "re-keyed records"),
            Grant(
                "TRANSACTIONAL_ID",
                f"{group}.",
                "PREFIXED",
                ("WRITE",),
                "its checkpoints' transactions",
            ),
            readers,
            schemas,
        ]
        out += [
            Grant("TOPIC", config.topic(t), "LITERAL", _OWN, f"emit events of {t}")
            for t in args.emits
        ]
        out += [Grant("TOPIC", o, "LITERAL", _OWN, "an output topic") for o in args.outputs]
        return out
    return [
        readers,
        Grant("TOPIC", config.schema_topic(), "LITERAL", _OWN, "the registry's log"),
        Grant(
            "TRANSACTIONAL_ID",
            config.schema_transactional_id(config.schema_topic()),
            "LITERAL",
            ("WRITE",),
            "the registry's transactional writes",
        ),
    ]


def _sources(config: KafkaConfig, args: Args, why: str) -> list[Grant]:
    if args.aggregate_types:
        return [
            Grant("TOPIC", config.topic(t), "LITERAL", _READ, f"{why}: {t}")
            for t in args.aggregate_types
        ]
    # Every event topic of the namespace; the prefix also covers its request topics, so
    # this principal can see forwarded requests (not send any: that needs WRITE).
    return [Grant("TOPIC", config.events_prefix, "PREFIXED", _READ, f"{why}: every type")]


# ---- the matrix, for the docs ----------------------------------------------------------


def matrix_table(config: KafkaConfig | None = None) -> str:
    """Every role's ACLs as a Markdown table (docs/operations.md holds this very text,
    for namespace ``kes``, principal ``User:P``, type ``T`` and group ``G``)."""
    config = config or KafkaConfig()
    examples: Sequence[tuple[Role, Args]] = (
        ("writer", Args(aggregate_types=("T",))),
        ("reader", Args(aggregate_types=("T",))),
        ("projection", Args(aggregate_types=("T",), group="G")),
        ("pipeline", Args(aggregate_types=("T",), group="G", emits=("E",))),
        ("schemas", Args()),
    )
    rows = [
        "| role | resource | pattern | operations | why |",
        "|---|---|---|---|---|",
    ]
    for role, args in examples:
        for g in grants(config, role, "User:P", args):
            kind = {"TRANSACTIONAL_ID": "TransactionalId"}.get(
                g.resource_type, g.resource_type.title()
            )
            rows.append(
                f"| {role} | {kind} `{g.name}` | {g.pattern.lower()} | "
                f"{', '.join(g.operations)} | {g.why} |"
            )
    return "\n".join(rows)


# ---- Kafka's ACLs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Acl:
    """One ACL as Kafka holds it."""

    principal: str
    resource_type: str
    name: str
    pattern: str
    operation: str
    permission: str
    host: str


def create(config: KafkaConfig, principal: str, role_grants: Sequence[Grant]) -> list[Acl]:
    """Create the ACLs of ``role_grants`` for ``principal`` (existing ones are kept:
    creating an ACL twice is a no-op); returns them."""
    from confluent_kafka.admin import AclBinding, AclPermissionType

    from kes.kafka.clients import admin
    from kes.kafka.errors import kafka_errors
    from kes.kafka.refusals import need

    _check_principal(principal)
    bindings = [
        AclBinding(
            _resource_type(g.resource_type),
            g.name,
            _pattern(g.pattern),
            principal,
            "*",
            _operation(op),
            AclPermissionType.ALLOW,
        )
        for g in role_grants
        for op in g.operations
    ]
    client = admin(config)
    right = need(config, "CLUSTER", "kafka-cluster", "ALTER", None)
    with kafka_errors(f"creating {len(bindings)} ACLs for {principal}", need=right):
        for future in client.create_acls(bindings, request_timeout=30).values():
            future.result()
    created = [_acl(b) for b in bindings]
    # The controller has them; wait until the broker serving requests applied them too,
    # so that the principal's next request is not refused by a lagging authorizer.
    deadline = time.monotonic() + 10
    while not set(created) <= set(describe(config, principal)):
        if time.monotonic() > deadline:
            raise StoreUnavailableError(
                f"the ACLs of {principal} were created but Kafka does not list them after "
                "10 s; check the cluster's health, then run the command again.",
                "unknown",
            )
        time.sleep(0.1)
    return created


def delete(config: KafkaConfig, principal: str, role_grants: Sequence[Grant]) -> int:
    """Delete the ACLs of ``role_grants`` for ``principal``; returns how many existed."""
    from confluent_kafka.admin import AclBindingFilter, AclPermissionType

    from kes.kafka.clients import admin
    from kes.kafka.errors import kafka_errors
    from kes.kafka.refusals import need

    _check_principal(principal)
    filters = [
        AclBindingFilter(
            _resource_type(g.resource_type),
            g.name,
            _pattern(g.pattern),
            principal,
            None,
            _operation(op),
            AclPermissionType.ALLOW,
        )
        for g in role_grants
        for op in g.operations
    ]
    client = admin(config)
    deleted = 0
    right = need(config, "CLUSTER", "kafka-cluster", "ALTER", None)
    with kafka_errors(f"deleting ACLs of {principal}", need=right):
        for future in client.delete_acls(filters, request_timeout=30).values():
            deleted += len(future.result())
    return deleted


def describe(config: KafkaConfig, principal: str | None = None) -> list[Acl]:
    """Every ACL of the cluster (of ``principal`` only, when given), sorted."""
    from confluent_kafka.admin import (
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    from kes.kafka.clients import admin
    from kes.kafka.errors import kafka_errors

    if principal is not None:
        _check_principal(principal)
    any_acl = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        principal,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    client = admin(config)  # kept alive until the answer is in
    with kafka_errors("listing ACLs"):
        found = client.describe_acls(any_acl, request_timeout=30).result()
    return sorted(
        (_acl(b) for b in found),
        key=lambda a: (a.principal, a.resource_type, a.name, a.operation),
    )


def _check_principal(principal: str) -> None:
    if not principal.startswith("User:") or principal == "User:":
        raise InvalidInputError(
            f"principal {principal!r} must be User:<name> (the SASL user, or the "
            "certificate's mapped name)."
        )


def _resource_type(name: str) -> Any:
    from confluent_kafka.admin import ResourceType

    return ResourceType[name]


def _pattern(name: str) -> Any:
    from confluent_kafka.admin import ResourcePatternType

    return ResourcePatternType[name]


def _operation(name: str) -> Any:
    from confluent_kafka.admin import AclOperation

    return AclOperation[name]


def _acl(binding: Any) -> Acl:
    return Acl(
        binding.principal,
        binding.restype.name,
        binding.name,
        binding.resource_pattern_type.name,
        binding.operation.name,
        binding.permission_type.name,
        binding.host,
    )
