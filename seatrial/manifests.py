"""Reading a user's manifests for static checks: files, directories, or kustomize directories.

Every problem names the file (and the document in it) and stops the run with exit 2; nothing is
half-read."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from seatrial import schema
from seatrial.errors import ConfigError, yaml_problem

SUFFIXES = (".yaml", ".yml", ".json")
MAX_BYTES = 64 * 2**20  # 131,000 Deployments fit in 50 MB; /dev/zero does not
MAX_EXPANSION = 10  # nodes an alias may add per node written, beyond a first 10,000
MAX_INVALID = 10  # invalid objects named in one message


def _size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes in ``node`` once every alias is expanded: what a rule walking it would meet."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once, not forever
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_size(k, memo) + _size(v, memo) for k, v in node.value)
    memo[key] = total
    return total


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML as kubectl reads it, with a bound on aliases.

    PyYAML shares an aliased node instead of copying it, so a 1.5 KB "billion laughs" loads in
    an instant and only explodes when something walks or prints it (an evidence excerpt reached
    4.5 GB). A document whose aliases multiply it beyond ``MAX_EXPANSION`` is refused. The YAML
    1.1 ``=`` (PyYAML's ``value`` tag) and timestamps stay strings, as kubectl reads them."""

    def construct_document(self, node: yaml.Node) -> Any:
        memo: dict[int, int] = {}
        if _size(node, memo) > MAX_EXPANSION * len(memo) + 10_000:
            raise _AliasBomb()
        return super().construct_document(node)


class _AliasBomb(Exception):
    pass


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))
_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def _parse(text: str, where: str) -> list[Any]:
    try:
        return list(yaml.load_all(text, Loader=_Loader))  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {yaml_problem(exc)}") from None
    except _AliasBomb:
        raise ConfigError(
            f"{where}: its YAML aliases expand it more than {MAX_EXPANSION}-fold (an alias bomb?); "
            "write the repeated parts out"
        ) from None
    except RecursionError:
        raise ConfigError(f"{where}: its YAML nests too deep to read (thousands of levels)") from None


def _name(d: dict[str, Any]) -> str:
    meta = d.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{d.get('kind')}/{name}" if isinstance(name, str) else str(d.get("kind"))


def _shape(d: Any) -> str | None:
    """Why ``d`` is not a Kubernetes object at all, or None."""
    if not isinstance(d, dict):
        return f"expected a Kubernetes object (a mapping), not {schema.describe(d)}"
    if not all(isinstance(d.get(k), str) and d.get(k) for k in ("apiVersion", "kind")):
        return "a Kubernetes object needs apiVersion and kind, as strings"
    meta = d.get("metadata")
    if not isinstance(meta, dict):
        return f"metadata: a mapping with a name, not {'nothing' if meta is None else schema.describe(meta)}"
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        return "a Kubernetes object needs metadata.name, as a string"
    return None


def _docs(text: str, where: str, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """The objects of one file; every invalid one is named (file, document, object, field) in
    one message, and nothing is returned then: a rule would misread it, and the API server would
    refuse it. Unknown fields no rule reads go to ``notes`` (a field removed from the API, such
    as a Service's ``topologyKeys``, should not stop a whole run)."""
    out: list[dict[str, Any]] = []
    invalid: list[str] = []
    for i, d in enumerate(_parse(text, where)):
        if d is None:
            continue
        at = f"document {i + 1}"
        kind = d.get("kind") if isinstance(d, dict) else None
        if isinstance(kind, str) and kind.endswith("List") and isinstance(d.get("items"), list):
            items = [(f"{at}, item {j + 1}", x) for j, x in enumerate(d["items"])]  # List, ConfigMapList, …
        else:
            items = [(at, d)]
        for item_at, obj in items:
            shape = _shape(obj)
            if shape and isinstance(obj, dict) and isinstance(obj.get("kind"), str):
                shape = f"{obj['kind']}: {shape}"
            wrong, unknown = ([shape], []) if shape else schema.problems(obj)
            invalid += [f"{item_at}: {p}" if shape else f"{item_at}: {_name(obj)}: {p}" for p in wrong]
            if notes is not None:
                notes += [f"{where}, {item_at}: {_name(obj)}: {p}" for p in unknown]
            if not wrong:
                out.append(obj)
    if invalid:
        more = f"\n  … and {len(invalid) - MAX_INVALID} more" if len(invalid) > MAX_INVALID else ""
        raise ConfigError(
            f"{where} has objects the Kubernetes API would refuse:\n  " + "\n  ".join(invalid[:MAX_INVALID]) + more,
            hint="fix the fields named; kubectl apply --dry-run=server shows the same",
        )
    return out


def _read(f: Path, total: int) -> str:
    if not f.is_file():
        raise ConfigError(f"{f} is not a regular file (a device, a pipe or a socket?): name a manifest file")
    size = f.stat().st_size
    if total + size > MAX_BYTES:
        raise ConfigError(
            f"{f}: the manifests come to more than {MAX_BYTES // 2**20} MiB, more than seatrial reads in one run; "
            "check them in parts"
        )
    try:
        return f.read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"{f} is not text (UTF-8): name a YAML or JSON manifest") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {f}: {exc.strerror or exc}") from None


def load(path: Path, *, kubectl: str | None = None, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """Objects from a file, a directory of files, or a kustomize directory (rendered with kubectl).
    What is worth a warning but not a stop goes to ``notes``."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if path.is_dir() and any((path / k).exists() for k in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
        if kubectl is None:
            from seatrial.stack import kubectl as find_kubectl

            kubectl = find_kubectl()
        proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ConfigError(f"kustomize could not render {path}: {proc.stderr.strip()}")
        if len(proc.stdout) > MAX_BYTES:
            raise ConfigError(
                f"the kustomize render of {path} is more than {MAX_BYTES // 2**20} MiB; check it in parts"
            )
        return _docs(proc.stdout, f"the kustomize render of {path}", notes)
    files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES) if path.is_dir() else [path]
    out: list[dict[str, Any]] = []
    total = 0
    for f in files:
        text = _read(f, total)
        total += len(text)
        out += _docs(text, str(f), notes)
    if not out:
        raise ConfigError(f"no Kubernetes objects found in {path}")
    return out
