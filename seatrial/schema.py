"""Built-in Kubernetes objects checked against the API's own schema before any rule reads them.

A rule that meets ``replicas: "three"`` or ``nvidia.com/gpu: two`` either crashes or, worse,
reads it as nothing and passes (a GPU request of "two" hid a critical GPU-002). The API server
would refuse such an object, so static mode refuses it too, naming the field.

The schema is not ours: it is the OpenAPI of each Kubernetes release turned into JSON Schema, as
the ``kubernetes-validate`` package ships it (one directory per minor version). We read its
definitions as data and check what the server's field validation checks: types, unknown fields
(kubectl's default is strict) and the format of quantities. ``required`` is not enforced, because
the server defaults several "required" fields (a pod failure rule's ``status``); an explicit
``null`` where a field is required is, because nothing defaults it then. A full JSON Schema
validator spent 13 ms per Deployment here; this walk does what is needed in well under one.

Messages name the field and the type, never the value: the value may be a secret.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from seatrial.checks.inventory import QUANTITY  # one grammar: what passes here, the rules can read

# The release the local cluster runs (cluster/versions.py; a test keeps the two equal). Not
# imported from there: seatrial.cluster pulls in the Kubernetes client, 0.3 s a static run need not pay.
KUBERNETES = "v1.34.4"
QUANTITY_REF = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING_REF = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
PERCENT_FIELDS = ("minAvailable", "maxUnavailable", "maxSurge")  # strings there are percentages, not port names
MAX_PROBLEMS = 5
UNKNOWN = "unknown field (the API has no such field here)"
Schema = Mapping[str, Any]


def _minor(version: str) -> tuple[int, int]:
    major, minor = re.findall(r"\d+", version)[:2]
    return int(major), int(minor)


@functools.cache
def _definitions(version: str = KUBERNETES) -> tuple[dict[str, Schema], dict[tuple[str, str], str]]:
    """The schema's definitions for the newest release not newer than ``version``, and the
    definition of each (apiVersion, kind)."""
    # the package's data, found without importing the package: its import pulls in jsonschema
    # (0.12 s), more than the rest of a small static run
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("kubernetes-validate is not installed (pip install -e .)")
    root = Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"
    have = sorted(
        (_minor(d.name), d.name) for d in root.iterdir() if d.name.endswith("-local-strict") and d.name[1:2].isdigit()
    )
    chosen = [name for v, name in have if v <= _minor(version)] or [have[0][1]]
    defs: dict[str, Schema] = json.loads((root / chosen[-1] / "_definitions.json").read_text())["$defs"]
    kinds: dict[tuple[str, str], str] = {}
    for name, schema in defs.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            api = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            kinds[(api, gvk["kind"])] = name
    return defs, kinds


def served_versions(kind: str) -> list[str]:
    """The apiVersions the target release serves ``kind`` under (none for custom resources)."""
    return sorted(api for api, k in _definitions()[1] if k == kind)


def target() -> str:
    """The Kubernetes release static mode judges against, as ``1.34``."""
    major, minor = _minor(KUBERNETES)
    return f"{major}.{minor}"


def known(api_version: str, kind: str) -> bool:
    """Whether the schema knows this kind (custom resources and removed versions it does not)."""
    return (api_version, kind) in _definitions()[1]


POD_TEMPLATE = "io.k8s.api.core.v1.PodTemplateSpec"


def problems(obj: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """What the API server's schema rejects in ``obj``, as ``field: reason``: the wrong values
    (which a rule would misread) and the unknown fields (which no rule reads, and which kubectl's
    ``--validate=warn`` only warns about); at most a few of each."""
    name = _definitions()[1].get((str(obj.get("apiVersion")), str(obj.get("kind"))))
    return ([], []) if name is None else check(obj, name)


def check(value: Any, definition: str, path: str = "") -> tuple[list[str], list[str]]:
    """``problems`` against one named definition (a custom resource's pod template against
    ``POD_TEMPLATE``), field paths starting at ``path``."""
    defs = _definitions()[0]
    wrong: list[str] = []
    unknown: list[str] = []
    for problem in _walk(value, {"$ref": f"#/$defs/{definition}"}, path, defs):
        found = unknown if problem.endswith(UNKNOWN) else wrong
        if len(found) < MAX_PROBLEMS:
            found.append(problem)
    return wrong, unknown


_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (Mapping, "object"), (list, "array"))


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for cls, name in _TYPES if isinstance(value, cls)), type(value).__name__)


def _fits(value: Any, types: list[str]) -> bool:
    have = _type_of(value)
    if have == "number" and "integer" in types:
        return math.isfinite(value) and float(value).is_integer()  # 3.0 is an integer in JSON
    return have in types or (have == "integer" and "number" in types)


def describe(value: Any) -> str:
    """A value's JSON type in words ("a string"), for messages that must not quote the value."""
    return _article(_type_of(value))


def _walk(value: Any, schema: Schema, path: str, defs: Mapping[str, Schema]) -> Iterator[str]:
    at = path or "the object"
    while "$ref" in schema:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        if ref == QUANTITY_REF and value is not None:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                yield f"{at}: a quantity (like 500m, 2Gi or 1), not {_article(_type_of(value))}"
            elif (isinstance(value, str) and not QUANTITY.fullmatch(value)) or (
                isinstance(value, float) and not math.isfinite(value)
            ):
                yield f"{at}: not a quantity (like 500m, 2Gi or 1)"
            return
        if ref == INT_OR_STRING_REF and isinstance(value, str) and path.rsplit(".", 1)[-1] in PERCENT_FIELDS:
            if not re.fullmatch(r"\d+%", value):
                yield f"{at}: a number or a percentage (like 1 or 25%), not another string"
            return
        schema = defs.get(ref, {})
    if "oneOf" in schema:
        if not any(_fits(value, list(_types(s))) for s in schema["oneOf"]):
            wanted = " or ".join(t for s in schema["oneOf"] for t in _types(s) if t != "null")
            yield f"{at}: {wanted}, not {_type_of(value)}"
        return
    types = list(_types(schema))
    if types and not _fits(value, types):
        wanted = " or ".join(t for t in types if t != "null")
        yield f"{at}: {_article(wanted)}, not {_article(_type_of(value))}"
        return
    if isinstance(value, float) and not math.isfinite(value):
        yield f"{at}: a finite number, not {value}"
        return
    if isinstance(value, Mapping):
        props: Mapping[str, Schema] = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key in props:
                if item is None and key in (schema.get("required") or ()):
                    yield f"{sub}: required, not null"
                    continue
                yield from _walk(item, props[key], sub, defs)
            elif extra is False:
                yield f"{sub}: {UNKNOWN}"
            elif isinstance(extra, Mapping):
                yield from _walk(item, extra, sub, defs)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            if item is None:  # the API decodes it to an empty object, which then fails validation
                yield f"{path}[{i}]: null, not an item"
                continue
            yield from _walk(item, schema["items"], f"{path}[{i}]", defs)


def _types(schema: Schema) -> Iterator[str]:
    t = schema.get("type")
    if isinstance(t, str):
        yield t
    elif isinstance(t, list):
        yield from (str(x) for x in t)


def _article(kind: str) -> str:
    plain = {"null": "null", "string": "a string", "integer": "an integer", "number": "a number"}
    plain |= {"boolean": "a boolean (true or false)", "object": "a mapping", "array": "a list"}
    return " or ".join(plain.get(k, k) for k in kind.split(" or "))
