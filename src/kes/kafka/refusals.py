"""What Kafka refusing a right means, for the person who must fix it: the principal,
the resource, the operation, and the ``kes acl grant`` whose role covers the right
(read back from kes's naming, so it names the aggregate type, group or pipeline)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kes.errors import AccessDeniedError, InvalidInputError
from kes.kafka.acl import ROLES, Args, ResourceType, Role, grants
from kes.kafka.config import DEFAULT_NAMESPACE, REQUEST_SUFFIX, KafkaConfig

__all__ = ["Need", "denied", "grant_command", "need"]


@dataclass(frozen=True)
class Need:
    """A right an operation needs: for the message of its refusal."""

    config: KafkaConfig
    resource_type: ResourceType
    name: str
    operation: str
    role: Role | None = None  # the role the caller acts in, when it knows

    @property
    def resource(self) -> str:
        kind = {"TRANSACTIONAL_ID": "TransactionalId"}.get(
            self.resource_type, self.resource_type.title()
        )
        return f"{kind}:{self.name}"


def need(
    config: KafkaConfig,
    resource_type: ResourceType,
    name: str,
    operation: str,
    role: Role | None,
) -> Need:
    """The right ``operation`` on ``name`` that a caller acting in ``role`` needs."""
    return Need(config, resource_type, name, operation, role)


def denied(n: Need, doing: str, error: str) -> AccessDeniedError:
    """The AccessDeniedError of Kafka refusing ``n`` while ``doing`` (``error``: Kafka's
    error name and text)."""
    from kes.kafka.security import principal_label

    principal = principal_label(n.config)
    fixes = [] if n.resource_type == "CLUSTER" else _fixes(n, principal)
    if fixes:
        fix = "An administrator gives it with `" + "`, or `".join(fixes) + "`"
    elif n.resource_type == "CLUSTER":
        fix = (
            "Run it as an admin principal (a super user; User:admin of `kes broker start --secure`)"
        )
    else:
        fix = "No kes role grants it: an administrator must add that ACL by hand"
    hint = ""
    if n.config.principal_name is None and n.name.startswith(
        (n.config.replies_prefix, f"{n.config.ns}.writer.")
    ):
        hint = (
            " kes could not tell this process's principal, so its own resources are not "
            "named after it: set KES_PRINCIPAL=User:<name>."
        )
    return AccessDeniedError(
        f"Kafka refused {doing}: {principal} may not {n.operation} {n.resource} ({error}). "
        f"Nothing was written. {fix}.{hint}",
        principal=principal,
        resource=n.resource,
        operation=n.operation,
        grant=fixes[0] if fixes else "",
    )


def _fixes(n: Need, principal: str) -> list[str]:
    """The ``kes acl grant`` commands whose role covers the needed right: the caller's
    role alone when it does, else every role that does (at most three)."""
    if not principal.startswith("User:"):
        principal = "User:<name>"
    found: list[str] = []
    for role in sorted(ROLES, key=lambda r: r != n.role):
        for args in _guesses(n.config, n.name, role):
            try:
                role_grants = grants(n.config, role, principal, args)
            except InvalidInputError:
                continue
            if any(g.covers(n.resource_type, n.name, n.operation) for g in role_grants):
                if role == n.role:
                    return [grant_command(n.config, role, principal, args)]
                found.append(grant_command(n.config, role, principal, args))
                break
    return found[:3]


_ANY_TYPE = "<AggregateType>"


def _guesses(config: KafkaConfig, name: str, role: Role) -> Iterable[Args]:
    """Role arguments that could cover ``name``, read back from kes's naming (a
    placeholder where the name does not tell)."""
    ns = config.ns
    prefix = config.events_prefix
    if name.startswith(prefix):
        rest = name[len(prefix) :].removesuffix(REQUEST_SUFFIX)
        if "." not in rest:
            yield Args(
                aggregate_types=(rest,),
                group="<name>",
                emits=(rest,) if role == "pipeline" else (),
            )
    if name.startswith(f"{ns}.writers."):
        yield Args(aggregate_types=(name[len(f"{ns}.writers.") :],))
    for head in (f"{ns}.stream.", f"changelog__{ns}.stream.", f"repartition__{ns}.stream."):
        if name.startswith(head):
            group = name[len(head) :].split("--")[0].removesuffix(".late").split(".")[0]
            yield Args(aggregate_types=(_ANY_TYPE,), group=group)
    for head in (f"{ns}.dlq.", f"{ns}.dlq-replay."):
        if name.startswith(head):
            yield Args(aggregate_types=(_ANY_TYPE,), group=name[len(head) :])
    if role == "projection":
        # group_id(G) is G itself in the default namespace, <ns>.G elsewhere.
        own = "" if ns == DEFAULT_NAMESPACE else f"{ns}."
        if name.startswith(own):
            yield Args(aggregate_types=(_ANY_TYPE,), group=name[len(own) :].split(".")[0])
    yield Args(aggregate_types=(_ANY_TYPE,), group="<name>")


def grant_command(config: KafkaConfig, role: Role, principal: str, args: Args) -> str:
    parts = ["kes acl grant", f"--role {role}"]
    if role in ("writer", "reader"):
        parts += [f"--aggregate-type {t}" for t in args.aggregate_types]
    if role in ("projection", "pipeline") and args.group:
        parts.append(f"--group {args.group}")
    parts += [f"--emit {t}" for t in args.emits]
    parts.append(f"--principal {principal}")
    if config.ns != DEFAULT_NAMESPACE:
        parts.append(f"--namespace {config.ns}")
    return " ".join(parts)
