"""Reading a user's manifests for static checks: files, directories, or kustomize directories.

Every problem names the file (and the document in it) and stops the run with exit 2; nothing is
half-read."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from seatrial import schema
from seatrial.checks import crds
from seatrial.errors import ConfigError, yaml_problem

SUFFIXES = (".yaml", ".yml", ".json")
MAX_BYTES = 64 * 2**20  # 131,000 Deployments fit in 50 MB; /dev/zero does not
MAX_EXPANSION = 10  # nodes an alias may add per node written, beyond a first 10,000
MAX_INVALID = 10  # invalid objects named in one message


def _size(node: yaml.Node, memo: dict[int, int], open_: set[int] | None = None) -> int:
    """Nodes in ``node`` once every alias is expanded: what a rule walking it would meet. A node
    that contains itself (a recursive alias) expands forever: refused."""
    key, open_ = id(node), open_ if open_ is not None else set()
    if key in open_:
        raise _AliasBomb()
    if key in memo:
        return memo[key]
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_size(child, memo, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_size(k, memo, open_) + _size(v, memo, open_) for k, v in node.value)
    open_.discard(key)
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
            f"{where}: its YAML aliases expand it more than {MAX_EXPANSION}-fold, or into itself "
            "(an alias bomb?); write the repeated parts out"
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


def _problems(obj: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The schema's verdict on a built-in object, or on each pod template of a custom resource
    the rules read (their templates are pods the API server will validate once the operator
    creates them)."""
    if obj.get("kind") not in crds.KINDS:
        return schema.problems(obj)
    wrong: list[str] = []
    unknown: list[str] = []
    for part, template in crds.parts(obj):
        w, u = schema.check(template, schema.POD_TEMPLATE, f"{part}.template")
        wrong += w
        unknown += u
    return wrong, unknown


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
            wrong, unknown = ([shape], []) if shape else _problems(obj)
            invalid += [f"{item_at}: {p}" if shape else f"{item_at}: {_name(obj)}: {p}" for p in wrong]
            if notes is not None:
                notes += [f"{where}, {item_at}: {_name(obj)}: {p}; the rest of it is checked" for p in unknown]
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


KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def _kustomization(d: Path) -> Path | None:
    return next((d / k for k in KUSTOMIZATIONS if (d / k).is_file()), None)


def _render_kustomize(path: Path, kubectl: str | None, notes: list[str] | None) -> list[dict[str, Any]]:
    if kubectl is None:
        from seatrial.stack import kubectl as find_kubectl

        kubectl = find_kubectl()
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 and "--enable-helm" in proc.stderr:
        # a kustomization with helmCharts: render them as kustomize does, with helm v3; a chart
        # it would have to download is kustomize's to report (no network here, maybe none there)
        argv = [kubectl, "kustomize", "--enable-helm", "--helm-command", kustomize_helm(), str(path)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"kustomize could not render {path}: {proc.stderr.strip()}")
    if len(proc.stdout) > MAX_BYTES:
        raise ConfigError(f"the kustomize render of {path} is more than {MAX_BYTES // 2**20} MiB; check it in parts")
    return _docs(proc.stdout, f"the kustomize render of {path}", notes)


def kustomize_helm() -> str:
    """The helm kustomize's ``helmCharts`` run with: kustomize takes helm v3 only. The user's
    ``helm`` when it is v3, else one built from its Go module into the cache (once)."""
    named = shutil.which("helm")
    if named:
        out = subprocess.run([named, "version", "--short"], capture_output=True, text=True, check=False).stdout
        if out.startswith("v3."):
            return named
    from seatrial.cluster import build

    return str(build.build_helm3())


def helm() -> str:
    """The ``helm`` to render charts with: ``SEATRIAL_HELM``, the user's on PATH, or one built from
    its Go module into the cache (once; a few minutes cold)."""
    import os

    named = os.environ.get("SEATRIAL_HELM") or shutil.which("helm")
    if named:
        return named
    from seatrial.cluster import build

    return str(build.build_helm())


MISSING_DEPENDENCIES = re.compile(r"found in Chart\.yaml, but missing in charts/ directory: ([^\n]+)")


def _render_chart(chart: Path, values: Sequence[Path], notes: list[str] | None) -> list[dict[str, Any]]:
    """``helm template`` with the user's ``--values``, as the chart would be installed."""
    for v in values:
        if not v.is_file():
            raise ConfigError(f"--values {v}: not a file")
    release = re.sub(r"[^a-z0-9-]+", "-", chart.resolve().name.lower()).strip("-")[:53] or "release-name"
    argv = [helm(), "template", release, str(chart), *(a for v in values for a in ("--values", str(v)))]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    missing = MISSING_DEPENDENCIES.search(proc.stderr) if proc.returncode != 0 else None
    if missing:
        # a chart checked out from git has no charts/ until `helm dependency build`: render it
        # without the subcharts that are not there, and say so (vLLM's production stack lists
        # kube-prometheus-stack, switched off by default, and helm refused the whole chart)
        names = [n.strip() for n in missing.group(1).split(",") if n.strip()]
        with tempfile.TemporaryDirectory(prefix="seatrial-chart-") as tmp:
            copy = Path(tmp) / chart.resolve().name
            shutil.copytree(chart, copy, symlinks=True)
            meta = yaml.safe_load((copy / "Chart.yaml").read_text()) or {}
            meta["dependencies"] = [d for d in meta.get("dependencies") or [] if d.get("name") not in names]
            (copy / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
            (copy / "Chart.lock").unlink(missing_ok=True)
            proc = subprocess.run([*argv[:3], str(copy), *argv[4:]], capture_output=True, text=True, check=False)
        if notes is not None and proc.returncode == 0:
            notes.append(
                f"the chart {chart} depends on {', '.join(names)}, not in its charts/ directory: "
                "rendered without them (`helm dependency build` vendors them)"
            )
    if proc.returncode != 0:
        # helm names the template and line, and may quote a value (tpl's "cannot parse template
        # …"): what it quotes is left out, it may be a secret
        said = re.sub(r'"[^"\n]*"', '"…"', proc.stderr.strip())[-1500:]
        raise ConfigError(f"helm could not render the chart {chart}: {said}")
    if len(proc.stdout) > MAX_BYTES:
        raise ConfigError(f"the helm render of {chart} is over {MAX_BYTES // 2**20} MiB; check it in parts")
    return _docs(proc.stdout, f"the helm render of {chart}", notes)


def _included(root: Path) -> set[Path]:
    """The directories a kustomization pulls in (resources, bases, components), resolved."""
    file = _kustomization(root)
    try:
        docs = _parse(file.read_text(), str(file)) if file else []
    except (ConfigError, OSError, UnicodeDecodeError):
        return set()  # kustomize itself will say what is wrong when the root is rendered
    spec = docs[0] if docs else None
    if not isinstance(spec, dict):
        return set()
    out = set()
    for key in ("resources", "bases", "components"):
        entries = spec.get(key)
        for entry in entries if isinstance(entries, list) else []:
            target = (root / str(entry)).resolve()
            if isinstance(entry, str) and "://" not in entry and target.is_dir():
                out.add(target)
    return out


def _tree(
    path: Path, kubectl: str | None, notes: list[str] | None, values: Sequence[Path] = ()
) -> list[dict[str, Any]]:
    """A repository as users have them: kustomize roots anywhere below (each rendered once, unless
    another root includes it), Helm charts (rendered with ``helm template``), plain manifest
    files, and the YAML that is not Kubernetes objects at all (values files, app configs),
    skipped and listed."""
    below = [p for p in path.rglob("*") if not any(part.startswith(".") for part in p.relative_to(path).parts)]
    dirs = [path, *sorted(d for d in below if d.is_dir())]  # hidden ones (.git, .github) are not manifests
    roots = [d.resolve() for d in dirs if _kustomization(d)]
    charts = [d.resolve() for d in dirs if (d / "Chart.yaml").is_file()]
    included = set().union(*(_included(r) for r in roots)) if roots else set()
    owned = set(roots + charts)  # files under these are read through them, never as plain files

    def under(f: Path, tops: set[Path]) -> bool:
        return f in tops or any(p in tops for p in f.parents)

    chart_dirs = set(charts)
    out: list[dict[str, Any]] = []
    for root in roots:
        if root not in included and not under(root, chart_dirs):
            out += _render_kustomize(root, kubectl, notes)
    for chart in charts:
        if not under(chart.parent, chart_dirs):  # a subchart renders with its parent
            out += _render_chart(chart, values, notes)
    skipped: list[str] = []
    unparsable: list[str] = []
    total = 0
    for f in sorted(p for p in below if p.suffix in SUFFIXES and p.is_file()):
        if under(f.resolve(), owned):
            continue
        text = _read(f, total)
        try:
            docs = _parse(text, str(f))
        except ConfigError:
            unparsable.append(str(f.relative_to(path)))
            continue
        if not any(_object_or_list(d) for d in docs):
            skipped.append(str(f.relative_to(path)))  # a values file, an app config, a kind or kubeadm config
            continue
        total += len(text)
        out += _docs(text, str(f), notes)
    if notes is not None:
        for files, what in ((skipped, "are YAML but not Kubernetes objects"), (unparsable, "are not valid YAML")):
            if files:
                shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
                notes.append(f"{len(files)} file(s) in {path} {what}, skipped: {shown}")
    return out


def _object_or_list(d: object) -> bool:
    """A Kubernetes object, or a ``kind: *List`` of them (kube-prometheus' ``RoleList`` has no
    metadata of its own)."""
    if not isinstance(d, dict) or "apiVersion" not in d or "kind" not in d:
        return False
    return "metadata" in d or (str(d["kind"]).endswith("List") and isinstance(d.get("items"), list))


def _deduped(objects: list[dict[str, Any]], notes: list[str] | None) -> list[dict[str, Any]]:
    """One object per identity (group, kind, namespace it lands in, name): the same Deployment in
    three files would triple every finding; the first one read is checked."""
    seen: dict[tuple[str, str, str, str], int] = {}
    out: list[dict[str, Any]] = []
    for o in objects:
        group = str(o.get("apiVersion")).rpartition("/")[0]
        key = (group, str(o["kind"]), str(o["metadata"].get("namespace") or "default"), str(o["metadata"]["name"]))
        if key in seen:
            seen[key] += 1
            continue
        seen[key] = 1
        out.append(o)
    twice = [f"{k[1]}/{k[3]} (defined {n} times)" for k, n in seen.items() if n > 1]
    if twice and notes is not None:
        more = f" and {len(twice) - 5} more" if len(twice) > 5 else ""
        notes.append(f"{len(twice)} object(s) defined more than once, each checked once: {', '.join(twice[:5])}{more}")
    return out


def load(
    path: Path, *, kubectl: str | None = None, notes: list[str] | None = None, values: Sequence[Path] = ()
) -> list[dict[str, Any]]:
    """Objects from a file, a kustomize directory (rendered with kubectl), a Helm chart (rendered
    with helm and ``values``), or a directory tree of those. What is worth a warning but not a
    stop goes to ``notes``."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if not path.is_dir():
        out = _docs(_read(path, 0), str(path), notes)
    elif _kustomization(path):
        out = _render_kustomize(path, kubectl, notes)
    elif (path / "Chart.yaml").is_file():
        out = _render_chart(path, values, notes)
    else:
        out = _tree(path, kubectl, notes, values)
    out = _deduped(out, notes)
    if not out:
        raise ConfigError(f"no Kubernetes objects found in {path}")
    return out
