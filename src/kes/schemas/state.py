"""The registry's state and every decision it takes, with no I/O.

:class:`RegistryState` is what the records of the registry topic say: subjects,
versions (live or soft-deleted), global ids, references, and the compatibility level
and policy of each subject and of the whole registry. ``apply(key, value)`` folds one
record in. Each write is *planned* here, on the current state, as a
:class:`Mutation`: the records to write and the result to return once they are
written. :class:`kes.schemas.registry.SchemaRegistry` only reads the topic into a
state, writes a plan's records atomically and applies them.

Deletion follows Confluent Schema Registry: a *soft* delete marks versions deleted
(they keep their ids, stay readable by id and with ``deleted=True``, and no longer
count for compatibility); a *permanent* delete of what was soft-deleted first writes
tombstones. Version numbers never go back while a subject has any version, deleted
or not. A version that another subject's schema references cannot be deleted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kes.schemas.compatibility import BreakingChange, Mode, Policy, check_compatibility
from kes.schemas.errors import (
    CompatibilityNotConfiguredError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    InvalidVersionError,
    ReferenceExistsError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from kes.schemas.parse import SchemaInput, canonical_text, load, parse_schema, schema_kind

__all__ = [
    "Mutation",
    "Record",
    "Reference",
    "RegisteredSchema",
    "RegistryState",
    "parse_version",
]

T = TypeVar("T")
Record = tuple[dict[str, Any], dict[str, Any] | None]
"""One record of the registry topic: (key, value); a None value is a tombstone."""


@dataclass(frozen=True, slots=True)
class Mutation(Generic[T]):
    """What a write decided: the records to write (atomically) and its result."""

    records: tuple[Record, ...]
    result: T


@dataclass(frozen=True, slots=True)
class Reference:
    """A schema reference: ``name`` (as the schema spells it) -> ``subject`` ``version``."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}

    @classmethod
    def parse(cls, raw: Any) -> Reference:
        if isinstance(raw, Reference):
            return raw
        ok = (
            isinstance(raw, Mapping)
            and isinstance(raw.get("name"), str)
            and isinstance(raw.get("subject"), str)
            and isinstance(raw.get("version"), int)
            and not isinstance(raw.get("version"), bool)
        )
        if not ok:
            raise InvalidSchemaError(
                f"a schema reference needs a string name and subject and an integer version, "
                f'e.g. {{"name": "address.json", "subject": "Address", "version": 1}}; '
                f"got {raw!r}."
            )
        assert isinstance(raw, Mapping)
        return cls(raw["name"], raw["subject"], raw["version"])


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """One version of a subject."""

    subject: str
    version: int
    id: int
    schema: str
    schema_type: str = "JSON"
    references: tuple[Reference, ...] = ()
    deleted: bool = False

    @property
    def parsed(self) -> Any:
        return json.loads(self.schema)

    def to_json(self) -> dict[str, Any]:
        """The Confluent REST representation."""
        out: dict[str, Any] = {
            "subject": self.subject,
            "version": self.version,
            "id": self.id,
            "schema": self.schema,
        }
        if self.schema_type != "AVRO":
            out["schemaType"] = self.schema_type
        if self.references:
            out["references"] = [r.to_json() for r in self.references]
        return out


@dataclass(frozen=True, slots=True)
class _Stored:
    kind: str
    text: str
    references: tuple[Reference, ...]


@dataclass(frozen=True, slots=True)
class _Version:
    id: int
    deleted: bool


@dataclass(frozen=True, slots=True)
class _Config:
    compatibility: Mode | None = None
    policy: Policy | None = None

    def to_value(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        if self.compatibility is not None:
            out["compatibilityLevel"] = self.compatibility.value
        if self.policy is not None:
            out["compatibilityPolicy"] = self.policy.value
        return out or None


@dataclass
class RegistryState:
    """Subjects, versions, ids, references and configuration, as the topic's records say."""

    default_compatibility: Mode = Mode.BACKWARD
    where: str = "the registry"  # named in messages (e.g. the topic)
    _by_id: dict[int, _Stored] = field(default_factory=dict)
    _ids: dict[tuple[str, str, tuple[Reference, ...]], int] = field(default_factory=dict)
    _subjects: dict[str, dict[int, _Version]] = field(default_factory=dict)
    _config: dict[str | None, _Config] = field(default_factory=dict)
    _max_id: int = 0

    # ---- applying records -------------------------------------------------------------

    def apply(self, key: Mapping[str, Any], value: Mapping[str, Any] | None) -> None:
        """Fold one record of the topic in (unknown record kinds are ignored)."""
        keytype = key.get("keytype")
        if keytype == "SCHEMA":
            subject, version = str(key["subject"]), int(key["version"])
            versions = self._subjects.setdefault(subject, {})
            if value is None:
                versions.pop(version, None)
                if not versions:
                    del self._subjects[subject]
                return
            sid = int(value["id"])
            kind = str(value.get("schemaType") or "AVRO").upper()
            text = str(value["schema"])
            refs = tuple(Reference.parse(r) for r in value.get("references") or [])
            try:
                canon = canonical_text(load(text, kind), kind)
            except InvalidSchemaError:
                canon = text
            self._by_id.setdefault(sid, _Stored(kind, text, refs))
            self._ids.setdefault((kind, canon, refs), sid)
            self._max_id = max(self._max_id, sid)
            versions[version] = _Version(sid, bool(value.get("deleted")))
        elif keytype == "CONFIG":
            scope: str | None = key.get("subject")
            if value is None:
                self._config.pop(scope, None)
                return
            level = value.get("compatibilityLevel") or value.get("compatibility")
            policy = value.get("compatibilityPolicy")
            self._config[scope] = _Config(
                Mode(str(level)) if level in Mode.__members__ else None,
                Policy(str(policy)) if policy in Policy.__members__ else None,
            )

    # ---- reads ------------------------------------------------------------------------

    def subjects(self, deleted: bool = False) -> list[str]:
        return sorted(s for s in self._subjects if self._live(s, deleted))

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        found = self._live(subject, deleted)
        if not found:
            raise SubjectNotFoundError(self._no_subject(subject))
        return sorted(found)

    def get(
        self, subject: str, version: int | str = "latest", deleted: bool = False
    ) -> RegisteredSchema:
        """A version of ``subject`` (``"latest"``, or ``-1``, for the newest)."""
        versions = self._live(subject, deleted)
        if not versions:
            raise SubjectNotFoundError(self._no_subject(subject))
        v = parse_version(version)
        if v == -1:
            v = max(versions)
        found = versions.get(v)
        if found is None:
            soft = v in self._live(subject, True)
            gone = " (soft-deleted: ask with deleted=true)" if soft else ""
            raise VersionNotFoundError(
                f"subject {subject!r} has no version {version}{gone}; it has {sorted(versions)}."
            )
        stored = self._by_id[found.id]
        return RegisteredSchema(
            subject, v, found.id, stored.text, stored.kind, stored.references, found.deleted
        )

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with a global id (``subject`` empty, ``version`` 0)."""
        stored = self._by_id.get(schema_id)
        if stored is None:
            raise SchemaNotFoundError(
                f"no schema has id {schema_id}; ids run 1..{self._max_id} in {self.where}."
            )
        return RegisteredSchema("", 0, schema_id, stored.text, stored.kind, stored.references)

    def subjects_of(self, schema_id: int, deleted: bool = False) -> list[str]:
        self.by_id(schema_id)
        return sorted(
            s
            for s in self._subjects
            if any(v.id == schema_id for v in self._live(s, deleted).values())
        )

    def lookup(
        self,
        subject: str,
        schema: SchemaInput,
        schema_type: str = "JSON",
        references: Sequence[Reference | Mapping[str, Any]] = (),
        deleted: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema``; SchemaNotFoundError if none."""
        kind, _, canon, refs = self._prepare(schema, schema_type, references)
        versions = self._live(subject, deleted)
        if not versions:
            raise SubjectNotFoundError(self._no_subject(subject))
        sid = self._ids.get((kind, canon, refs))
        for version, found in sorted(versions.items()):
            if found.id == sid:
                return self.get(subject, version, deleted=True)
        raise SchemaNotFoundError(
            f"subject {subject!r} holds no version equal to this schema (it has versions "
            f"{sorted(versions)}); register it first."
        )

    def compatibility(self, subject: str | None = None) -> Mode:
        """The subject's level, else the global one, else the default (BACKWARD)."""
        return self._setting(subject, "compatibility") or self.default_compatibility

    def policy(self, subject: str | None = None) -> Policy:
        """The subject's policy, else the global one, else STRICT."""
        return self._setting(subject, "policy") or Policy.STRICT

    def override(self, subject: str | None) -> tuple[Mode | None, Policy | None]:
        """The level and policy set on exactly this subject (or globally for None)."""
        own = self._config.get(subject, _Config())
        return own.compatibility, own.policy

    def referenced_by(self, subject: str, version: int | str) -> list[int]:
        """Ids of live schemas that reference ``subject`` ``version``."""
        got = self.get(subject, version, deleted=True)
        return sorted(self._referrers(got.subject, got.version, deleted=False))

    def check(
        self,
        subject: str,
        schema: SchemaInput,
        schema_type: str = "JSON",
        version: int | str | None = None,
        references: Sequence[Reference | Mapping[str, Any]] = (),
    ) -> list[BreakingChange]:
        """The breaking changes registering ``schema`` would bring (empty: compatible).

        With ``version`` it is compared with that version only, in the directions the
        subject's level asks; without it, as registering would compare it.
        """
        kind, parsed, _, _ = self._prepare(schema, schema_type, references)
        mode = self.compatibility(subject)
        if version is None:
            previous = self._history(subject, kind)
        else:
            got = self.get(subject, version)
            previous = [(got.version, self._parsed(got.id))]
            if mode.transitive:
                mode = Mode(mode.value.removesuffix("_TRANSITIVE"))
        return check_compatibility(mode, parsed, previous, kind, self.policy(subject))

    # ---- plans ------------------------------------------------------------------------

    def plan_register(
        self,
        subject: str,
        schema: SchemaInput,
        schema_type: str = "JSON",
        references: Sequence[Reference | Mapping[str, Any]] = (),
    ) -> Mutation[RegisteredSchema]:
        """Register ``schema`` under ``subject``: idempotent; IncompatibleSchemaError if the
        subject's level forbids it (nothing written)."""
        check_subject(subject)
        kind, parsed, canon, refs = self._prepare(schema, schema_type, references)
        text = schema if isinstance(schema, str) else json.dumps(schema)
        sid = self._ids.get((kind, canon, refs))
        live = self._live(subject, False)
        for version, found in sorted(live.items()):
            if found.id == sid:
                return Mutation((), self.get(subject, version))
        mode = self.compatibility(subject)
        policy = self.policy(subject)
        breaking = check_compatibility(mode, parsed, self._history(subject, kind), kind, policy)
        if breaking:
            lines = "\n  ".join(str(b) for b in breaking)
            raise IncompatibleSchemaError(
                f"Schema being registered is incompatible with an earlier schema for "
                f"subject {subject!r} (compatibility {mode.value}, policy {policy.value}, "
                f"latest version {max(live)}); {len(breaking)} breaking change(s):\n  {lines}"
                "\nNothing was registered. Make the change compatible (e.g. add fields as "
                "optional, keep removed ones), or write a new event schema version with an "
                "upcaster and let its subject accept it: `kes schemas config "
                f"{subject} --compatibility NONE` (see docs/schemas.md).",
                breaking,
            )
        new_id = sid if sid is not None else self._max_id + 1
        version = max(self._subjects.get(subject, {}), default=0) + 1
        key = {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}
        value: dict[str, Any] = {
            "subject": subject,
            "version": version,
            "id": new_id,
            "schemaType": kind,
            "schema": text,
            "deleted": False,
        }
        if refs:
            value["references"] = [r.to_json() for r in refs]
        return Mutation(
            ((key, value),), RegisteredSchema(subject, version, new_id, text, kind, refs)
        )

    def plan_config(
        self,
        subject: str | None = None,
        compatibility: Mode | str | None = None,
        policy: Policy | str | None = None,
    ) -> Mutation[tuple[Mode, Policy]]:
        """Set the level and/or policy of ``subject`` (or the global ones for None); the
        result is what is then in force for it."""
        if subject is not None:
            check_subject(subject)
        own = self._config.get(subject, _Config())
        new = _Config(
            Mode.parse(compatibility) if compatibility is not None else own.compatibility,
            Policy.parse(policy) if policy is not None else own.policy,
        )
        key = {"keytype": "CONFIG", "subject": subject, "magic": 0}
        inherited = (self.compatibility(), self.policy()) if subject is not None else None
        level = new.compatibility or (inherited[0] if inherited else self.default_compatibility)
        policy_now = new.policy or (inherited[1] if inherited else Policy.STRICT)
        return Mutation(((key, new.to_value()),), (level, policy_now))

    def plan_delete_config(self, subject: str | None) -> Mutation[tuple[Mode, Policy]]:
        """Forget the level and policy set on ``subject`` (or globally); the result is
        what was set. CompatibilityNotConfiguredError if nothing was."""
        own = self._config.get(subject)
        if own is None:
            scope = f"Subject '{subject}'" if subject is not None else "The registry"
            raise CompatibilityNotConfiguredError(
                f"{scope} does not have a compatibility level or policy of its own; nothing "
                "to delete."
            )
        key = {"keytype": "CONFIG", "subject": subject, "magic": 0}
        return Mutation(
            ((key, None),),
            (own.compatibility or self.compatibility(None), own.policy or self.policy(None)),
        )

    def plan_delete_subject(self, subject: str, permanent: bool = False) -> Mutation[list[int]]:
        """Soft-delete every live version of ``subject`` or, ``permanent``, remove every
        soft-deleted one; the result lists the versions deleted."""
        everything = self._subjects.get(subject) or {}
        if not everything:
            raise SubjectNotFoundError(self._no_subject(subject))
        live = self._live(subject, False)
        if not permanent and not live:
            raise SubjectSoftDeletedError(
                f"Subject '{subject}' was soft deleted; delete it with permanent=true to "
                "remove it for good."
            )
        if permanent and live:
            raise SubjectNotSoftDeletedError(
                f"Subject '{subject}' was not deleted first before being permanently deleted "
                f"(live versions {sorted(live)}); soft-delete it first."
            )
        targets = sorted(everything if permanent else live)
        for version in targets:
            users = self._referrers(subject, version, deleted=permanent, outside=True)
            if users:
                raise ReferenceExistsError(self._referenced(subject, version, users))
        records = [self._version_record(subject, v, permanent) for v in reversed(targets)]
        if permanent and subject in self._config:
            records.append(({"keytype": "CONFIG", "subject": subject, "magic": 0}, None))
        return Mutation(tuple(records), targets)

    def plan_delete_version(
        self, subject: str, version: int | str, permanent: bool = False
    ) -> Mutation[int]:
        """Soft-delete one version or, ``permanent``, remove a soft-deleted one."""
        everything = self._subjects.get(subject) or {}
        if not everything:
            raise SubjectNotFoundError(self._no_subject(subject))
        v = parse_version(version)
        if v == -1:
            pool = everything if permanent else self._live(subject, False)
            if not pool:
                raise VersionNotFoundError(f"subject {subject!r} has no live version.")
            v = max(pool)
        found = everything.get(v)
        if found is None:
            raise VersionNotFoundError(
                f"subject {subject!r} has no version {version}; it has {sorted(everything)}."
            )
        if not permanent and found.deleted:
            raise VersionSoftDeletedError(
                f"Subject '{subject}' Version {v} was soft deleted; delete it with "
                "permanent=true to remove it for good."
            )
        if permanent and not found.deleted:
            raise VersionNotSoftDeletedError(
                f"Subject '{subject}' Version {v} was not deleted first before being "
                "permanently deleted; soft-delete it first."
            )
        users = self._referrers(subject, v, deleted=permanent)
        if users:
            raise ReferenceExistsError(self._referenced(subject, v, users))
        records = [self._version_record(subject, v, permanent)]
        if permanent and len(everything) == 1 and subject in self._config:
            records.append(({"keytype": "CONFIG", "subject": subject, "magic": 0}, None))
        return Mutation(tuple(records), v)

    # ---- internals --------------------------------------------------------------------

    def _live(self, subject: str, deleted: bool) -> dict[int, _Version]:
        versions = self._subjects.get(subject) or {}
        return {v: f for v, f in versions.items() if deleted or not f.deleted}

    def _setting(self, subject: str | None, name: str) -> Any:
        for scope in (subject, None) if subject is not None else (None,):
            value = getattr(self._config.get(scope, _Config()), name)
            if value is not None:
                return value
        return None

    def _no_subject(self, subject: str) -> str:
        known = self.subjects()
        hint = f" Known subjects: {', '.join(known[:10])}." if known else " None is registered."
        return (
            f"Subject '{subject}' not found in {self.where}; subjects are "
            f"'<AggregateType>-<EventType>'.{hint}"
        )

    def _version_record(self, subject: str, version: int, permanent: bool) -> Record:
        key = {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}
        if permanent:
            return key, None
        got = self.get(subject, version, deleted=True)
        value: dict[str, Any] = {
            "subject": subject,
            "version": version,
            "id": got.id,
            "schemaType": got.schema_type,
            "schema": got.schema,
            "deleted": True,
        }
        if got.references:
            value["references"] = [r.to_json() for r in got.references]
        return key, value

    def _referrers(
        self, subject: str, version: int, deleted: bool, outside: bool = False
    ) -> set[int]:
        """Ids of schemas (soft-deleted ones too when ``deleted``) referencing the version;
        ``outside``: only those held by other subjects."""
        out: set[int] = set()
        for holder in self._subjects:
            if outside and holder == subject:
                continue
            for found in self._live(holder, deleted).values():
                refs = self._by_id[found.id].references
                if any(r.subject == subject and r.version == version for r in refs):
                    out.add(found.id)
        return out

    def _referenced(self, subject: str, version: int, users: set[int]) -> str:
        holders = sorted(
            f"{s} v{v}"
            for s in self._subjects
            for v, f in self._live(s, True).items()
            if f.id in users
        )
        return (
            f"Subject '{subject}' version {version} is referenced by {', '.join(holders)}; "
            "nothing was deleted. Delete the referencing versions first."
        )

    def _resolve(
        self, refs: Sequence[Reference], seen: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """name -> parsed schema for ``refs`` and, transitively, their own references."""
        out: dict[str, Any] = {}
        for ref in refs:
            if ref.name in seen:
                continue
            try:
                got = self.get(ref.subject, ref.version, deleted=True)
            except (SubjectNotFoundError, VersionNotFoundError, InvalidVersionError) as exc:
                raise InvalidSchemaError(
                    f"schema reference {ref.name!r} points at {ref.subject!r} version "
                    f"{ref.version}, which is not registered: {exc} Register it first."
                ) from None
            out.update(self._resolve(got.references, seen | {ref.name}))
            out[ref.name] = load(got.schema, got.schema_type)
        return out

    def _prepare(
        self,
        schema: SchemaInput,
        schema_type: str,
        references: Sequence[Reference | Mapping[str, Any]],
    ) -> tuple[str, Any, str, tuple[Reference, ...]]:
        """(kind, self-contained parsed schema, canonical text, references)."""
        kind = schema_kind(schema_type)
        refs = tuple(Reference.parse(r) for r in references)
        parsed = parse_schema(schema, kind, self._resolve(refs))
        return kind, parsed, canonical_text(load(schema, kind), kind), refs

    def document(self, schema_id: int) -> Any:
        """The parsed schema with this id, its references bundled in (self-contained)."""
        self.by_id(schema_id)
        return self._parsed(schema_id)

    def _parsed(self, schema_id: int) -> Any:
        stored = self._by_id[schema_id]
        return parse_schema(stored.text, stored.kind, self._resolve(stored.references))

    def _history(self, subject: str, kind: str) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        for version, found in sorted(self._live(subject, False).items()):
            other = self._by_id[found.id].kind
            if other != kind:
                raise InvalidSchemaError(
                    f"subject {subject!r} holds {other} schemas; cannot add {kind}."
                )
            out.append((version, self._parsed(found.id)))
        return out


def parse_version(version: int | str) -> int:
    """A version number, ``-1`` for ``latest``; InvalidVersionError otherwise."""
    if isinstance(version, str):
        if version == "latest":
            return -1
        if version.lstrip("-").isdigit():
            version = int(version)
        else:
            raise InvalidVersionError(f"version {version!r} is not a positive integer or 'latest'.")
    if isinstance(version, bool) or not isinstance(version, int) or (version < 1 and version != -1):
        raise InvalidVersionError(f"version {version!r} is not a positive integer or 'latest'.")
    return version


def check_subject(subject: str | None) -> None:
    if not subject or not subject.strip() or len(subject) > 255:
        raise InvalidSchemaError(f"subject {subject!r} must be a non-empty name (<= 255 chars).")
