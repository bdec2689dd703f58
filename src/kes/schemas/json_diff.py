"""JSON Schema differences, following Confluent's ``json-schema-provider`` diff.

One comparer per kind of schema (``SchemaDiff``, ``ObjectSchemaDiff``,
``ArraySchemaDiff``, ``CombinedSchemaDiff``, ...), the same change names at the same
paths, and the same verdicts under the STRICT or LENIENT set of compatible changes.
:mod:`kes.schemas.json_model` says how a document is read into kinds and facets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kes.schemas.differences import COMPATIBLE_CHANGES, Difference, canonical
from kes.schemas.errors import InvalidSchemaError
from kes.schemas.json_model import Doc, combined, kind, resolve

__all__ = ["json_differences"]


@dataclass
class _Ctx:
    o: Doc
    u: Doc
    allowed: frozenset[str]
    diffs: list[Difference] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    seen: set[tuple[int, int]] = field(default_factory=set)

    def add(self, change: str, *sub: str) -> None:
        where = "#/" + "/".join([*self.path, *sub])
        self.diffs.append(Difference(where, change, change in self.allowed))

    @contextmanager
    def at(self, *parts: str) -> Iterator[None]:
        self.path.extend(parts)
        try:
            yield
        finally:
            del self.path[len(self.path) - len(parts) :]

    def sub(self) -> _Ctx:
        return _Ctx(self.o, self.u, self.allowed, [], list(self.path), set(self.seen))

    def reversed(self) -> _Ctx:
        """A sub-context comparing the update (as original) with the original (``not``)."""
        return _Ctx(self.u, self.o, self.allowed, [], list(self.path), set())

    @property
    def compatible(self) -> bool:
        return all(d.compatible for d in self.diffs)


def _try(ctx: _Ctx, o: Any, u: Any) -> _Ctx:
    sub = ctx.sub()
    _compare(sub, o, u)
    return sub


def _compare(ctx: _Ctx, o: Any, u: Any) -> None:
    if o is None and u is None:
        return
    if o is None:
        ctx.add("SCHEMA_ADDED")
        return
    if u is None:
        ctx.add("SCHEMA_REMOVED")
        return
    o = resolve(ctx.o, o)
    u = resolve(ctx.u, u)
    ko, ku = kind(ctx.o, o), kind(ctx.u, u)
    # SchemaDiff.compareTypes: a plain schema against a combined one
    if ko != "combined" and ku == "combined":
        crit, subs = combined(ctx.u, u)
        if len(subs) == 1:
            sub = _try(ctx, o, subs[0])
            if sub.compatible:
                ctx.diffs.extend(sub.diffs)
                return
        elif crit in ("anyOf", "oneOf"):
            for s in subs:
                sub = _try(ctx, o, s)
                if sub.compatible:
                    ctx.diffs.extend(sub.diffs)
                    ctx.add("SUM_TYPE_EXTENDED")
                    return
    elif ko == "combined" and ku != "combined":
        crit, subs = combined(ctx.o, o)
        if len(subs) == 1:
            sub = _try(ctx, subs[0], u)
            if sub.compatible:
                ctx.diffs.extend(sub.diffs)
                return
        elif crit == "allOf":
            for s in subs:
                sub = _try(ctx, s, u)
                if sub.compatible:
                    ctx.diffs.extend(sub.diffs)
                    ctx.add("PRODUCT_TYPE_NARROWED")
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
        annotations = [
            ("title", "TITLE_CHANGED"),
            ("description", "DESCRIPTION_CHANGED"),
            ("default", "DEFAULT_CHANGED"),
        ]
        if not (ctx.o.modern or ctx.u.modern):  # json-sKema keeps no $id on the schema
            annotations.insert(0, ("$id", "ID_CHANGED"))
        for attr, change in annotations:
            if canonical(o.get(attr)) != canonical(u.get(attr)):
                ctx.add(change)
        compare = _COMPARERS.get(ko)
        if compare is not None:
            compare(ctx, o, u)


def _number_of(s: Any, key: str) -> int | float | None:
    value = s.get(key) if isinstance(s, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return value


def _limits(
    ctx: _Ctx, o: dict[str, Any], u: dict[str, Any], key: str, name: str, upper: bool
) -> None:
    a, b = _number_of(o, key), _number_of(u, key)
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


def _multiple_of(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    mo, mu = _number_of(o, "multipleOf"), _number_of(u, "multipleOf")
    if mo == mu:
        return
    if mo is None:
        ctx.add("MULTIPLE_OF_ADDED", "multipleOf")
    elif mu is None:
        ctx.add("MULTIPLE_OF_REMOVED", "multipleOf")
    elif mo and _divides(mo, mu):
        ctx.add("MULTIPLE_OF_EXPANDED", "multipleOf")
    elif mu and _divides(mu, mo):
        ctx.add("MULTIPLE_OF_REDUCED", "multipleOf")
    else:
        ctx.add("MULTIPLE_OF_CHANGED", "multipleOf")


def _divides(d: int | float, n: int | float) -> bool:
    from decimal import Decimal

    return Decimal(str(n)) % Decimal(str(d)) == 0


def _number(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    _limits(ctx, o, u, "maximum", "MAXIMUM", True)
    _limits(ctx, o, u, "minimum", "MINIMUM", False)
    _limits(ctx, o, u, "exclusiveMaximum", "EXCLUSIVE_MAXIMUM", True)
    _limits(ctx, o, u, "exclusiveMinimum", "EXCLUSIVE_MINIMUM", False)
    _multiple_of(ctx, o, u)
    io, iu = o.get("type") == "integer", u.get("type") == "integer"
    if io != iu:
        ctx.add("TYPE_EXTENDED" if io else "TYPE_NARROWED")


def _enum(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    vo, vu = _values(o["enum"]), _values(u["enum"])
    if vo != vu:
        if vu >= vo:
            ctx.add("ENUM_ARRAY_EXTENDED", "enum")
        elif vo >= vu:
            ctx.add("ENUM_ARRAY_NARROWED", "enum")
        else:
            ctx.add("ENUM_ARRAY_CHANGED", "enum")


def _values(values: Any) -> set[str]:
    if not isinstance(values, list):
        raise InvalidSchemaError(f"enum must be an array, got {values!r}.")
    return {canonical(v) for v in values}


def _const(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    # ConstSchemaDiff: any other value is a changed one-value enum
    if canonical(o["const"]) != canonical(u["const"]):
        ctx.add("ENUM_ARRAY_CHANGED", "const")


def _not(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    # NotSchemaDiff: the update excludes less when its excluded schema reads the original's
    with ctx.at("not"):
        sub = ctx.reversed()
        _compare(sub, u["not"], o["not"])
        ctx.add("NOT_TYPE_NARROWED" if sub.compatible else "NOT_TYPE_EXTENDED")


def _criteria_change(co: str, cu: str, so: list[Any], su: list[Any]) -> str | None:
    # CombinedSchemaDiff.compareCriteria
    if co == cu:
        return None
    if (
        cu == "anyOf"
        or (len(so) == 1 and len(su) == 1)
        or (len(so) == 1 and cu == "oneOf")
        or (len(su) == 1 and co == "allOf")
    ):
        return "COMBINED_TYPE_EXTENDED"
    return "COMBINED_TYPE_CHANGED"


def _combined_diff(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    co, so = combined(ctx.o, o)
    cu, su = combined(ctx.u, u)
    change = _criteria_change(co, cu, so, su)
    if change is not None:
        ctx.add(change)
    if change == "COMBINED_TYPE_CHANGED":
        return
    so = list({canonical(s): s for s in so}.values())
    su = list({canonical(s): s for s in su}.values())
    if len(so) < len(su):
        ctx.add("PRODUCT_TYPE_EXTENDED" if cu == "allOf" else "SUM_TYPE_EXTENDED")
    elif len(so) > len(su):
        ctx.add("SUM_TYPE_NARROWED" if co in ("anyOf", "oneOf") else "PRODUCT_TYPE_NARROWED")
    edges: dict[int, dict[int, list[Difference]]] = {}
    for i, a in enumerate(so):
        with ctx.at(co, str(i)):
            for j, b in enumerate(su):
                sub = _try(ctx, a, b)
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


# ---- content models: what an object or array allows beyond what it names ----------


@dataclass(frozen=True, slots=True)
class _Content:
    """``additional*`` / ``unevaluated*`` of one object or array, as Confluent reads them.

    ``permits`` is False for ``additional*: false``; ``schema`` is the schema of
    additional members (None when absent or ``true``); ``uneval`` the raw
    ``unevaluated*`` value (modern drafts only; None when absent).
    """

    permits: bool
    schema: Any
    uneval: Any

    @property
    def is_open(self) -> bool:
        return self.permits and self.schema is None and (self.uneval is None or _empty(self.uneval))

    def partial(self) -> Any:
        """The schema extra members must match, when the model is partially open."""
        if self.schema is not None:
            return self.schema
        if self.permits and self.uneval is not None and self.uneval is not False:
            return None if _empty(self.uneval) else self.uneval
        return None


def _empty(s: Any) -> bool:
    return s is True or (isinstance(s, dict) and not any(k not in _IGNORED for k in s))


_IGNORED = frozenset({"title", "description", "$comment", "examples", "default"})


def _extra(value: Any) -> tuple[bool, Any]:
    """(permits, schema) of an ``additionalProperties`` / ``additionalItems`` value."""
    if value is False:
        return False, None
    if value is None or value is True:
        return True, None
    return True, value


def _compare_extra(ctx: _Ctx, o: _Content, u: _Content, name: str, noun: str) -> None:
    # ObjectSchemaDiff.compareAdditionalProperties / ArraySchemaDiff.compareAdditionalItems
    with ctx.at(name):
        if o.permits != u.permits:
            ctx.add(f"ADDITIONAL_{noun}_ADDED" if u.permits else f"ADDITIONAL_{noun}_REMOVED")
        elif o.schema is None and u.schema is not None:
            ctx.add(f"ADDITIONAL_{noun}_NARROWED")
        elif u.schema is None and o.schema is not None:
            ctx.add(f"ADDITIONAL_{noun}_EXTENDED")
        else:
            _compare(ctx, o.schema, u.schema)


def _compare_unevaluated(ctx: _Ctx, o: Any, u: Any, name: str, noun: str) -> None:
    # compareUnevaluatedProperties / compareUnevaluatedItems
    if o is None and u is None:
        return
    with ctx.at(name):
        if o is None:
            ctx.add(f"UNEVALUATED_{noun}_REMOVED" if u is False else f"UNEVALUATED_{noun}_NARROWED")
        elif u is None:
            ctx.add(f"UNEVALUATED_{noun}_ADDED" if o is False else f"UNEVALUATED_{noun}_EXTENDED")
        elif o is False and u is not False:
            ctx.add(f"UNEVALUATED_{noun}_ADDED")
        elif o is not False and u is False:
            ctx.add(f"UNEVALUATED_{noun}_REMOVED")
        elif _empty(o) and not _empty(u):
            ctx.add(f"UNEVALUATED_{noun}_NARROWED")
        elif not _empty(o) and _empty(u):
            ctx.add(f"UNEVALUATED_{noun}_EXTENDED")
        else:
            _compare(ctx, o, u)


def _member_removed(ctx: _Ctx, was: Any, update: _Content, partial: Any, noun: str) -> None:
    """A property / tuple item the original had and the update lacks (at ctx's path)."""
    if update.is_open:
        ctx.add(f"{noun}_REMOVED_FROM_OPEN_CONTENT_MODEL")
    elif partial is not None:
        sub = _try(ctx, was, partial)
        ctx.diffs.extend(sub.diffs)
        covered = "IS_COVERED" if sub.compatible else "NOT_COVERED"
        ctx.add(f"{noun}_REMOVED_{covered}_BY_PARTIALLY_OPEN_CONTENT_MODEL")
    elif was is False:
        ctx.add(f"{noun}_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL")
    else:
        ctx.add(f"{noun}_REMOVED_FROM_CLOSED_CONTENT_MODEL")


def _covered(ctx: _Ctx, partial: Any, now: Any, noun: str) -> None:
    sub = _try(ctx, partial, now)
    ctx.diffs.extend(sub.diffs)
    covered = "IS_COVERED" if sub.compatible else "NOT_COVERED"
    ctx.add(f"{noun}_ADDED_{covered}_BY_PARTIALLY_OPEN_CONTENT_MODEL")


# ---- objects -------------------------------------------------------------------------


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


def _object_content(doc: Doc, s: dict[str, Any]) -> _Content:
    permits, schema = _extra(s.get("additionalProperties"))
    uneval = s.get("unevaluatedProperties") if doc.modern else None
    return _Content(permits, schema, uneval)


def _property_partial(s: dict[str, Any], content: _Content, name: str) -> Any:
    for pattern, schema in (s.get("patternProperties") or {}).items():
        if re.search(pattern, name):
            return schema
    return content.partial()


def _has_default(doc: Doc, s: Any) -> bool:
    s = resolve(doc, s)
    return isinstance(s, dict) and "default" in s


def _dependencies(doc: Doc, s: dict[str, Any]) -> tuple[dict[str, set[str]], dict[str, Any]]:
    """(property dependencies, schema dependencies) of an object schema."""
    if doc.modern:
        arrays = s.get("dependentRequired") or {}
        schemas = s.get("dependentSchemas") or {}
    else:
        deps = s.get("dependencies") or {}
        if not isinstance(deps, dict):
            raise InvalidSchemaError(f"dependencies must be an object, got {deps!r}.")
        arrays = {k: v for k, v in deps.items() if isinstance(v, list)}
        schemas = {k: v for k, v in deps.items() if not isinstance(v, list)}
    if not isinstance(arrays, dict) or not isinstance(schemas, dict):
        raise InvalidSchemaError("dependentRequired and dependentSchemas must be objects.")
    return {k: set(v) for k, v in arrays.items()}, schemas


def _compare_dependencies(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    # ObjectSchemaDiff.compareDependencies: array ones by set inclusion, schema ones by diff
    ao, so = _dependencies(ctx.o, o)
    au, su = _dependencies(ctx.u, u)
    with ctx.at("dependencies"):
        for name in [*ao, *(n for n in au if n not in ao)]:
            was, now = ao.get(name), au.get(name)
            if now is None:
                ctx.add("DEPENDENCY_ARRAY_REMOVED", name)
            elif was is None:
                ctx.add("DEPENDENCY_ARRAY_ADDED", name)
            elif was != now:
                if now >= was:
                    ctx.add("DEPENDENCY_ARRAY_EXTENDED", name)
                elif was >= now:
                    ctx.add("DEPENDENCY_ARRAY_NARROWED", name)
                else:
                    ctx.add("DEPENDENCY_ARRAY_CHANGED", name)
        for name in [*so, *(n for n in su if n not in so)]:
            if name not in su:
                ctx.add("DEPENDENCY_SCHEMA_REMOVED", name)
            elif name not in so:
                ctx.add("DEPENDENCY_SCHEMA_ADDED", name)
            else:
                with ctx.at(name):
                    _compare(ctx, so[name], su[name])


def _object(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    po, pu = _props(o), _props(u)
    ro, ru = _required(o), _required(u)
    co, cu = _object_content(ctx.o, o), _object_content(ctx.u, u)
    for name in po:
        if name in pu:
            was, now = name in ro, name in ru
            if was and not now:
                ctx.add("REQUIRED_ATTRIBUTE_REMOVED", "required", name)
            elif now and not was:
                with_default = _has_default(ctx.u, pu[name])
                change = "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED" if with_default else None
                ctx.add(change or "REQUIRED_ATTRIBUTE_ADDED", "required", name)
    for name in [*po, *(n for n in pu if n not in po)]:
        with ctx.at("properties", name):
            if name not in pu:
                _member_removed(ctx, po[name], cu, _property_partial(u, cu, name), "PROPERTY")
            elif name not in po:
                _property_added(ctx, o, co, pu[name], name in ru, name)
            else:
                _compare(ctx, po[name], pu[name])
    _compare_dependencies(ctx, o, u)
    _compare_extra(ctx, co, cu, "additionalProperties", "PROPERTIES")
    _compare_unevaluated(ctx, co.uneval, cu.uneval, "unevaluatedProperties", "PROPERTIES")
    _limits(ctx, o, u, "maxProperties", "MAX_PROPERTIES", True)
    _limits(ctx, o, u, "minProperties", "MIN_PROPERTIES", False)


def _property_added(
    ctx: _Ctx, o: dict[str, Any], content: _Content, now: Any, required: bool, name: str
) -> None:
    with_default = _has_default(ctx.u, now)
    if content.is_open:
        if kind(ctx.u, now) == "empty":
            ctx.add("PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL")
        elif required:
            ctx.add(
                "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL"
                if with_default
                else "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
            )
        else:
            ctx.add("OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")
        return
    partial = _property_partial(o, content, name)
    if partial is not None:
        _covered(ctx, partial, now, "PROPERTY")
    if required:
        ctx.add(
            "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL"
            if with_default
            else "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
        )
    else:
        ctx.add("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")


# ---- arrays --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Items:
    every: Any  # the schema of every item (``items`` as one schema), None when absent
    tuple: list[Any]  # the positional schemas (``items`` array, or ``prefixItems``)
    content: _Content


def _items(doc: Doc, s: dict[str, Any]) -> _Items:
    items = s.get("items")
    if doc.modern:
        prefix = s.get("prefixItems") or []
        if not isinstance(prefix, list):
            raise InvalidSchemaError(f"prefixItems must be an array of schemas, got {prefix!r}.")
        permits, schema = _extra(items)  # `items: false` closes the array
        every = None
        if prefix:
            every = None
        elif schema is not None:
            every, schema = schema, None
        return _Items(every, prefix, _Content(permits, schema, s.get("unevaluatedItems")))
    permits, schema = _extra(s.get("additionalItems"))
    if isinstance(items, list):
        return _Items(None, items, _Content(permits, schema, None))
    return _Items(items, [], _Content(permits, schema, None))


def _array(ctx: _Ctx, o: dict[str, Any], u: dict[str, Any]) -> None:
    io, iu = _items(ctx.o, o), _items(ctx.u, u)
    with ctx.at("items"):
        _compare(ctx, io.every, iu.every)
    for i in range(max(len(io.tuple), len(iu.tuple))):
        with ctx.at("items", str(i)):
            if i < len(io.tuple) and i < len(iu.tuple):
                _compare(ctx, io.tuple[i], iu.tuple[i])
            elif i < len(io.tuple):
                _member_removed(ctx, io.tuple[i], iu.content, iu.content.partial(), "ITEM")
            elif io.content.is_open:
                empty = kind(ctx.u, iu.tuple[i]) == "empty"
                ctx.add(
                    "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                    if empty
                    else "ITEM_ADDED_TO_OPEN_CONTENT_MODEL"
                )
            elif io.content.partial() is not None:
                _covered(ctx, io.content.partial(), iu.tuple[i], "ITEM")
            else:
                ctx.add("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL")
    _compare_extra(ctx, io.content, iu.content, "additionalItems", "ITEMS")
    _compare_unevaluated(ctx, io.content.uneval, iu.content.uneval, "unevaluatedItems", "ITEMS")
    _limits(ctx, o, u, "maxItems", "MAX_ITEMS", True)
    _limits(ctx, o, u, "minItems", "MIN_ITEMS", False)
    uo, uu = bool(o.get("uniqueItems")), bool(u.get("uniqueItems"))
    if uo != uu:
        ctx.add("UNIQUE_ITEMS_REMOVED" if uo else "UNIQUE_ITEMS_ADDED", "uniqueItems")
    _limits(ctx, o, u, "maxContains", "MAX_CONTAINS", True)
    _limits(ctx, _contains(ctx.o, o), _contains(ctx.u, u), "minContains", "MIN_CONTAINS", False)


def _contains(doc: Doc, s: dict[str, Any]) -> dict[str, Any]:
    # json-sKema gives `contains` its default minContains of 1; older drafts read the raw value
    if doc.modern and "contains" in s and "minContains" not in s:
        return {**s, "minContains": 1}
    return s


_COMPARERS: dict[str, Callable[[_Ctx, dict[str, Any], dict[str, Any]], None]] = {
    "string": _string,
    "number": _number,
    "enum": _enum,
    "const": _const,
    "combined": _combined_diff,
    "not": _not,
    "object": _object,
    "array": _array,
}


def json_differences(
    original: Any, update: Any, compatible_changes: frozenset[str] = COMPATIBLE_CHANGES
) -> list[Difference]:
    """Every difference from ``original`` to ``update``, compatible ones included.

    ``compatible_changes`` decides which change names are compatible (STRICT by
    default; :data:`kes.schemas.differences.LENIENT_COMPATIBLE_CHANGES` for LENIENT);
    it also steers the diff itself, as in Confluent (which alternatives match).
    """
    ctx = _Ctx(Doc(original), Doc(update), compatible_changes)
    _compare(ctx, original, update)
    return ctx.diffs
