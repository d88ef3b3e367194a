"""The CRD: generated from spec.py, structural, installable, bounded for CEL, and in agreement with the model.

No API server here, so admission is emulated: prune nulls, refuse unknown fields (kubectl's strict field
validation), apply defaults, check the OpenAPI schema (jsonschema, with RE2 for patterns as Go does), then
evaluate the CEL rules with cel-python, with Kubernetes' isCIDR()/isIP() written in Python.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import jsonschema.validators
import kubernetes_validate
import pytest
import re2  # type: ignore[import-untyped]  # google-re2: cel-python's own dependency
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bucketwarden import crd as crd_module
from bucketwarden.crd import (
    KOPF_STATUS_SCHEMA,
    MIN_KUBERNETES_VERSION,
    MIN_KUBERNETES_VERSION_ANNOTATION,
    build_crd,
    render_crd_yaml,
)
from bucketwarden.spec import ProtectedBucket, ProtectedBucketSpec, ProtectedBucketStatus, validate_cidr
from tests.shared import REPO_ROOT

Schema = dict[str, Any]

CRD_FILE = REPO_ROOT / "crds" / "bucketwarden.io_protectedbuckets.yaml"
CHART_CRD_FILE = REPO_ROOT / "charts" / "bucketwarden" / "crds" / "bucketwarden.io_protectedbuckets.yaml"
EXAMPLE_FILES = sorted((REPO_ROOT / "examples" / "protectedbuckets").glob("*.yaml"))
INVALID_FILES = sorted((REPO_ROOT / "tests" / "fixtures" / "invalid").glob("*.yaml"))

CRD = build_crd()
OPENAPI: Schema = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

# The per-expression and per-CRD limits of apiextensions-apiserver's estimated CEL cost.
PER_RULE_COST_LIMIT = 10_000_000
PER_CRD_COST_LIMIT = 100_000_000
# What the cost estimator assumes for an unbounded list or string: a maximal (3 MiB) request body.
MAX_REQUEST_BYTES = 3 * 1024 * 1024


def _path(segments: list[str | int]) -> str:
    text = ""
    for segment in segments:
        text += f"[{segment}]" if isinstance(segment, int) else f".{segment}"
    return text.lstrip(".")


# --- Kubernetes' CEL IP library, as k8s.io/apiserver/pkg/cel/library/{ip,cidr}.go define it --------------


def k8s_is_ip(text: str) -> bool:
    """isIP(): Go's netip.ParseAddr, refusing IPv6 zones and IPv4-mapped IPv6 addresses."""
    if "%" in text:
        return False
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None)


def k8s_is_cidr(text: str) -> bool:
    """isCIDR(): Go's netip.ParsePrefix (host bits allowed, decimal length without leading zeros)."""
    address, slash, bits = text.partition("/")
    if not slash or not re.fullmatch(r"0|[1-9][0-9]*", bits) or not k8s_is_ip(address):
        return False
    return int(bits) <= ipaddress.ip_address(address).max_prefixlen


# (text, isIP, isCIDR) as Kubernetes answers them.
K8S_IP_VERDICTS = [
    ("192.0.2.1", True, False),
    ("192.0.2.0/24", False, True),
    ("192.0.2.77/24", False, True),
    ("0.0.0.0/0", False, True),
    ("2001:db8::1", True, False),
    ("2001:db8::/32", False, True),
    ("::/0", False, True),
    ("::1.2.3.4", True, False),
    ("fe80::/10", False, True),
    ("::ffff:192.0.2.1", False, False),
    ("::ffff:192.0.2.0/120", False, False),
    ("fe80::1%eth0", False, False),
    ("192.0.2.0/33", False, False),
    ("2001:db8::/129", False, False),
    ("192.0.2.0/024", False, False),
    ("192.0.2.0/+24", False, False),
    ("192.0.2.0/255.255.255.0", False, False),
    ("192.0.2.0/", False, False),
    ("01.2.3.4", False, False),
    ("1.2.3", False, False),
    (" 192.0.2.1", False, False),
    ("", False, False),
]


# --- admission, emulated ------------------------------------------------------------------------------


def _prune_nulls(value: Any, node: Schema) -> Any:
    """The API server drops nulls from fields that are not nullable, before defaulting."""
    if isinstance(value, dict) and "properties" in node:
        props = node["properties"]
        return {
            k: _prune_nulls(v, props[k]) if k in props else v
            for k, v in value.items()
            if not (v is None and k in props and not props[k].get("nullable"))
        }
    if isinstance(value, list) and "items" in node:
        return [_prune_nulls(item, node["items"]) for item in value]
    return value


def _unknown_fields(value: Any, node: Schema, path: list[str | int]) -> Iterator[str]:
    if isinstance(value, dict) and "properties" in node:
        for key, sub in value.items():
            if key in node["properties"]:
                yield from _unknown_fields(sub, node["properties"][key], [*path, key])
            else:
                yield f'strict decoding error: unknown field "{_path([*path, key])}"'
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            yield from _unknown_fields(item, node["items"], [*path, index])


def _apply_defaults(value: Any, node: Schema) -> Any:
    if isinstance(value, dict) and "properties" in node:
        out = dict(value)
        for key, sub in node["properties"].items():
            if key in out:
                out[key] = _apply_defaults(out[key], sub)
            elif "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
        return out
    if isinstance(value, list) and "items" in node:
        return [_apply_defaults(item, node["items"]) for item in value]
    return value


def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Schema) -> Iterator[Any]:
    # The API server matches patterns with Go's regexp (RE2 syntax, `$` only at the very end).
    if validator.is_type(instance, "string") and not re2.search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


OpenApiValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _re2_pattern})
_GO_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def _k8s_message(error: jsonschema.ValidationError) -> str:
    """The jsonschema error in the API server's words (roughly: field.Error's formats)."""
    path = _path(list(error.absolute_path))
    kind, limit, value = error.validator, error.validator_value, error.instance
    if kind == "pattern":
        return f"{path}: Invalid value: {json.dumps(value)}: {path} in body should match '{limit}'"
    if kind == "enum":
        supported = ", ".join(json.dumps(v) for v in limit)
        return f"{path}: Unsupported value: {json.dumps(value)}: supported values: {supported}"
    if kind == "type":
        go_type = _GO_TYPES.get(type(value), "null")
        return f'{path}: Invalid value: "{go_type}": {path} in body must be of type {limit}: "{go_type}"'
    if kind == "maxItems":
        return f"{path}: Too many: {len(value)}: must have at most {limit} items"
    if kind == "maxLength":
        return f"{path}: Too long: may not be more than {limit} bytes"
    if kind == "minLength":
        return f"{path}: Invalid value: {json.dumps(value)}: {path} in body should be at least {limit} chars long"
    if kind == "required":
        missing = error.message.split("'")[1]
        return f"{_path([*error.absolute_path, missing])}: Required value"
    return f"{path}: {error.message}"


def _set_duplicates(value: Any, node: Schema, path: list[str | int]) -> Iterator[str]:
    if isinstance(value, dict) and "properties" in node:
        for key, sub in value.items():
            if key in node["properties"]:
                yield from _set_duplicates(sub, node["properties"][key], [*path, key])
    elif isinstance(value, list) and "items" in node:
        if node.get("x-kubernetes-list-type") == "set":
            for index, item in enumerate(value):
                if item in value[:index]:
                    yield f"{_path([*path, index])}: Duplicate value: {json.dumps(item)}"
        if node.get("x-kubernetes-list-type") == "map":
            keys = [tuple(item.get(k) for k in node["x-kubernetes-list-map-keys"]) for item in value]
            for index, key in enumerate(keys):
                if key in keys[:index]:
                    yield f"{_path([*path, index])}: Duplicate value: {json.dumps(value[index])}"
        for index, item in enumerate(value):
            yield from _set_duplicates(item, node["items"], [*path, index])


def _cel_bool(function: Any) -> Any:
    return lambda value: celtypes.BoolType(function(str(value)))


# The interpreted runner: cel-python 0.5's CompiledRunner mistranslates has().
CEL_ENV = celpy.Environment()
CEL_FUNCTIONS = {"isCIDR": _cel_bool(k8s_is_cidr), "isIP": _cel_bool(k8s_is_ip)}
_ABSENT = object()


@functools.cache
def _cel_program(rule: str) -> Any:
    return CEL_ENV.program(CEL_ENV.compile(rule), functions=CEL_FUNCTIONS)


def evaluate_rule(rule: str, value: Any, old: Any = _ABSENT) -> bool:
    old_json = None if old is _ABSENT else json.dumps(old, sort_keys=True)
    return _evaluate_rule(rule, json.dumps(value, sort_keys=True), old_json)


@functools.lru_cache(maxsize=4096)
def _evaluate_rule(rule: str, value_json: str, old_json: str | None) -> bool:
    # Cached by value: cel-python interprets the parse tree, at a few milliseconds a rule.
    activation = {"self": json_to_cel(json.loads(value_json))}
    if old_json is not None:
        activation["oldSelf"] = json_to_cel(json.loads(old_json))
    result = _cel_program(rule).evaluate(activation)
    assert isinstance(result, celtypes.BoolType), f"CEL rule {rule!r} gave {result!r}, not a bool"
    return bool(result)


def _is_transition_rule(rule: str) -> bool:
    return re.search(r"\boldSelf\b", rule) is not None


def _cel_errors(value: Any, old: Any, node: Schema, path: list[str | int]) -> Iterator[str]:
    for validation in node.get("x-kubernetes-validations", []):
        rule = validation["rule"]
        if _is_transition_rule(rule):
            if old is _ABSENT:
                continue  # transition rules run only on an update that has an old value
            passed = evaluate_rule(rule, value, old)
        else:
            passed = evaluate_rule(rule, value)
        if not passed:
            yield f"{_path(path)}{validation.get('fieldPath', '')}: {validation['message']}"
    if isinstance(value, dict) and "properties" in node:
        for key, sub in node["properties"].items():
            if key in value:
                old_sub = old.get(key, _ABSENT) if isinstance(old, dict) else _ABSENT
                yield from _cel_errors(value[key], old_sub, sub, [*path, key])
    elif isinstance(value, list) and "items" in node:
        # Old items are correlated only in map and set lists; no rule on our list items compares with oldSelf.
        for index, item in enumerate(value):
            yield from _cel_errors(item, _ABSENT, node["items"], [*path, index])


@dataclass(frozen=True)
class AdmissionResult:
    stored: dict[str, Any]  # the object after pruning and defaulting
    schema_errors: list[str]
    cel_errors: list[str]

    @property
    def errors(self) -> list[str]:
        return self.schema_errors + self.cel_errors

    @property
    def allowed(self) -> bool:
        return not self.errors


def admit(obj: dict[str, Any], old: dict[str, Any] | None = None, schema: Schema = OPENAPI) -> AdmissionResult:
    """What the API server would do with a create (or an update from `old`). CEL runs once the schema passes."""
    stored = _apply_defaults(_prune_nulls(obj, schema), schema)
    schema_errors = list(_unknown_fields(obj, schema, []))
    schema_errors += [_k8s_message(e) for e in OpenApiValidator(schema).iter_errors(stored)]
    schema_errors += list(_set_duplicates(stored, schema, []))
    if schema_errors:
        return AdmissionResult(stored, schema_errors, [])
    old_stored: Any = _ABSENT if old is None else _apply_defaults(_prune_nulls(old, schema), schema)
    return AdmissionResult(stored, [], list(_cel_errors(stored, old_stored, schema, [])))


def pydantic_errors(obj: dict[str, Any]) -> list[str]:
    """The model's verdict on a manifest; by alias only, as a manifest is written."""
    try:
        ProtectedBucket.model_validate(obj, by_alias=True, by_name=False)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    return []


# --- fixtures -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvalidFixture:
    """A manifest admission must refuse. Its header says who refuses it first (`# caught-by: schema|cel|pydantic`)
    and with what (`# expect:`), and what the model answers (`# expect-pydantic:`). A pydantic-only fixture
    would be a disagreement between the CRD and the model, which the agreement tests report."""

    name: str
    docs: list[dict[str, Any]]  # one object, or [old, new] for an update
    caught_by: str
    expect: str
    expect_pydantic: str | None

    @property
    def is_update(self) -> bool:
        return len(self.docs) == 2

    @classmethod
    def load(cls, path: Path) -> InvalidFixture:
        text = path.read_text()
        header = dict(re.findall(r"^# ([a-z-]+): (.*)$", text, flags=re.MULTILINE))
        return cls(
            name=path.stem,
            docs=list(yaml.safe_load_all(text)),
            caught_by=header["caught-by"],
            expect=header["expect"],
            expect_pydantic=header.get("expect-pydantic"),
        )


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


EXAMPLES = {path.stem: _load(path) for path in EXAMPLE_FILES}
INVALID = [InvalidFixture.load(path) for path in INVALID_FILES]


def _ids(fixtures: list[InvalidFixture]) -> list[str]:
    return [f.name for f in fixtures]


# --- schema walking -----------------------------------------------------------------------------------


def _walk(
    node: Schema, path: str = "", ancestors: tuple[Schema, ...] = ()
) -> Iterator[tuple[str, Schema, tuple[Schema, ...]]]:
    yield path, node, ancestors
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}", (*ancestors, node))
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]", (*ancestors, node))


def _rules() -> list[tuple[str, Schema, Schema, tuple[Schema, ...]]]:
    return [
        (path, validation, node, ancestors)
        for path, node, ancestors in _walk(OPENAPI)
        for validation in node.get("x-kubernetes-validations", [])
    ]


RULES = _rules()
RULE_IDS = [f"{path or '.'}:{v['rule'][:40]}" for path, v, _, _ in RULES]


# --- the generated file -------------------------------------------------------------------------------


def test_crd_file_matches_render() -> None:
    assert CRD_FILE.read_text() == render_crd_yaml(), "crds/ is stale: run `make crd`"


def test_crd_chart_copy_is_identical() -> None:
    assert CHART_CRD_FILE.read_bytes() == CRD_FILE.read_bytes(), "the chart's CRD is stale: run `make crd`"


def test_render_crd_yaml_is_stable_and_round_trips() -> None:
    text = render_crd_yaml()
    assert text == render_crd_yaml()
    assert text.startswith("# generated by `bucketwarden crd` from spec.py; do not edit\n")
    assert yaml.safe_load(text) == build_crd()


def test_build_crd_names_and_version() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "protectedbuckets.bucketwarden.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "ProtectedBucket",
        "listKind": "ProtectedBucketList",
        "plural": "protectedbuckets",
        "singular": "protectedbucket",
        "shortNames": ["pb"],
        "categories": ["bucketwarden"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_build_crd_status_is_the_model_and_kopfs_bookkeeping() -> None:
    """The model's fields and status.kopf (k8s/_bookkeeping.py), nothing open but kopf's own progress records."""
    status = OPENAPI["properties"]["status"]
    model_fields = {f.alias or name for name, f in ProtectedBucketStatus.model_fields.items()}
    assert set(status["properties"]) == model_fields | {"kopf"}
    assert status["properties"]["kopf"] == KOPF_STATUS_SCHEMA
    assert "x-kubernetes-preserve-unknown-fields" not in status
    conditions = status["properties"]["conditions"]
    assert (conditions["x-kubernetes-list-type"], conditions["x-kubernetes-list-map-keys"]) == ("map", ["type"])


@pytest.mark.parametrize("version", ["1.31.0", "1.37.0"])
def test_build_crd_is_a_valid_crd_object(version: str) -> None:
    try:
        kubernetes_validate.validate(CRD, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(str(exc).splitlines()[0])


# --- structural schema --------------------------------------------------------------------------------

_JSON_SCHEMA_PROPS = {
    *("type", "description", "format", "enum", "default", "pattern", "title", "example", "externalDocs"),
    *("minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties"),
    *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "nullable"),
    *("required", "properties", "items", "additionalProperties"),
    *("x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type"),
    *("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource"),
}
_SCALARS = {"string", "integer", "number", "boolean"}
_VALIDATION_KEYS = {"rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf"}
_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}


def structural_problems(root: Schema) -> list[str]:
    """Where `root` breaks Kubernetes' structural-schema rules (a stricter subset: no anyOf/allOf at all)."""
    problems = []
    for path, node, _ in _walk(root):
        where = path or "."
        if unknown := set(node) - _JSON_SCHEMA_PROPS:
            problems.append(f"{where}: not JSONSchemaProps fields: {sorted(unknown)}")
        if not node.get("type") and not (
            node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
        ):
            problems.append(f"{where}: no type")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties together")
        if node.get("additionalProperties") is False:
            problems.append(f"{where}: additionalProperties: false (unknown fields are pruned instead)")
        if "items" in node and not isinstance(node["items"], dict):
            problems.append(f"{where}: items must be one schema")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{where}: array without items")
        if "default" in node:
            try:
                OpenApiValidator(node).validate(node["default"])
            except jsonschema.ValidationError as exc:
                problems.append(f"{where}: default {node['default']!r} is invalid: {exc.message}")
        items = node.get("items", {})
        match node.get("x-kubernetes-list-type"):
            case "set" if items.get("type") not in _SCALARS:
                problems.append(f"{where}: a set needs scalar items")
            case "map":
                keys = node.get("x-kubernetes-list-map-keys", [])
                props = items.get("properties", {})
                for key in keys or ["<none>"]:
                    if props.get(key, {}).get("type") not in _SCALARS:
                        problems.append(f"{where}: map key {key!r} must be a scalar property")
                    elif key not in items.get("required", []) and "default" not in props[key]:
                        problems.append(f"{where}: map key {key!r} must be required or defaulted")
        for validation in node.get("x-kubernetes-validations", []):
            if set(validation) - _VALIDATION_KEYS or "rule" not in validation:
                problems.append(f"{where}: malformed validation {validation}")
            if "reason" in validation and validation["reason"] not in _REASONS:
                problems.append(f"{where}: unknown reason {validation['reason']!r}")
    for key in ("$ref", "$defs", "definitions", "anyOf", "allOf", "oneOf", "not"):
        if f'"{key}"' in json.dumps(root):
            problems.append(f"{key} anywhere")
    if root.get("type") != "object":
        problems.append(". must be an object")
    if set(root.get("properties", {}).get("metadata", {})) - {"type"}:
        problems.append(".metadata: only type: object (the API server owns the rest)")
    return problems


def test_crd_schema_is_structural() -> None:
    assert structural_problems(OPENAPI) == []


def _object(**props: Schema) -> Schema:
    return {"type": "object", "properties": props}


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        pytest.param(_object(a={"description": "x"}), ".a: no type", id="no-type"),
        pytest.param(_object(a={"anyOf": [{"type": "string"}]}), "anyOf anywhere", id="any-of"),
        pytest.param(_object(a={"$ref": "#/$defs/A", "type": "object"}), "$ref anywhere", id="ref"),
        pytest.param(
            {**_object(a={"type": "string"}), "additionalProperties": {"type": "string"}},
            "properties and additionalProperties",
            id="properties-and-additional",
        ),
        pytest.param(_object(a={"type": "string", "default": 3}), "default 3 is invalid", id="bad-default"),
        pytest.param(
            _object(a={"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "set"}),
            "a set needs scalar items",
            id="set-of-objects",
        ),
        pytest.param(
            _object(
                a={
                    "type": "array",
                    "items": _object(k={"type": "string"}),
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["k"],
                }
            ),
            "must be required or defaulted",
            id="map-key-optional",
        ),
        pytest.param(_object(a={"type": "string", "title": "A", "const": "x"}), "['const']", id="unknown-keyword"),
    ],
)
def test_structural_problems_finds(schema: Schema, problem: str) -> None:
    assert any(problem in p for p in structural_problems(schema)), structural_problems(schema)


def _patterns() -> list[str]:
    found = [node["pattern"] for _, node, _ in _walk(OPENAPI) if "pattern" in node]
    found += re.findall(r"matches\('([^']*)'\)", json.dumps([v["rule"] for _, v, _, _ in RULES]))
    return sorted(set(found))


@pytest.mark.parametrize("pattern", _patterns())
def test_crd_pattern_compiles_in_python_and_re2(pattern: str) -> None:
    re.compile(pattern)
    re2.compile(pattern)
    assert "\\w" not in pattern, "Unicode-aware in Python, ASCII-only in Go"
    assert "\\d" not in pattern, "Unicode-aware in Python, ASCII-only in Go"
    assert pattern.startswith("^"), "OpenAPI patterns are unanchored searches"
    assert pattern.endswith("$"), "OpenAPI patterns are unanchored searches"


# --- CEL rules: well formed, bounded, affordable ------------------------------------------------------


@pytest.mark.parametrize(("path", "validation", "node", "ancestors"), RULES, ids=RULE_IDS)
def test_crd_cel_rule_compiles_and_names_a_real_field(
    path: str, validation: Schema, node: Schema, ancestors: tuple[Schema, ...]
) -> None:
    _cel_program(validation["rule"])
    assert validation["message"]
    assert not validation["message"].endswith(".")
    if "fieldPath" in validation:
        assert validation["fieldPath"].removeprefix(".") in node["properties"]


def _touched(validation: Schema, node: Schema) -> list[Schema]:
    """The schema nodes a rule reads: `self.<field>` properties, and `self` itself when used otherwise."""
    rule = validation["rule"]
    props = node.get("properties", {})
    fields = [name for name in re.findall(r"\bself\.(\w+)", rule) if name in props]
    bare = re.sub(r"\bself\.(\w+)", lambda m: "" if m.group(1) in props else "self", rule)
    return [props[name] for name in dict.fromkeys(fields)] + ([node] if re.search(r"\bself\b", bare) else [])


def _unbounded(node: Schema) -> Iterator[str]:
    for path, sub, _ in _walk(node):
        if sub.get("type") == "array" and "maxItems" not in sub:
            yield f"array {path or '.'} has no maxItems"
        if sub.get("type") == "string" and "maxLength" not in sub:
            yield f"string {path or '.'} has no maxLength"


@pytest.mark.parametrize(("path", "validation", "node", "ancestors"), RULES, ids=RULE_IDS)
def test_crd_cel_rule_touches_only_bounded_fields(
    path: str, validation: Schema, node: Schema, ancestors: tuple[Schema, ...]
) -> None:
    problems = [p for touched in _touched(validation, node) for p in _unbounded(touched)]
    problems += [
        "an enclosing array has no maxItems" for a in ancestors if a["type"] == "array" and "maxItems" not in a
    ]
    assert problems == []


def _size(node: Schema) -> float:
    """Worst-case size of a value, in the units of the cost estimate (characters, roughly bytes)."""
    match node.get("type"):
        case "string":
            return float(node.get("maxLength", MAX_REQUEST_BYTES))
        case "array":
            return float(node.get("maxItems", MAX_REQUEST_BYTES / 2)) * _size(node["items"])
        case "object":
            return sum(_size(p) for p in node.get("properties", {}).values()) or 1.0
        case _:
            return 1.0


def estimated_cost(validation: Schema, node: Schema, ancestors: tuple[Schema, ...]) -> float:
    """A rough, pessimistic stand-in for the API server's estimate: every character costs 1 (it charges ~0.1),
    times the number of times the rule runs (enclosing lists), times the list again for nested macros."""
    runs = math.prod(a.get("maxItems", MAX_REQUEST_BYTES / 2) for a in ancestors if a["type"] == "array")
    cost = sum(_size(t) for t in _touched(validation, node))
    macros = len(re.findall(r"\.(all|exists|exists_one|map|filter)\(", validation["rule"]))
    if macros > 1 and node["type"] == "array":
        cost *= node.get("maxItems", MAX_REQUEST_BYTES / 2) ** (macros - 1)
    return float(runs * cost)


def test_crd_cel_cost_is_within_budget() -> None:
    costs = {f"{p}: {v['rule']}": estimated_cost(v, n, a) for p, v, n, a in RULES}
    assert {rule: cost for rule, cost in costs.items() if cost > PER_RULE_COST_LIMIT} == {}
    assert sum(costs.values()) < PER_CRD_COST_LIMIT


def test_estimated_cost_flags_an_unbounded_list() -> None:
    spec = copy.deepcopy(OPENAPI["properties"]["spec"])
    del spec["properties"]["allowedSourceIps"]["maxItems"]
    items = spec["properties"]["allowedSourceIps"]["items"]
    validation = items["x-kubernetes-validations"][0]
    assert estimated_cost(validation, items, (spec, spec["properties"]["allowedSourceIps"])) > PER_RULE_COST_LIMIT


def test_crd_min_kubernetes_version_covers_the_ip_library() -> None:
    assert CRD["metadata"]["annotations"][MIN_KUBERNETES_VERSION_ANNOTATION] == MIN_KUBERNETES_VERSION
    uses_ip_library = any(re.search(r"\bis(CIDR|IP)\(", v["rule"]) for _, v, _, _ in RULES)
    assert not uses_ip_library or tuple(map(int, MIN_KUBERNETES_VERSION.split("."))) >= (1, 31)


# --- printer columns ----------------------------------------------------------------------------------

_OBJECT_META = {"creationTimestamp": "string", "name": "string", "namespace": "string", "generation": "integer"}
_COLUMN_TYPES = {"string": "string", "date": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
_SEGMENT = re.compile(r'\.(\w+)(?:\[\?\(@\.(\w+)=="(\w+)"\)\])?')


def column_field_type(json_path: str) -> str | None:
    """The schema type a printer column's JSONPath ends at, or None if it names no field."""
    segments = _SEGMENT.findall(json_path)
    if "".join(m.group(0) for m in _SEGMENT.finditer(json_path)) != json_path:
        return None
    if segments[0][0] == "metadata":
        return _OBJECT_META.get(segments[1][0]) if len(segments) == 2 else None
    node = OPENAPI
    for name, filter_field, _ in segments:
        node = node.get("properties", {}).get(name, {})
        if filter_field:
            if node.get("x-kubernetes-list-map-keys") != [filter_field]:
                return None
            node = node["items"]
    return node.get("type")


@pytest.mark.parametrize("column", CRD["spec"]["versions"][0]["additionalPrinterColumns"], ids=lambda c: c["name"])
def test_crd_printer_column_points_at_a_field_of_its_type(column: Schema) -> None:
    assert column_field_type(column["jsonPath"]) == _COLUMN_TYPES[column["type"]]


def test_crd_printer_columns_put_reason_next_to_ready() -> None:
    names = [c["name"] for c in CRD["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert names[names.index("Ready") + 1] == "Reason"
    assert names[-1] == "Age"
    assert all(c.get("priority", 0) == 0 for c in CRD["spec"]["versions"][0]["additionalPrinterColumns"])


# --- Kubernetes' IP functions, and the model's CIDR check, against Kubernetes' verdicts ----------------


@pytest.mark.parametrize(("text", "is_ip", "is_cidr"), K8S_IP_VERDICTS, ids=[repr(t) for t, _, _ in K8S_IP_VERDICTS])
def test_k8s_ip_library_emulation_matches_kubernetes(text: str, is_ip: bool, is_cidr: bool) -> None:
    assert (k8s_is_ip(text), k8s_is_cidr(text)) == (is_ip, is_cidr)


@pytest.mark.parametrize(("text", "is_ip", "is_cidr"), K8S_IP_VERDICTS, ids=[repr(t) for t, _, _ in K8S_IP_VERDICTS])
def test_validate_cidr_accepts_what_kubernetes_accepts(text: str, is_ip: bool, is_cidr: bool) -> None:
    try:
        validate_cidr(text)
        accepted = True
    except ValueError:
        accepted = False
    # A /0 is a well-formed CIDR that both the model and the CRD's second rule refuse: it restricts nothing.
    assert accepted == ((is_ip or is_cidr) and not text.endswith("/0"))


# --- examples and invalid fixtures --------------------------------------------------------------------


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 4
    assert len(INVALID) >= 12


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_is_admitted(name: str) -> None:
    assert admit(EXAMPLES[name]).errors == []


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_is_a_valid_model(name: str) -> None:
    assert pydantic_errors(EXAMPLES[name]) == []


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_defaults_from_crd_equal_the_model_defaults(name: str) -> None:
    stored_spec = admit(EXAMPLES[name]).stored["spec"]
    model_spec = ProtectedBucketSpec.model_validate(EXAMPLES[name]["spec"]).to_k8s()
    assert stored_spec == {k: v for k, v in model_spec.items() if v != [] or k in stored_spec}


@pytest.mark.parametrize("fixture", INVALID, ids=_ids(INVALID))
def test_invalid_fixture_is_rejected_by_admission_for_the_expected_reason(fixture: InvalidFixture) -> None:
    result = admit(fixture.docs[-1], old=fixture.docs[0] if fixture.is_update else None)
    caught = {
        "schema": result.schema_errors,
        "cel": result.cel_errors,
        "pydantic": pydantic_errors(fixture.docs[-1]),
    }[fixture.caught_by]
    assert any(fixture.expect in e for e in caught), result.errors


@pytest.mark.parametrize("fixture", [f for f in INVALID if f.is_update], ids=_ids([f for f in INVALID if f.is_update]))
def test_invalid_update_is_each_side_valid_alone(fixture: InvalidFixture) -> None:
    """Only the transition rule can see the problem: each object alone is admitted."""
    assert [admit(doc).errors for doc in fixture.docs] == [[], []]


def test_transition_rule_allows_an_unchanged_bucket_name() -> None:
    seed = EXAMPLES["awsbackup-test-001"]
    changed = copy.deepcopy(seed)
    changed["spec"]["allowedSourceIps"].append("198.51.100.0/24")
    assert admit(changed, old=seed).errors == []


_MODEL_FIXTURES = [f for f in INVALID if not f.is_update]


@pytest.mark.parametrize("fixture", _MODEL_FIXTURES, ids=_ids(_MODEL_FIXTURES))
def test_invalid_fixture_is_rejected_by_the_model_for_the_same_reason(fixture: InvalidFixture) -> None:
    assert fixture.expect_pydantic is not None, "say what the model answers, in `# expect-pydantic:`"
    errors = pydantic_errors(fixture.docs[0])
    assert any(fixture.expect_pydantic in e for e in errors), errors


_VERDICT_CASES = list(EXAMPLES.items()) + [(f.name, f.docs[0]) for f in _MODEL_FIXTURES]


@pytest.mark.parametrize("doc", [d for _, d in _VERDICT_CASES], ids=[n for n, _ in _VERDICT_CASES])
def test_admission_and_model_agree_on_fixture(doc: dict[str, Any]) -> None:
    assert admit(doc).allowed == (pydantic_errors(doc) == [])


# --- the same agreement on generated specs ------------------------------------------------------------
# A valid spec with up to three fields replaced by values near the edges of validity, or by nulls.

_CIDRS = [t for t, _, _ in K8S_IP_VERDICTS] + ["203.0.113.0/24", "x" * 65]
_ROLE_ARNS = [
    "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole",
    "arn:aws-cn:iam::123456789012:role/Backup",
    "arn:aws:iam::12345678901:role/Backup",
    "arn:aws:iam::123456789012:user/Backup",
    "arn:aws:iam::123456789012:role/Backup\n",
]
_ROLE_NAMES = ["AWSBackupDefaultServiceRole", "ci+deploy@x", "rôle", "a b", "x" * 65, ""]
_ROLES = st.fixed_dictionaries(
    {}, optional={"name": st.sampled_from([*_ROLE_NAMES, None]), "arn": st.sampled_from([*_ROLE_ARNS, None])}
)
_SIDS = ["BucketWardenIpRestriction", "SourceIPRestriction001", "Legacy IP rule", 'a"b', "", "x" * 65]
_BUCKET_NAMES = ["awsbackup-test-001", "a.b", "ab", "a" * 63, "a" * 64, "Upper", "a_b", "-abc", "a..b", "a-.b"]
_BUCKET_NAMES += ["192.168.1.1", "xn--abc", "abc--x-s3", "abc\n", "bück"]
_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "bucketName": st.sampled_from(_BUCKET_NAMES),
    "allowedSourceIps": st.lists(st.sampled_from(_CIDRS), max_size=3) | st.just("192.0.2.0/24"),
    "allowedVpcEndpoints": st.lists(st.sampled_from(["vpce-0a1b2c3d", "vpce-XYZ", "vpce-0a1b2c3d4e5f67890a"])),
    "allowedVpcs": st.lists(st.sampled_from(["vpc-0123456789abcdef0", "vpc-123", "vpc-01234567\n"]), max_size=2),
    "exemptRoles": st.lists(_ROLES, max_size=3),
    "exemptionKey": st.sampled_from(["userId", "principalArn", "userid"]),
    "exemptOperator": st.sampled_from([True, False, "false"]),
    "acknowledgeLockoutRisk": st.sampled_from([True, False, 1]),
    "statementSid": st.sampled_from(_SIDS),
    "adoptSids": st.lists(st.sampled_from(_SIDS), max_size=3),
    "managementPolicy": st.sampled_from(["Enforce", "Observe", "enforce"]),
    "deletionPolicy": st.sampled_from(["Delete", "Retain"]),
    "region": st.sampled_from(["eu-west-1", "us-gov-west-1", "EU", "eu-west-1 "]),
    "expectedBucketOwner": st.sampled_from(["123456789012", "12345678901", 123456789012]),
    "assumeRoleArn": st.sampled_from(_ROLE_ARNS),
}
_REPLACEMENT = st.one_of(*(st.tuples(st.just(k), v | st.none()) for k, v in _FIELD_VALUES.items()))
_SPECS = st.lists(_REPLACEMENT, max_size=3).map(
    lambda changes: {"bucketName": "awsbackup-test-001", "allowedSourceIps": ["192.0.2.0/24"], **dict(changes)}
)


@settings(max_examples=150, deadline=None)
@given(spec=_SPECS)
def test_admission_and_model_agree_on_generated_specs(spec: dict[str, Any]) -> None:
    doc = {"apiVersion": "bucketwarden.io/v1alpha1", "kind": "ProtectedBucket", "metadata": {"name": "x"}}
    doc["spec"] = spec
    admission, model = admit(doc), pydantic_errors(doc)
    assert admission.allowed == (model == []), (admission.errors, model)


def test_crd_module_only_imports_spec() -> None:
    source = Path(crd_module.__file__).read_text()
    imported = set(re.findall(r"^(?:from|import) ([\w.]+)", source, flags=re.MULTILINE))
    assert imported <= {"__future__", "typing", "yaml", "bucketwarden.spec"}
