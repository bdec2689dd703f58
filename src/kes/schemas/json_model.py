"""How Confluent's JSON Schema provider reads a schema document, for the diff to compare.

Confluent loads drafts 4, 6 and 7 with the everit library and drafts 2019-09 and
2020-12 (``$schema`` naming them) with json-sKema, translated to the same model. What
the diff sees of a document follows from that:

* A schema object holding several *facets* (``enum``, ``allOf``/``anyOf``/``oneOf``,
  ``not``, ``const``, then the typed keywords) is an ``allOf`` of those facets, in that
  order: ``{"type": "string", "enum": ["a"]}`` is ``allOf[enum, string]``, so dropping
  its ``enum`` narrows a product type (compatible) instead of changing the type.
* Without ``type``, the keywords name the kind: ``properties`` an object, ``items`` an
  array, ``minLength`` a string, ``minimum`` a number.
* Modern drafts only: ``prefixItems`` is the tuple and ``items`` beside it the schema
  of the extra items (``additionalItems`` of older drafts); ``unevaluatedItems`` and
  ``unevaluatedProperties`` are content models; ``dependentRequired`` and
  ``dependentSchemas`` are the ``dependencies`` of older drafts. Older drafts ignore
  these keywords, as Confluent does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kes.schemas.errors import InvalidSchemaError

__all__ = ["ANNOTATIONS", "COMBINERS", "Doc", "combined", "facets", "kind", "resolve"]

ANNOTATIONS = frozenset(
    {"title", "description", "default", "$id", "id", "$schema", "examples", "$comment", "format"}
)
COMBINERS = ("allOf", "anyOf", "oneOf")
_MODERN_DRAFTS = ("2019-09", "2020-12")
_FACET_KEYS = frozenset({"enum", "const", "not", *COMBINERS})
_ARRAY_KEYS = ("items", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains")
_MODERN_ARRAY_KEYS = ("prefixItems", "unevaluatedItems")
_OBJECT_KEYS = (
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "minProperties",
    "maxProperties",
    "dependencies",
    "propertyNames",
)
_MODERN_OBJECT_KEYS = ("dependentRequired", "dependentSchemas", "unevaluatedProperties")
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRING_KEYS = ("minLength", "maxLength", "pattern")
_TYPES = {
    "object": "object",
    "array": "array",
    "string": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "null": "null",
}


@dataclass(frozen=True, slots=True)
class Doc:
    """A whole schema document: the root local ``$ref``s resolve against, and its draft."""

    root: Any

    @property
    def modern(self) -> bool:
        """Draft 2019-09 or 2020-12, as ``$schema`` says (Confluent's default is draft 7)."""
        declared = self.root.get("$schema") if isinstance(self.root, dict) else None
        return isinstance(declared, str) and any(d in declared for d in _MODERN_DRAFTS)


def resolve(doc: Doc, schema: Any) -> Any:
    """Follow local ``$ref``s (``#/...``) to the schema they name."""
    hops = 0
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise InvalidSchemaError(
                f"$ref {ref!r} is not a local reference (#/...) and no schema reference "
                "names it; register the referenced schema and pass it in `references`, "
                "or put it under $defs."
            )
        target: Any = doc.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise InvalidSchemaError(f"$ref {ref!r} points at nothing in the schema.")
        siblings = {k: v for k, v in schema.items() if k != "$ref" and k not in ANNOTATIONS}
        schema = {**target, **siblings} if siblings and isinstance(target, dict) else target
        hops += 1
        if hops > 64:
            raise InvalidSchemaError(f"$ref {ref!r} loops without reaching a schema.")
    return schema


def _type_kind(t: Any) -> str:
    if t not in _TYPES:
        raise InvalidSchemaError(
            f"unknown JSON Schema type {t!r}; use one of {', '.join(sorted(_TYPES))}."
        )
    return _TYPES[t]


def _present(doc: Doc, s: dict[str, Any], key: str) -> bool:
    if key not in s:
        return False
    # json-sKema makes nothing of an empty `properties` / `required` (no object facet)
    return not (doc.modern and key in ("properties", "required") and not s[key])


def facets(doc: Doc, s: Any) -> list[tuple[str, Any]]:
    """The (kind, schema) facets of ``s``, in Confluent's order; booleans are one facet."""
    if s is True:
        return [("empty", s)]
    if s is False:
        return [("false", s)]
    if not isinstance(s, dict):
        raise InvalidSchemaError(f"a schema must be an object or a boolean, got {s!r}.")
    out: list[tuple[str, Any]] = []
    if "enum" in s:
        out.append(("enum", {"enum": s["enum"]}))
    out.extend(("combined", {k: s[k]}) for k in COMBINERS if k in s)
    if "not" in s:
        out.append(("not", {"not": s["not"]}))
    if "const" in s:
        out.append(("const", {"const": s["const"]}))
    rest = {k: v for k, v in s.items() if k not in _FACET_KEYS and k not in ANNOTATIONS}
    t = s.get("type")
    if isinstance(t, list) and len(t) != 1:
        if not t:
            raise InvalidSchemaError("type must not be an empty array.")
        for one in t:
            _type_kind(one)
        out.append(("combined", {"anyOf": [{**rest, "type": one} for one in t]}))
    elif t is not None:
        out.append((_type_kind(t[0] if isinstance(t, list) else t), rest))
    else:
        modern = doc.modern
        for name, keys, extra in (
            ("array", _ARRAY_KEYS, _MODERN_ARRAY_KEYS),
            ("object", _OBJECT_KEYS, _MODERN_OBJECT_KEYS),
            ("number", _NUMBER_KEYS, ()),
            ("string", _STRING_KEYS, ()),
        ):
            if any(_present(doc, s, k) for k in (*keys, *(extra if modern else ()))):
                out.append((name, rest))
    if len(out) == 1 and out[0][0] not in ("combined",):
        return [(out[0][0], s)]  # one facet: the schema itself, annotations included
    return out


def kind(doc: Doc, s: Any) -> str:
    """``empty``, ``false``, ``object``, ``array``, ``string``, ``number``, ``boolean``,
    ``null``, ``enum``, ``const``, ``not`` or ``combined`` (several facets included)."""
    found = facets(doc, s)
    if not found:
        return "empty"
    return found[0][0] if len(found) == 1 else "combined"


def combined(doc: Doc, s: dict[str, Any]) -> tuple[str, list[Any]]:
    """The criterion and subschemas of a ``combined`` schema."""
    found = facets(doc, s)
    if len(found) > 1:
        return "allOf", [schema for _, schema in found]
    part = found[0][1]
    for k in COMBINERS:
        if k in part:
            subs = part[k]
            if not isinstance(subs, list) or not subs:
                raise InvalidSchemaError(f"{k} must be a non-empty array of schemas.")
            return k, subs
    raise AssertionError(f"not a combined schema: {s!r}")
