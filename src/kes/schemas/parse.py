"""Schema documents: parse and check them, bundle their references, canonical text.

A schema with *references* (Confluent's ``references``: another subject's version, by
the name the schema uses for it) is checked and compared as one self-contained
document, the referenced schemas bundled in:

* JSON Schema: a ``$ref`` to ``address.json`` (or ``address.json#/$defs/X``) points
  into ``$defs`` entries that hold the referenced documents, whose own local ``$ref``s
  are rewritten to stay inside them.
* Avro: a named type the schema uses but does not define (``com.acme.Address``) is
  replaced, at its first use, by its definition from the referenced schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from kes.schemas.differences import canonical
from kes.schemas.errors import InvalidSchemaError

__all__ = ["SCHEMA_TYPES", "bundle", "canonical", "canonical_text", "parse_schema"]

SCHEMA_TYPES = ("JSON", "AVRO", "PROTOBUF")
_BUNDLED = "kes:ref:"  # $defs key prefix of a bundled JSON Schema reference
_AVRO_NAMED = frozenset({"record", "error", "enum", "fixed"})
_AVRO_PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)

SchemaInput = str | dict[str, Any] | list[Any] | bool


def canonical_text(parsed: Any, schema_type: str) -> str:
    return parsed if schema_type == "PROTOBUF" else canonical(parsed)


def schema_kind(schema_type: str | None) -> str:
    kind = (schema_type or "JSON").upper()
    if kind not in SCHEMA_TYPES:
        raise InvalidSchemaError(
            f"unknown schemaType {schema_type!r}; use JSON (default in kes), AVRO or PROTOBUF."
        )
    return kind


def load(schema: SchemaInput, kind: str) -> Any:
    """The parsed document (PROTOBUF: the text), unchecked."""
    if kind == "PROTOBUF":
        if not isinstance(schema, str) or ("syntax" not in schema and "message" not in schema):
            raise InvalidSchemaError("a PROTOBUF schema must be .proto text with a message.")
        return schema
    if not isinstance(schema, str):
        return schema
    try:
        return json.loads(schema)
    except json.JSONDecodeError as exc:
        raise InvalidSchemaError(
            f"the {kind} schema is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}."
        ) from None


def parse_schema(
    schema: SchemaInput, schema_type: str, references: Mapping[str, Any] | None = None
) -> Any:
    """Parse and check a schema document; raises InvalidSchemaError naming the problem.

    ``references`` maps each name the schema uses for another schema to that schema,
    parsed (transitive references included). The result is the self-contained document.
    """
    kind = schema_kind(schema_type)
    parsed = bundle(load(schema, kind), kind, references or {})
    if kind == "JSON":
        from kes.schemas.json_diff import json_differences

        if not isinstance(parsed, dict | bool):
            raise InvalidSchemaError(
                f"a JSON Schema must be an object or a boolean, got {type(parsed).__name__}."
            )
        json_differences(parsed, parsed)  # walks every reachable node: bad types, refs
        _compile_json(parsed)
    elif kind == "AVRO":
        from kes.schemas.avro_diff import avro_differences

        if not isinstance(parsed, dict | list | str):
            raise InvalidSchemaError(f"an Avro schema must be an object, array or name: {parsed}")
        avro_differences(parsed, parsed)  # every named type defined, fields well formed
    return parsed


def _compile_json(schema: Any) -> None:
    import fastjsonschema

    try:
        fastjsonschema.compile(schema)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise InvalidSchemaError(f"the JSON Schema is invalid: {exc}.") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidSchemaError(f"the JSON Schema is invalid: {exc!r}.") from None


def bundle(parsed: Any, kind: str, references: Mapping[str, Any]) -> Any:
    """``parsed`` with its references bundled in (unchanged without references)."""
    if not references or kind == "PROTOBUF":
        return parsed
    if kind == "JSON":
        return _bundle_json(parsed, references)
    return _bundle_avro(parsed, references)


def _bundle_json(parsed: Any, references: Mapping[str, Any]) -> Any:
    if not isinstance(parsed, dict):
        return parsed
    slots = {name: f"{_BUNDLED}{i}" for i, name in enumerate(references)}

    def rewrite(node: Any, local: str) -> Any:
        if isinstance(node, list):
            return [rewrite(n, local) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: rewrite(v, local) for k, v in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str):
            target, _, pointer = ref.partition("#")
            if not target:
                out["$ref"] = f"#{local}{pointer}" if local else ref
            elif target in slots:
                out["$ref"] = f"#/$defs/{slots[target]}{pointer}"
        return out

    root = rewrite(parsed, "")
    defs = dict(root.get("$defs") or {})
    for name, doc in references.items():
        defs[slots[name]] = rewrite(doc, f"/$defs/{slots[name]}")
    root["$defs"] = defs
    return root


def _bundle_avro(parsed: Any, references: Mapping[str, Any]) -> Any:
    defined: set[str] = set()
    definitions: dict[str, Any] = {}
    for doc in references.values():
        for name, definition in _avro_named(doc):
            definitions.setdefault(name, definition)

    def walk(node: Any, namespace: str) -> Any:
        if isinstance(node, str):
            full = node if "." in node or not namespace else f"{namespace}.{node}"
            for candidate in (full, node):
                if candidate in definitions and candidate not in defined:
                    defined.add(candidate)  # before the walk: a recursive type stays a name
                    inner = candidate.rsplit(".", 1)[0] if "." in candidate else ""
                    return walk(copy.deepcopy(definitions[candidate]), inner)
            return node
        if isinstance(node, list):
            return [walk(n, namespace) for n in node]
        if not isinstance(node, dict):
            return node
        t = node.get("type")
        ns = namespace
        if t in _AVRO_NAMED:
            name = str(node.get("name", ""))
            ns = name.rsplit(".", 1)[0] if "." in name else str(node.get("namespace", namespace))
            defined.add(name if "." in name or not ns else f"{ns}.{name}")
        out = dict(node)
        if t in ("record", "error"):
            out["fields"] = [
                {**f, "type": walk(f.get("type"), ns)} if isinstance(f, dict) else f
                for f in node.get("fields", [])
            ]
        elif t == "array":
            out["items"] = walk(node.get("items"), ns)
        elif t == "map":
            out["values"] = walk(node.get("values"), ns)
        elif isinstance(t, dict | list) or (isinstance(t, str) and t not in _AVRO_PRIMITIVES):
            out["type"] = walk(t, ns)
        return out

    return walk(parsed, "")


def _avro_named(doc: Any, namespace: str = "") -> list[tuple[str, Any]]:
    """(full name, definition) of each named type a parsed Avro schema defines."""
    out: list[tuple[str, Any]] = []
    if isinstance(doc, list):
        for d in doc:
            out.extend(_avro_named(d, namespace))
    elif isinstance(doc, dict):
        t = doc.get("type")
        if t in _AVRO_NAMED:
            name = str(doc.get("name", ""))
            ns = name.rsplit(".", 1)[0] if "." in name else str(doc.get("namespace", namespace))
            full = name if "." in name or not ns else f"{ns}.{name}"
            out.append((full, {**doc, "name": full} if full != name else doc))
            for f in doc.get("fields", []) if t in ("record", "error") else []:
                if isinstance(f, dict):
                    out.extend(_avro_named(f.get("type"), ns))
        elif t in ("array", "map"):
            out.extend(_avro_named(doc.get("items" if t == "array" else "values"), namespace))
        elif isinstance(t, dict | list):
            out.extend(_avro_named(t, namespace))
    return out
