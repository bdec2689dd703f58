"""Schema compatibility with the meaning Confluent Schema Registry gives its modes.

A *difference* between an original and an updated schema is compatible when every
payload the original accepts, the update accepts too (the update can read the
original's data). The modes then pick which comparisons must hold:

=====================  ==========================================================
BACKWARD (default)     the new schema reads data written with the latest version
BACKWARD_TRANSITIVE    ... with every earlier version
FORWARD                the latest version reads data written with the new schema
FORWARD_TRANSITIVE     every earlier version reads the new schema's data
FULL                   BACKWARD and FORWARD against the latest version
FULL_TRANSITIVE        BACKWARD and FORWARD against every version
NONE                   no check
=====================  ==========================================================

JSON Schema differences follow Confluent's ``json-schema-provider`` diff (the same
difference names, the same compatible set), including its *content models*:

* an object is **open** when it allows unknown properties (``additionalProperties``
  absent or ``true``, no ``patternProperties``), **closed** with
  ``additionalProperties: false``, **partially open** with a schema there.
* Adding a property to an *open* original is incompatible (old data may already
  hold that name with any value) unless the new property's schema is ``{}``.
  Adding an optional property to a *closed* original is compatible; a required one
  only with a ``default``.
* Removing a property is compatible only when the update is *open* (the old
  payloads, which have it, still validate), or covered by a partially open update.

kes generates closed schemas for event payloads (see :mod:`kes.schemas.generate`), as
Confluent's own Java serializer does, so "add an optional field" is BACKWARD compatible.

Not compared (as in Confluent, or simplified here): ``format``, ``dependencies``,
``unevaluated*``, ``if/then/else``, remote ``$ref``. Local ``$ref`` (``#/$defs/..``,
``#/definitions/..``) is followed, recursion included.

Avro compatibility is basic: Avro's schema-resolution rules for records (fields
matched by name or alias; a reader field missing in the writer needs a default),
enums (writer symbols must be known to the reader, or the reader has a default),
arrays, maps, fixed (size), unions and primitive promotions (int -> long -> float ->
double, string <-> bytes). Logical types, aliases of named types and namespaces are
not checked.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kes.schemas.errors import InvalidCompatibilityError, InvalidSchemaError

__all__ = [
    "COMPATIBLE_CHANGES",
    "BreakingChange",
    "Difference",
    "Mode",
    "avro_differences",
    "check_compatibility",
    "json_differences",
]


class Mode(enum.StrEnum):
    """A compatibility level, spelled as Confluent Schema Registry spells it."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        try:
            return cls(str(value).upper())
        except ValueError:
            raise InvalidCompatibilityError(
                f"unknown compatibility level {value!r}; use one of "
                f"{', '.join(m.value for m in cls)}."
            ) from None

    @property
    def backward(self) -> bool:
        return self in (Mode.BACKWARD, Mode.BACKWARD_TRANSITIVE, Mode.FULL, Mode.FULL_TRANSITIVE)

    @property
    def forward(self) -> bool:
        return self in (Mode.FORWARD, Mode.FORWARD_TRANSITIVE, Mode.FULL, Mode.FULL_TRANSITIVE)

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")


COMPATIBLE_CHANGES: frozenset[str] = frozenset(
    {
        "ID_CHANGED",
        "DESCRIPTION_CHANGED",
        "TITLE_CHANGED",
        "DEFAULT_CHANGED",
        "SCHEMA_REMOVED",
        "TYPE_EXTENDED",
        "MAX_LENGTH_INCREASED",
        "MAX_LENGTH_REMOVED",
        "MIN_LENGTH_DECREASED",
        "MIN_LENGTH_REMOVED",
        "PATTERN_REMOVED",
        "MAXIMUM_INCREASED",
        "MAXIMUM_REMOVED",
        "MINIMUM_DECREASED",
        "MINIMUM_REMOVED",
        "EXCLUSIVE_MAXIMUM_INCREASED",
        "EXCLUSIVE_MAXIMUM_REMOVED",
        "EXCLUSIVE_MINIMUM_DECREASED",
        "EXCLUSIVE_MINIMUM_REMOVED",
        "MULTIPLE_OF_REDUCED",
        "MULTIPLE_OF_REMOVED",
        "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
        "REQUIRED_ATTRIBUTE_REMOVED",
        "MAX_PROPERTIES_INCREASED",
        "MAX_PROPERTIES_REMOVED",
        "MIN_PROPERTIES_DECREASED",
        "MIN_PROPERTIES_REMOVED",
        "ADDITIONAL_PROPERTIES_ADDED",
        "ADDITIONAL_PROPERTIES_EXTENDED",
        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "MAX_ITEMS_INCREASED",
        "MAX_ITEMS_REMOVED",
        "MIN_ITEMS_DECREASED",
        "MIN_ITEMS_REMOVED",
        "UNIQUE_ITEMS_REMOVED",
        "ADDITIONAL_ITEMS_ADDED",
        "ADDITIONAL_ITEMS_EXTENDED",
        "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
        "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
        "ENUM_ARRAY_EXTENDED",
        "COMBINED_TYPE_EXTENDED",
        "PRODUCT_TYPE_NARROWED",
        "SUM_TYPE_EXTENDED",
        "NOT_TYPE_NARROWED",
    }
)

# Why an incompatible difference breaks readers of the original's data.
_WHY: dict[str, str] = {
    "TYPE_CHANGED": "the type changed; values of the old type no longer validate",
    "TYPE_NARROWED": "the type was narrowed (e.g. number -> integer); 1.5 no longer validates",
    "SCHEMA_ADDED": "a constraint was added where anything was allowed",
    "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL": (
        "the original allowed unknown properties (open content model), so old data may "
        "already hold this name with another type; close the original "
        "(additionalProperties: false) before adding properties"
    ),
    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL": (
        "the update forbids unknown properties (closed content model) but old data holds "
        "this one; keep it, or mark it deprecated instead of removing it"
    ),
    "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL": (
        "a new required property without a default: old data lacks it; make it optional "
        "or give it a default"
    ),
    "REQUIRED_ATTRIBUTE_ADDED": (
        "an existing property became required without a default: old data may lack it"
    ),
    "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL": (
        "the new property's schema does not accept what the original's additional/pattern "
        "properties allowed"
    ),
    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL": (
        "the removed property's values are not accepted by the update's additional/pattern "
        "properties"
    ),
    "ADDITIONAL_PROPERTIES_REMOVED": "unknown properties are now forbidden; old data may have some",
    "ADDITIONAL_PROPERTIES_NARROWED": "unknown properties are now constrained by a schema",
    "ENUM_ARRAY_NARROWED": "enum values were removed; old data may hold them",
    "ENUM_ARRAY_CHANGED": "enum values were replaced; old data may hold the removed ones",
    "ITEM_ADDED_TO_OPEN_CONTENT_MODEL": "a tuple item was added where any item was allowed",
    "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL": "a tuple item was removed but extra items are "
    "forbidden",
    "ADDITIONAL_ITEMS_REMOVED": "extra array items are now forbidden",
    "ADDITIONAL_ITEMS_NARROWED": "extra array items are now constrained",
    "UNIQUE_ITEMS_ADDED": "items must now be unique; old arrays may repeat values",
    "COMBINED_TYPE_CHANGED": "anyOf/oneOf/allOf changed kind",
    "COMBINED_TYPE_SUBSCHEMAS_CHANGED": "the alternatives do not match the old ones",
    "SUM_TYPE_NARROWED": "alternatives were removed from anyOf/oneOf",
    "PRODUCT_TYPE_EXTENDED": "allOf gained a constraint",
    "NOT_TYPE_EXTENDED": "'not' now excludes more values",
    "DEPENDENCY_ARRAY_ADDED": "a property dependency was added",
}
for _limit in ("MAX_LENGTH", "MAXIMUM", "EXCLUSIVE_MAXIMUM", "MAX_ITEMS", "MAX_PROPERTIES"):
    _WHY[f"{_limit}_ADDED"] = f"{_limit.lower()} was added: old values may exceed it"
    _WHY[f"{_limit}_DECREASED"] = f"{_limit.lower()} decreased: old values may exceed it"
for _limit in ("MIN_LENGTH", "MINIMUM", "EXCLUSIVE_MINIMUM", "MIN_ITEMS", "MIN_PROPERTIES"):
    _WHY[f"{_limit}_ADDED"] = f"{_limit.lower()} was added: old values may be below it"
    _WHY[f"{_limit}_INCREASED"] = f"{_limit.lower()} increased: old values may be below it"
_WHY["PATTERN_ADDED"] = "a pattern was added: old strings may not match it"
_WHY["PATTERN_CHANGED"] = "the pattern changed: old strings may not match it"
_WHY["MULTIPLE_OF_ADDED"] = "multipleOf was added"
_WHY["MULTIPLE_OF_EXPANDED"] = "multipleOf grew: old values may not be multiples of it"
_WHY["MULTIPLE_OF_CHANGED"] = "multipleOf changed"


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference between two schemas, at ``path`` (a JSON pointer into the schema)."""

    path: str
    type: str

    @property
    def compatible(self) -> bool:
        return self.type in COMPATIBLE_CHANGES

    @property
    def field(self) -> str:
        """The payload field the path points at: ``addr.street``, ``tags[]``, ``(root)``."""
        return field_of(self.path)

    @property
    def why(self) -> str:
        if self.compatible:
            return "compatible"
        return _WHY.get(self.type, self.type.lower().replace("_", " "))


@dataclass(frozen=True, slots=True)
class BreakingChange:
    """An incompatible difference found by a compatibility check.

    ``direction`` is ``"backward"`` (the new schema cannot read data of ``version``)
    or ``"forward"`` (``version`` cannot read the new schema's data).
    """

    field: str
    change: str
    why: str
    path: str
    direction: str
    version: int | None = None

    def __str__(self) -> str:
        against = f" version {self.version}" if self.version is not None else " it"
        reader = (
            f"new schema cannot read{against}'s data"
            if self.direction == "backward"
            else f"{against.strip()} cannot read the new schema's data"
        )
        return f"{self.field}: {self.change} ({self.why}; {self.direction}: {reader})"

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "change": self.change,
            "why": self.why,
            "path": self.path,
            "direction": self.direction,
            "version": self.version,
        }


def field_of(path: str) -> str:
    parts = [p for p in path.lstrip("#").split("/") if p]
    out: list[str] = []
    i = 0
    while i < len(parts):
        p = parts[i]
        if p in ("properties", "required", "dependencies") and i + 1 < len(parts):
            out.append(parts[i + 1])
            i += 2
            continue
        if p == "items":
            if out:
                out[-1] += "[]"
            else:
                out.append("[]")
            if i + 1 < len(parts) and parts[i + 1].isdigit():
                out[-1] = out[-1][:-2] + f"[{parts[i + 1]}]"
                i += 1
        elif p in ("additionalProperties", "patternProperties"):
            out.append("*")
        i += 1
    return ".".join(out) if out else "(root)"


# ---- JSON Schema ------------------------------------------------------------------

_ANNOTATIONS = frozenset(
    {"title", "description", "default", "$id", "id", "$schema", "examples", "$comment", "format"}
)
_COMBINERS = ("allOf", "anyOf", "oneOf")


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass
class _Ctx:
    o_root: Any
    u_root: Any
    diffs: list[Difference] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    seen: set[tuple[int, int]] = field(default_factory=set)

    def add(self, kind: str, *sub: str) -> None:
        self.diffs.append(Difference("#/" + "/".join([*self.path, *sub]), kind))

    @contextmanager
    def at(self, *parts: str) -> Iterator[None]:
        self.path.extend(parts)
        try:
            yield
        finally:
            del self.path[len(self.path) - len(parts) :]

    def sub(self) -> _Ctx:
        return _Ctx(self.o_root, self.u_root, [], list(self.path), set(self.seen))

    @property
    def compatible(self) -> bool:
        return all(d.compatible for d in self.diffs)


def _resolve(root: Any, schema: Any) -> Any:
    """Follow local ``$ref``s (``#/...``) to the schema they name."""
    hops = 0
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise InvalidSchemaError(
                f"$ref {ref!r} is not a local reference (#/...); kes resolves only local "
                "references. Inline the referenced schema or put it under $defs."
            )
        target: Any = root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise InvalidSchemaError(f"$ref {ref!r} points at nothing in the schema.")
        siblings = {k: v for k, v in schema.items() if k != "$ref" and k not in _ANNOTATIONS}
        schema = {**target, **siblings} if siblings and isinstance(target, dict) else target
        hops += 1
        if hops > 64:
            raise InvalidSchemaError(f"$ref {ref!r} loops without reaching a schema.")
    return schema


def _kind(s: Any) -> str:
    if s is True:
        return "empty"
    if s is False:
        return "false"
    if not isinstance(s, dict):
        raise InvalidSchemaError(f"a schema must be an object or a boolean, got {s!r}.")
    if "enum" in s or "const" in s:
        return "enum"
    if any(k in s for k in _COMBINERS):
        return "combined"
    t = s.get("type")
    if isinstance(t, list):
        return "combined" if len(t) != 1 else _type_kind(t[0])
    if t is not None:
        return _type_kind(t)
    if "not" in s:
        return "not"
    if any(
        k in s
        for k in (
            "properties",
            "required",
            "additionalProperties",
            "patternProperties",
            "minProperties",
            "maxProperties",
        )
    ):
        return "object"
    if any(k in s for k in ("items", "additionalItems", "minItems", "maxItems", "uniqueItems")):
        return "array"
    if any(k in s for k in ("minLength", "maxLength", "pattern")):
        return "string"
    if any(k in s for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return "number"
    return "empty"


def _type_kind(t: Any) -> str:
    kinds = {
        "object": "object",
        "array": "array",
        "string": "string",
        "number": "number",
        "integer": "number",
        "boolean": "boolean",
        "null": "null",
    }
    if t not in kinds:
        raise InvalidSchemaError(
            f"unknown JSON Schema type {t!r}; use one of {', '.join(sorted(kinds))}."
        )
    return kinds[t]


def _combined(s: dict[str, Any]) -> tuple[str, list[Any]]:
    for k in _COMBINERS:
        if k in s:
            subs = s[k]
            if not isinstance(subs, list) or not subs:
                raise InvalidSchemaError(f"{k} must be a non-empty array of schemas.")
            return k, subs
    rest = {k: v for k, v in s.items() if k != "type" and k not in _ANNOTATIONS}
    return "anyOf", [{"type": t, **rest} for t in s["type"]]


def _compare(ctx: _Ctx, o: Any, u: Any) -> None:
    if o is None and u is None:
        return
    if o is None:
        ctx.add("SCHEMA_ADDED")
        return
    if u is None:
        ctx.add("SCHEMA_REMOVED")
        return
    o = _resolve(ctx.o_root, o)
    u = _resolve(ctx.u_root, u)
    ko, ku = _kind(o), _kind(u)
    if ko != "combined" and ku == "combined":
        crit, subs = _combined(u)
        if len(subs) == 1:
            sub = ctx.sub()
            _compare(sub, o, subs[0])
            if sub.compatible:
                ctx.diffs.extend(sub.diffs)
                return
        elif crit in ("anyOf", "oneOf"):
            for s in subs:
                sub = ctx.sub()
                _compare(sub, o, s)
                if sub.compatible:
                    ctx.diffs.extend(sub.diffs)
                    ctx.add("SUM_TYPE_EXTENDED")
                    return
    elif ko == "combined" and ku != "combined":
        _, subs = _combined(o)
        if len(subs) == 1:
            sub = ctx.sub()
            _compare(sub, subs[0], u)
            if sub.compatible:
                ctx.diffs.extend(sub.diffs)
                return
    if ko != ku:
        if ko == "false" or ku == "empty":
            return
        ctx.add("TYPE_CHANGED")
        return
    key = (id(o), id(u))
    if key in ctx.seen:  # a recursive schema: this pair is being compared already
        return
    ctx.seen.add(key)
    if isinstance(o, dict) and isinstance(u, dict):
        for attr, kind in (
            ("$id", "ID_CHANGED"),
            ("title", "TITLE_CHANGED"),
            ("description", "DESCRIPTION_CHANGED"),
            ("default", "DEFAULT_CHANGED"),
        ):
            if _canon(o.get(attr)) != _canon(u.get(attr)):
                ctx.add(kind)
        compare = _COMPARERS.get(ko)
        if compare is not None:
            compare(ctx, o, u)


def _limits(
    ctx: _Ctx, o: dict[str, Any], u: dict[str, Any], key: str, name: str, upper: bool
) -> None:
    a, b = o.get(key), u.get(key)
    if not isinstance(a, int | float) or isinstance(a, bool):
        a = None
    if not isinstance(b, int | float) or isinstance(b, bool):
        b = None
    if a == b:
        return
    if a is None:
        ctx.add(f"{name}_ADDED", key)
    elif b is None:
        ctx.add(f"{name}_REMOVED", key)
    elif upper:
        ctx.add(f"{name}_INCREASED" if b > a else f"{name}_DECREASED", key)
    else:
        ctx.add(f"{name}_DECREASED" if b < a else f"{name}_INCREASED", key)


def _string(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    _limits(ctx, o, u, "maxLength", "MAX_LENGTH", True)
    _limits(ctx, o, u, "minLength", "MIN_LENGTH", False)
    po, pu = o.get("pattern"), u.get("pattern")
    if po != pu:
        if po is None:
            ctx.add("PATTERN_ADDED", "pattern")
        elif pu is None:
            ctx.add("PATTERN_REMOVED", "pattern")
        else:
            ctx.add("PATTERN_CHANGED", "pattern")


def _number(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    _limits(ctx, o, u, "maximum", "MAXIMUM", True)
    _limits(ctx, o, u, "minimum", "MINIMUM", False)
    _limits(ctx, o, u, "exclusiveMaximum", "EXCLUSIVE_MAXIMUM", True)
    _limits(ctx, o, u, "exclusiveMinimum", "EXCLUSIVE_MINIMUM", False)
    mo, mu = o.get("multipleOf"), u.get("multipleOf")
    if mo != mu:
        if mo is None:
            ctx.add("MULTIPLE_OF_ADDED", "multipleOf")
        elif mu is None:
            ctx.add("MULTIPLE_OF_REMOVED", "multipleOf")
        elif int(mu) and int(mo) and int(mu) % int(mo) == 0:
            ctx.add("MULTIPLE_OF_EXPANDED", "multipleOf")
        elif int(mu) and int(mo) and int(mo) % int(mu) == 0:
            ctx.add("MULTIPLE_OF_REDUCED", "multipleOf")
        else:
            ctx.add("MULTIPLE_OF_CHANGED", "multipleOf")
    io, iu = o.get("type") == "integer", u.get("type") == "integer"
    if io != iu:
        ctx.add("TYPE_EXTENDED" if io else "TYPE_NARROWED")


def _enum_values(s: dict[str, Any]) -> set[str]:
    if "const" in s:
        return {_canon(s["const"])}
    values = s["enum"]
    if not isinstance(values, list):
        raise InvalidSchemaError(f"enum must be an array, got {values!r}.")
    return {_canon(v) for v in values}


def _enum(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    vo, vu = _enum_values(o), _enum_values(u)
    if vo != vu:
        if vu >= vo:
            ctx.add("ENUM_ARRAY_EXTENDED", "enum")
        elif vo >= vu:
            ctx.add("ENUM_ARRAY_NARROWED", "enum")
        else:
            ctx.add("ENUM_ARRAY_CHANGED", "enum")


def _not(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    if _canon(o.get("not")) == _canon(u.get("not")):
        return
    sub = ctx.sub()
    _compare(sub, u.get("not"), o.get("not"))
    ctx.add("NOT_TYPE_NARROWED" if sub.compatible else "NOT_TYPE_EXTENDED")


def _combined_diff(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    co, so = _combined(o)
    cu, su = _combined(u)
    changed = False
    if co != cu:
        singleton = len(so) == 1
        if (
            cu == "anyOf"
            or (cu == "oneOf" and singleton)
            or (cu == "allOf" and singleton and len(su) == 1)
        ):
            ctx.add("COMBINED_TYPE_EXTENDED")
        else:
            ctx.add("COMBINED_TYPE_CHANGED")
            changed = True
    if changed:
        return
    so = list({_canon(s): s for s in so}.values())
    su = list({_canon(s): s for s in su}.values())
    if len(so) < len(su):
        ctx.add("PRODUCT_TYPE_EXTENDED" if cu == "allOf" else "SUM_TYPE_EXTENDED")
    elif len(so) > len(su):
        ctx.add("PRODUCT_TYPE_NARROWED" if cu == "allOf" else "SUM_TYPE_NARROWED")
    edges: dict[int, dict[int, list[Difference]]] = {}
    for i, a in enumerate(so):
        with ctx.at(co, str(i)):
            for j, b in enumerate(su):
                sub = ctx.sub()
                _compare(sub, a, b)
                if sub.compatible:
                    edges.setdefault(i, {})[j] = sub.diffs
    match = _max_matching(edges)
    for j, i in match.items():
        ctx.diffs.extend(edges[i][j])
    if len(match) < min(len(so), len(su)):
        ctx.add("COMBINED_TYPE_SUBSCHEMAS_CHANGED")


def _max_matching(edges: Mapping[int, Mapping[int, object]]) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn): right node -> left node."""
    match: dict[int, int] = {}

    def augment(i: int, visited: set[int]) -> bool:
        for j in edges.get(i, {}):
            if j in visited:
                continue
            visited.add(j)
            if j not in match or augment(match[j], visited):
                match[j] = i
                return True
        return False

    for i in edges:
        augment(i, set())
    return match


def _props(s: dict[str, Any]) -> dict[str, Any]:
    props = s.get("properties", {})
    if not isinstance(props, dict):
        raise InvalidSchemaError(f"properties must be an object, got {props!r}.")
    return props


def _required(s: dict[str, Any]) -> set[str]:
    req = s.get("required", [])
    if not isinstance(req, list):
        raise InvalidSchemaError(f"required must be an array of names, got {req!r}.")
    return set(req)


def _permits_additional(s: dict[str, Any]) -> bool:
    return s.get("additionalProperties", True) is not False


def _additional_schema(s: dict[str, Any]) -> Any:
    ap = s.get("additionalProperties")
    return ap if isinstance(ap, dict) else None


def _is_open(s: dict[str, Any]) -> bool:
    return (
        not s.get("patternProperties") and _additional_schema(s) is None and _permits_additional(s)
    )


def _partial(s: dict[str, Any], name: str) -> Any:
    for pattern, schema in (s.get("patternProperties") or {}).items():
        if re.search(pattern, name):
            return schema
    return _additional_schema(s)


def _has_default(root: Any, s: Any) -> bool:
    s = _resolve(root, s)
    return isinstance(s, dict) and "default" in s


def _object(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    po, pu = _props(o), _props(u)
    ro, ru = _required(o), _required(u)
    for name in po:
        if name in pu:
            was, now = name in ro, name in ru
            if was and not now:
                ctx.add("REQUIRED_ATTRIBUTE_REMOVED", "required", name)
            elif now and not was:
                ctx.add(
                    "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED"
                    if _has_default(ctx.u_root, pu[name])
                    else "REQUIRED_ATTRIBUTE_ADDED",
                    "required",
                    name,
                )
    for name in [*po, *(n for n in pu if n not in po)]:
        with ctx.at("properties", name):
            if name not in pu:
                if _is_open(u):
                    ctx.add("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL")
                    continue
                partial = _partial(u, name)
                if partial is not None:
                    sub = ctx.sub()
                    _compare(sub, po[name], partial)
                    ctx.diffs.extend(sub.diffs)
                    ctx.add(
                        "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                        if sub.compatible
                        else "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                    )
                elif po[name] is False:
                    ctx.add("PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL")
                else:
                    ctx.add("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL")
            elif name not in po:
                if _is_open(o):
                    empty = _kind(_resolve(ctx.u_root, pu[name])) == "empty"
                    ctx.add(
                        "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                        if empty
                        else "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
                    )
                    continue
                partial = _partial(o, name)
                if partial is not None:
                    sub = ctx.sub()
                    _compare(sub, partial, pu[name])
                    ctx.diffs.extend(sub.diffs)
                    ctx.add(
                        "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                        if sub.compatible
                        else "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                    )
                if name in ru:
                    ctx.add(
                        "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL"
                        if _has_default(ctx.u_root, pu[name])
                        else "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
                    )
                else:
                    ctx.add("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")
            else:
                _compare(ctx, po[name], pu[name])
    with ctx.at("additionalProperties"):
        if _permits_additional(o) != _permits_additional(u):
            ctx.add(
                "ADDITIONAL_PROPERTIES_ADDED"
                if _permits_additional(u)
                else "ADDITIONAL_PROPERTIES_REMOVED"
            )
        else:
            ao, au = _additional_schema(o), _additional_schema(u)
            if ao is None and au is not None:
                ctx.add("ADDITIONAL_PROPERTIES_NARROWED")
            elif au is None and ao is not None:
                ctx.add("ADDITIONAL_PROPERTIES_EXTENDED")
            elif ao is not None:
                _compare(ctx, ao, au)
    _limits(ctx, o, u, "maxProperties", "MAX_PROPERTIES", True)
    _limits(ctx, o, u, "minProperties", "MIN_PROPERTIES", False)


def _array(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    io, iu = o.get("items"), u.get("items")
    to = io if isinstance(io, list) else o.get("prefixItems", [])
    tu = iu if isinstance(iu, list) else u.get("prefixItems", [])
    with ctx.at("items"):
        _compare(ctx, None if isinstance(io, list) else io, None if isinstance(iu, list) else iu)
    extra_o = o.get("additionalItems") if isinstance(io, list) else None
    extra_u = u.get("additionalItems") if isinstance(iu, list) else None
    open_o = extra_o is None or extra_o is True
    open_u = extra_u is None or extra_u is True
    for i in range(max(len(to), len(tu))):
        with ctx.at("items", str(i)):
            if i < len(to) and i < len(tu):
                _compare(ctx, to[i], tu[i])
            elif i < len(to):  # removed from the update's tuple
                if open_u:
                    ctx.add("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL")
                elif isinstance(extra_u, dict):
                    sub = ctx.sub()
                    _compare(sub, to[i], extra_u)
                    ctx.diffs.extend(sub.diffs)
                    ctx.add(
                        "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                        if sub.compatible
                        else "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                    )
                elif to[i] is False:
                    ctx.add("ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL")
                else:
                    ctx.add("ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL")
            elif open_o:
                empty = _kind(_resolve(ctx.u_root, tu[i])) == "empty"
                ctx.add(
                    "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                    if empty
                    else "ITEM_ADDED_TO_OPEN_CONTENT_MODEL"
                )
            elif isinstance(extra_o, dict):
                sub = ctx.sub()
                _compare(sub, extra_o, tu[i])
                ctx.diffs.extend(sub.diffs)
                ctx.add(
                    "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                    if sub.compatible
                    else "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
                )
            else:
                ctx.add("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL")
    with ctx.at("additionalItems"):
        if (extra_o is not False) != (extra_u is not False):
            added = extra_u is not False
            ctx.add("ADDITIONAL_ITEMS_ADDED" if added else "ADDITIONAL_ITEMS_REMOVED")
        elif not isinstance(extra_o, dict) and isinstance(extra_u, dict):
            ctx.add("ADDITIONAL_ITEMS_NARROWED")
        elif isinstance(extra_o, dict) and not isinstance(extra_u, dict):
            ctx.add("ADDITIONAL_ITEMS_EXTENDED")
        elif isinstance(extra_o, dict):
            _compare(ctx, extra_o, extra_u)
    _limits(ctx, o, u, "maxItems", "MAX_ITEMS", True)
    _limits(ctx, o, u, "minItems", "MIN_ITEMS", False)
    uo, uu = bool(o.get("uniqueItems")), bool(u.get("uniqueItems"))
    if uo != uu:
        ctx.add("UNIQUE_ITEMS_REMOVED" if uo else "UNIQUE_ITEMS_ADDED", "uniqueItems")


_COMPARERS: dict[str, Any] = {
    "string": _string,
    "number": _number,
    "enum": _enum,
    "combined": _combined_diff,
    "not": _not,
    "object": _object,
    "array": _array,
}


def json_differences(original: Any, update: Any) -> list[Difference]:
    """Every difference from ``original`` to ``update`` (compatible ones included)."""
    ctx = _Ctx(original, update)
    _compare(ctx, original, update)
    return ctx.diffs


# ---- Avro (basic) ---------------------------------------------------------------

_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _avro_names(schema: Any, names: dict[str, Any]) -> None:
    if isinstance(schema, list):
        for s in schema:
            _avro_names(s, names)
    elif isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "enum", "fixed", "error"):
            name = schema.get("name")
            if not isinstance(name, str):
                raise InvalidSchemaError(f"Avro {t} needs a string 'name': {_canon(schema)}.")
            names[name.rsplit(".", 1)[-1]] = schema
            for f in schema.get("fields", []) if t in ("record", "error") else []:
                if not isinstance(f, dict) or "name" not in f or "type" not in f:
                    raise InvalidSchemaError(f"Avro field needs 'name' and 'type': {f!r}.")
                _avro_names(f["type"], names)
        elif t == "array":
            _avro_names(schema.get("items"), names)
        elif t == "map":
            _avro_names(schema.get("values"), names)
        elif isinstance(t, dict | list):
            _avro_names(t, names)


_AVRO_COMPLEX = frozenset({"record", "error", "enum", "fixed", "array", "map"})


def _avro_deref(schema: Any, names: Mapping[str, Any]) -> Any:
    """A primitive's name, a union (list) or a complex type's dict; named refs followed."""
    for _ in range(64):
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            found = names.get(schema.rsplit(".", 1)[-1])
            if found is None:
                raise InvalidSchemaError(f"Avro type {schema!r} is not defined in the schema.")
            schema = found
        elif isinstance(schema, dict) and schema.get("type") not in _AVRO_COMPLEX:
            if "type" not in schema:
                raise InvalidSchemaError(f"an Avro schema object needs 'type': {schema!r}.")
            schema = schema["type"]
        else:
            return schema
    raise InvalidSchemaError("Avro type references loop.")


def _avro_type(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    t = schema.get("type")
    return "record" if t == "error" else str(t)


def avro_differences(writer: Any, reader: Any) -> list[Difference]:
    """Why ``reader`` cannot read data written with ``writer`` (empty: it can)."""
    wn: dict[str, Any] = {}
    rn: dict[str, Any] = {}
    _avro_names(writer, wn)
    _avro_names(reader, rn)
    out: list[Difference] = []
    seen: set[tuple[int, int]] = set()

    def check(w: Any, r: Any, path: str) -> None:
        w, r = _avro_deref(w, wn), _avro_deref(r, rn)
        tw, tr = _avro_type(w), _avro_type(r)
        if tw == "union":
            for i, branch in enumerate(w):
                check(branch, r, f"{path}/{i}")
            return
        if tr == "union":
            for branch in r:
                mark = len(out)
                check(w, branch, path)
                failed = len(out) > mark
                del out[mark:]
                if not failed:
                    return
            out.append(Difference(path, "MISSING_UNION_BRANCH"))
            return
        if tw != tr:
            if (tw, tr) not in _PROMOTIONS:
                out.append(Difference(path, "TYPE_MISMATCH"))
            return
        key = (id(w), id(r))
        if key in seen:
            return
        seen.add(key)
        if tw == "record":
            if str(w.get("name", "")).rsplit(".", 1)[-1] != str(r.get("name", "")).rsplit(".", 1)[
                -1
            ] and w.get("name") not in r.get("aliases", []):
                out.append(Difference(path, "NAME_MISMATCH"))
            wfields = {f["name"]: f for f in w.get("fields", [])}
            for f in r.get("fields", []):
                match = wfields.get(f["name"])
                if match is None:
                    match = next((wfields[a] for a in f.get("aliases", []) if a in wfields), None)
                fpath = f"{path}/fields/{f['name']}"
                if match is None:
                    if "default" not in f:
                        out.append(Difference(fpath, "READER_FIELD_MISSING_DEFAULT_VALUE"))
                else:
                    check(match["type"], f["type"], fpath)
        elif tw == "enum":
            missing = set(w.get("symbols", [])) - set(r.get("symbols", []))
            if missing and "default" not in r:
                out.append(Difference(f"{path}/symbols", "MISSING_ENUM_SYMBOLS"))
        elif tw == "fixed":
            if w.get("size") != r.get("size"):
                out.append(Difference(f"{path}/size", "FIXED_SIZE_MISMATCH"))
        elif tw == "array":
            check(w.get("items"), r.get("items"), f"{path}/items")
        elif tw == "map":
            check(w.get("values"), r.get("values"), f"{path}/values")

    check(writer, reader, "#")
    return out


_AVRO_WHY = {
    "TYPE_MISMATCH": "the types differ and Avro cannot promote one to the other",
    "MISSING_UNION_BRANCH": "the reader's union has no branch for the writer's type",
    "READER_FIELD_MISSING_DEFAULT_VALUE": (
        "the reader has a field the writer lacks, with no default; give it a default"
    ),
    "MISSING_ENUM_SYMBOLS": "the writer has enum symbols the reader lacks (and no default)",
    "NAME_MISMATCH": "the record names differ (and no alias matches)",
    "FIXED_SIZE_MISMATCH": "the fixed sizes differ",
}


# ---- the check -------------------------------------------------------------------


def _breaking(
    schema_type: str, writer_or_original: Any, reader_or_update: Any, direction: str, version: int
) -> list[BreakingChange]:
    if schema_type == "AVRO":
        diffs = avro_differences(writer_or_original, reader_or_update)
        return [
            BreakingChange(
                field_of(d.path.replace("/fields/", "/properties/")),
                d.type,
                _AVRO_WHY.get(d.type, d.type),
                d.path,
                direction,
                version,
            )
            for d in diffs
        ]
    return [
        BreakingChange(d.field, d.type, d.why, d.path, direction, version)
        for d in json_differences(writer_or_original, reader_or_update)
        if not d.compatible
    ]


def check_compatibility(
    mode: Mode | str,
    new: Any,
    previous: Sequence[tuple[int, Any]],
    schema_type: str = "JSON",
) -> list[BreakingChange]:
    """The breaking changes of ``new`` under ``mode`` against ``previous``.

    ``previous`` holds ``(version, parsed schema)``, oldest first. Non-transitive
    modes compare with the last one only. An empty list means compatible.
    """
    mode = Mode.parse(mode)
    if mode is Mode.NONE or not previous:
        return []
    kind = schema_type.upper()
    if kind == "PROTOBUF":
        raise InvalidSchemaError(
            "kes checks JSON Schema and Avro compatibility only; register PROTOBUF with "
            "compatibility NONE."
        )
    targets = previous if mode.transitive else previous[-1:]
    out: list[BreakingChange] = []
    for version, old in reversed(targets):
        if mode.backward:
            out.extend(_breaking(kind, old, new, "backward", version))
        if mode.forward:
            out.extend(_breaking(kind, new, old, "forward", version))
    return out
