"""Validators for the SIEM exports: OCSF 1.7.0 and ECS 8.x from the schemas themselves, and an
independent CEF reader.

OCSF: the schema is the OCSF 1.7.0 export that the ``pydantic-ocsf`` package ships
(``ocsf/schemas/v1_7_0.json``: the ocsf-schema repository's dictionary, classes and objects).
:func:`ocsf_json_schema` compiles one class of it into a JSON Schema — attributes merged along
``extends`` and with the dictionary, types and regexes from the dictionary's types, every
enum, ``required`` from the requirement, the class's constraints, no attribute the schema does
not define — and ``jsonschema_rs`` validates against it. Only the schema data is used from
that package: its generated pydantic models resolve some
enum annotations by name across classes (in 3.0.0 a finding's ``status_id`` is checked against
the data classification object's enum), so they are not a reliable judge. Two rules JSON
Schema cannot say are checked here: ``type_uid`` is ``class_uid * 100 + activity_id``, and a
caption sibling (``severity`` of ``severity_id`` …) names its id's caption.

ECS: a subset of ``generated/ecs/ecs_flat.yml`` (only the fields the export uses, see
``tests/data/ecs/README.md``) compiled the same way: field names, types, allowed values,
arrays, required fields, and each ``event.type`` expected by an ``event.category``.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

OCSF_VERSION = "1.7.0"
ECS_SUBSET = Path(__file__).resolve().parent / "data" / "ecs" / "ecs_flat_subset.yml"

PRIMITIVES = {"string_t": {"type": "string"}, "integer_t": {"type": "integer"},
              "long_t": {"type": "integer"}, "float_t": {"type": "number"},
              "boolean_t": {"type": "boolean"}, "json_t": {}}


@functools.cache
def ocsf_schema_export() -> dict[str, Any]:
    source = importlib.resources.files("ocsf") / "schemas" / "v1_7_0.json"
    schema: dict[str, Any] = json.loads(source.read_text())
    assert schema["version"] == OCSF_VERSION
    return schema


def _chain(table: dict[str, Any], name: str) -> list[dict[str, Any]]:
    found = []
    while name:
        entry = table[name]
        found.append(entry)
        name = entry.get("extends") or ""
        if name == "object" and name not in table:
            break
    return list(reversed(found))


def _merged(table: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """Attributes along ``extends`` merged with the dictionary (later levels win; enums
    are united, as the OCSF compiler does). Profiles' attributes ($include) are left out."""
    dictionary = ocsf_schema_export()["dictionary"]["attributes"]
    merged: dict[str, dict[str, Any]] = {}
    for level in _chain(table, name):
        for attr, spec in level.get("attributes", {}).items():
            if attr.startswith("$") or not isinstance(spec, dict):
                continue
            into = merged.setdefault(attr, {k: v for k, v in dictionary.get(attr, {}).items()})
            enum = {**into.get("enum", {}), **spec.get("enum", {})}
            into.update(spec)
            if enum:
                into["enum"] = enum
    return merged


def _constraints(table: dict[str, Any], name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for level in _chain(table, name):
        found.update(level.get("constraints") or {})
    return found


class _Compiler:
    def __init__(self) -> None:
        schema = ocsf_schema_export()
        self.objects: dict[str, Any] = schema["objects"]
        self.types: dict[str, Any] = schema["dictionary"]["types"]["attributes"]
        self.defs: dict[str, Any] = {}

    def primitive(self, type_name: str) -> dict[str, Any]:
        if type_name in PRIMITIVES:
            return dict(PRIMITIVES[type_name])
        spec = self.types[type_name]
        if type_name == "timestamp_t":
            return {"type": "integer"}
        base = self.primitive(spec["type"]) if spec.get("type") else {}
        if "regex" in spec:
            base["pattern"] = spec["regex"]
        if "max_len" in spec:
            base["maxLength"] = spec["max_len"]
        if "range" in spec:
            base["minimum"], base["maximum"] = spec["range"]
        return base

    def attribute(self, spec: dict[str, Any], owner: str = "", name: str = "") -> dict[str, Any]:
        if (owner, name) == ("observable", "type_id"):  # its enum is every observable kind
            spec = {**spec, "enum": {str(k): {} for k in observable_kinds()}}
        type_name = spec.get("object_type") if spec.get("type") == "object_t" else spec["type"]
        one = self.ref(type_name) if type_name in self.objects else self.primitive(type_name)
        if spec.get("enum"):
            one = {**one, "enum": sorted(int(k) if one.get("type") == "integer" else k
                                         for k in spec["enum"])}
        return {"type": "array", "items": one} if spec.get("is_array") else one

    def ref(self, name: str) -> dict[str, Any]:
        if name not in self.defs:
            self.defs[name] = {}  # placeholder first: objects refer to each other
            self.defs[name] = self.compile(self.objects, name)
        return {"$ref": f"#/$defs/{name}"}

    def compile(self, table: dict[str, Any], name: str) -> dict[str, Any]:
        attributes = _merged(table, name)
        if not attributes:
            return {"type": "object"}  # the free-form "object" (e.g. unmapped)
        body: dict[str, Any] = {
            "type": "object",
            "properties": {a: self.attribute(s, name, a) for a, s in attributes.items()},
            "required": sorted(a for a, s in attributes.items()
                               if s.get("requirement") == "required"),
            "additionalProperties": False,
        }
        rules = _constraints(table, name)
        checks = []
        if rules.get("at_least_one"):
            checks.append({"anyOf": [{"required": [a]} for a in rules["at_least_one"]]})
        if rules.get("just_one"):
            checks.append({"oneOf": [{"required": [a]} for a in rules["just_one"]]})
        if checks:
            body["allOf"] = checks
        return body


@functools.cache
def observable_kinds() -> dict[int, str]:
    """Observable type ids: OCSF derives them from every ``observable`` in the schema."""
    schema = ocsf_schema_export()
    dictionary = schema["dictionary"]
    kinds = {0: "Unknown", 99: "Other"}
    for name, spec in dictionary["types"]["attributes"].items():
        if "observable" in spec:
            kinds[spec["observable"]] = spec.get("caption", name)
    for name, spec in dictionary["attributes"].items():
        if "observable" in spec:
            kinds[spec["observable"]] = spec.get("caption", name)
    for table in (schema["objects"], schema["events"]):
        for name, entry in table.items():
            if "observable" in entry:
                kinds[entry["observable"]] = entry.get("caption", name)
            for attr, spec in entry.get("attributes", {}).items():
                if isinstance(spec, dict) and "observable" in spec:
                    kinds[spec["observable"]] = f"{name}.{attr}"
    return kinds


def class_uid_of(name: str) -> tuple[int, int]:
    """(category_uid, class_uid) of an event class, from the categories and class uids."""
    schema = ocsf_schema_export()
    events = schema["events"]
    category = next(e["category"] for e in reversed(_chain(events, name)) if e.get("category"))
    category_uid = schema["categories_meta"]["attributes"][category]["uid"]
    return category_uid, category_uid * 1000 + events[name]["uid"]


@functools.cache
def ocsf_json_schema(class_name: str) -> dict[str, Any]:
    compiler = _Compiler()
    events = ocsf_schema_export()["events"]
    body = compiler.compile(events, class_name)
    category_uid, class_uid = class_uid_of(class_name)
    props = body["properties"]
    props["category_uid"] = {"const": category_uid}
    props["class_uid"] = {"const": class_uid}
    activities = props["activity_id"]["enum"]
    body.setdefault("allOf", []).append({"anyOf": [
        {"properties": {"activity_id": {"const": a}, "type_uid": {"const": class_uid * 100 + a}}}
        for a in activities]})
    body["$defs"] = compiler.defs
    body["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return body


def _captions(class_name: str) -> dict[str, dict[str, str]]:
    """Each enum attribute of the class with a caption sibling: id → caption."""
    attributes = _merged(ocsf_schema_export()["events"], class_name)
    return {spec["sibling"]: {k: v.get("caption", "") for k, v in spec["enum"].items()}
            | {"_id": name}
            for name, spec in attributes.items()
            if spec.get("enum") and spec.get("sibling")
            and name not in ("class_uid", "category_uid")}  # checked against their tables


def ocsf_errors(document: dict[str, Any], class_name: str) -> list[str]:
    """Every reason ``document`` is not a valid OCSF ``class_name`` event (empty: valid)."""
    validator = jsonschema_rs.validator_for(ocsf_json_schema(class_name), validate_formats=True)
    errors = [f"{'/'.join(map(str, e.instance_path)) or '(top)'}: {e.message}"
              for e in validator.iter_errors(document)]
    if document.get("type_uid") != document.get("class_uid", 0) * 100 + \
            document.get("activity_id", 0):
        errors.append("type_uid is not class_uid * 100 + activity_id")
    for sibling, captions in _captions(class_name).items():
        id_name = captions.pop("_id")
        value = document.get(id_name)
        if sibling in document and value != 99 and captions.get(str(value)) != document[sibling]:
            errors.append(f"{sibling} {document[sibling]!r} is not the caption of "
                          f"{id_name} {value} ({captions.get(str(value))!r})")
    schema = ocsf_schema_export()
    category = schema["categories_meta"]["attributes"][
        next(e["category"] for e in reversed(_chain(schema["events"], class_name))
             if e.get("category"))]["caption"]
    for sibling, caption in (("class_name", schema["events"][class_name]["caption"]),
                             ("category_name", category)):
        if sibling in document and document[sibling] != caption:
            errors.append(f"{sibling} {document[sibling]!r} is not {caption!r}")
    return errors


# -- ECS -------------------------------------------------------------------------------------

ECS_TYPES = {
    "keyword": {"type": "string"}, "match_only_text": {"type": "string"},
    "wildcard": {"type": "string"}, "text": {"type": "string"},
    "long": {"type": "integer"}, "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date-time"},
    "ip": {"anyOf": [{"type": "string", "format": "ipv4"},
                     {"type": "string", "format": "ipv6"}]},
}


@functools.cache
def ecs_fields() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ECS_SUBSET.read_text())
    return loaded


def _ecs_field(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["type"] == "object":
        leaf = ECS_TYPES[spec.get("object_type", "keyword")]
        one: dict[str, Any] = {"type": "object", "additionalProperties": leaf,
                               "propertyNames": {"pattern": r"^[^.]+$"}}
    else:
        one = dict(ECS_TYPES[spec["type"]])
    if spec.get("allowed_values"):
        one["enum"] = [v["name"] for v in spec["allowed_values"]]
    if "array" in (spec.get("normalize") or []):
        return {"anyOf": [one, {"type": "array", "items": one}]}
    return one


@functools.cache
def ecs_json_schema() -> dict[str, Any]:
    """Nested objects, as documents are indexed: ``event.kind`` is ``{"event": {"kind": …}}``."""
    root: dict[str, Any] = {"type": "object", "properties": {}, "required": [],
                            "additionalProperties": False}
    for flat, spec in ecs_fields().items():
        node = root
        parts = flat.split(".")
        for part in parts[:-1]:
            node = node["properties"].setdefault(part, {
                "type": "object", "properties": {}, "required": [],
                "additionalProperties": False})
        node["properties"][parts[-1]] = _ecs_field(spec)
        if spec.get("required"):
            node["required"].append(parts[-1])
            # a required nested field makes its parent object required too
            walk = root
            for part in parts[:-1]:
                if part not in walk["required"]:
                    walk["required"].append(part)
                walk = walk["properties"][part]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **root}


def ecs_errors(document: dict[str, Any]) -> list[str]:
    """Every reason ``document`` is not valid ECS (empty: valid)."""
    validator = jsonschema_rs.validator_for(ecs_json_schema(), validate_formats=True)
    errors = [f"{'.'.join(map(str, e.instance_path)) or '(top)'}: {e.message}"
              for e in validator.iter_errors(document)]
    event = document.get("event", {})
    categories = event.get("category", [])
    kinds = event.get("type", [])
    categories = [categories] if isinstance(categories, str) else categories
    kinds = [kinds] if isinstance(kinds, str) else kinds
    expected = {v["name"]: set(v.get("expected_event_types", []))
                for v in ecs_fields()["event.category"]["allowed_values"]}
    for kind in kinds:
        if categories and not any(kind in expected.get(c, set()) for c in categories):
            errors.append(f"event.type {kind!r} is not expected for event.category "
                          f"{categories}")
    return errors


# -- CEF -----------------------------------------------------------------------------------

def parse_cef(text: str) -> tuple[list[str], dict[str, str]]:
    """An independent CEF reader: split the header on unescaped pipes, then the extension on
    spaces before an unescaped ``key=``; undo the escapes."""
    assert text.startswith("CEF:0|")
    fields, current, i, body = [], "", len("CEF:0|"), text
    while len(fields) < 6:
        ch = body[i]
        if ch == "\\":
            current += body[i + 1]
            i += 2
            continue
        if ch == "|":
            fields.append(current)
            current = ""
        else:
            current += ch
        i += 1
    extension = body[i:]
    starts = [m.start() for m in re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", extension)
              if not _escaped(extension, m.end() - 1)]
    pairs = {}
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(extension)
        chunk = extension[start:end].lstrip(" ")
        key, _, value = chunk.partition("=")
        pairs[key] = _unescape(value)
    return fields, pairs


def _escaped(text: str, at: int) -> bool:
    slashes = 0
    while at - 1 - slashes >= 0 and text[at - 1 - slashes] == "\\":
        slashes += 1
    return slashes % 2 == 1


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), value)
