"""JSON Schema differences, following Confluent's ``json-schema-provider`` diff."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kes.schemas.differences import Difference, canonical
from kes.schemas.errors import InvalidSchemaError

_ANNOTATIONS = frozenset(
    {"title", "description", "default", "$id", "id", "$schema", "examples", "$comment", "format"}
)
_COMBINERS = ("allOf", "anyOf", "oneOf")


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
            if canonical(o.get(attr)) != canonical(u.get(attr)):
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
        return {canonical(s["const"])}
    values = s["enum"]
    if not isinstance(values, list):
        raise InvalidSchemaError(f"enum must be an array, got {values!r}.")
    return {canonical(v) for v in values}


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
    if canonical(o.get("not")) == canonical(u.get("not")):
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
    so = list({canonical(s): s for s in so}.values())
    su = list({canonical(s): s for s in su}.values())
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
