"""Avro schema-resolution differences, as Avro's own ``SchemaCompatibility`` finds them
(the reader resolves data written with the writer; see kes.schemas.compatibility)."""

from __future__ import annotations

from typing import Any

from kes.schemas.differences import Difference, canonical
from kes.schemas.errors import InvalidSchemaError

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


class _Names(dict[str, Any]):
    """Named types by full name (and by short name, first one wins), with each definition's
    full name by identity."""

    def __init__(self) -> None:
        super().__init__()
        self.full: dict[int, str] = {}

    def find(self, name: str) -> Any:
        return self.get(name, self.get(name.rsplit(".", 1)[-1]))

    def full_name(self, schema: dict[str, Any]) -> str:
        return self.full.get(id(schema), str(schema.get("name", "")))


def _avro_names(schema: Any, names: _Names, namespace: str = "") -> None:
    if isinstance(schema, list):
        for s in schema:
            _avro_names(s, names, namespace)
    elif isinstance(schema, dict):
        t = schema.get("type")
        if t in ("record", "enum", "fixed", "error"):
            name = schema.get("name")
            if not isinstance(name, str):
                raise InvalidSchemaError(f"Avro {t} needs a string 'name': {canonical(schema)}.")
            ns = name.rsplit(".", 1)[0] if "." in name else str(schema.get("namespace", namespace))
            full = name if "." in name or not ns else f"{ns}.{name}"
            names.full[id(schema)] = full
            names.setdefault(full, schema)
            names.setdefault(full.rsplit(".", 1)[-1], schema)
            for f in schema.get("fields", []) if t in ("record", "error") else []:
                if not isinstance(f, dict) or "name" not in f or "type" not in f:
                    raise InvalidSchemaError(f"Avro field needs 'name' and 'type': {f!r}.")
                _avro_names(f["type"], names, ns)
        elif t == "array":
            _avro_names(schema.get("items"), names, namespace)
        elif t == "map":
            _avro_names(schema.get("values"), names, namespace)
        elif isinstance(t, dict | list):
            _avro_names(t, names, namespace)


_AVRO_COMPLEX = frozenset({"record", "error", "enum", "fixed", "array", "map"})


def _avro_deref(schema: Any, names: _Names) -> Any:
    """A primitive's name, a union (list) or a complex type's dict; named refs followed.
    A logical type is its base type here, as in Avro's SchemaCompatibility."""
    for _ in range(64):
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            found = names.find(schema)
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
    wn, rn = _Names(), _Names()
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
            out.append(Difference(path, "MISSING_UNION_BRANCH", False))
            return
        if tw != tr:
            if (tw, tr) not in _PROMOTIONS:
                out.append(Difference(path, "TYPE_MISMATCH", False))
            return
        key = (id(w), id(r))
        if key in seen:
            return
        seen.add(key)
        if tw in ("record", "enum", "fixed") and not _same_name(wn.full_name(w), r, rn):
            out.append(Difference(path, "NAME_MISMATCH", False))
        if tw == "record":
            wfields = {f["name"]: f for f in w.get("fields", [])}
            for f in r.get("fields", []):
                match = wfields.get(f["name"])
                if match is None:
                    match = next((wfields[a] for a in f.get("aliases", []) if a in wfields), None)
                fpath = f"{path}/fields/{f['name']}"
                if match is None:
                    if "default" not in f:
                        out.append(Difference(fpath, "READER_FIELD_MISSING_DEFAULT_VALUE", False))
                else:
                    check(match["type"], f["type"], fpath)
        elif tw == "enum":
            missing = set(w.get("symbols", [])) - set(r.get("symbols", []))
            if missing and "default" not in r:
                out.append(Difference(f"{path}/symbols", "MISSING_ENUM_SYMBOLS", False))
        elif tw == "fixed":
            if w.get("size") != r.get("size"):
                out.append(Difference(f"{path}/size", "FIXED_SIZE_MISMATCH", False))
        elif tw == "array":
            check(w.get("items"), r.get("items"), f"{path}/items")
        elif tw == "map":
            check(w.get("values"), r.get("values"), f"{path}/values")

    check(writer, reader, "#")
    return out


def _same_name(writer_full: str, reader: dict[str, Any], names: _Names) -> bool:
    """Avro's schemaNameEquals: equal unqualified names, or a reader alias naming the
    writer's full name (aliases without a dot are in the reader's namespace)."""
    reader_full = names.full_name(reader)
    if writer_full.rsplit(".", 1)[-1] == reader_full.rsplit(".", 1)[-1]:
        return True
    namespace = reader_full.rsplit(".", 1)[0] if "." in reader_full else ""
    aliases = reader.get("aliases") or []
    qualified = {a if "." in a or not namespace else f"{namespace}.{a}" for a in aliases}
    return writer_full in qualified or writer_full in aliases


_AVRO_WHY = {
    "TYPE_MISMATCH": "the types differ and Avro cannot promote one to the other",
    "MISSING_UNION_BRANCH": "the reader's union has no branch for the writer's type",
    "READER_FIELD_MISSING_DEFAULT_VALUE": (
        "the reader has a field the writer lacks, with no default; give it a default"
    ),
    "MISSING_ENUM_SYMBOLS": "the writer has enum symbols the reader lacks (and no default)",
    "NAME_MISMATCH": ("the named types differ in name and no reader alias names the writer's type"),
    "FIXED_SIZE_MISMATCH": "the fixed sizes differ",
}


def avro_why(change: str) -> str:
    """Why an Avro incompatibility breaks the reader."""
    return _AVRO_WHY.get(change, change.lower().replace("_", " "))
