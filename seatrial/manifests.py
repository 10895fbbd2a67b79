"""Reading a user's manifests for static checks: files, directories, or kustomize directories.

Every problem names the file (and the document in it) and stops the run with exit 2; nothing is
half-read."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from seatrial.errors import ConfigError, yaml_problem

SUFFIXES = (".yaml", ".yml", ".json")


def _docs(text: str, where: str) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {yaml_problem(exc)}") from None
    out: list[dict[str, Any]] = []
    for i, d in enumerate(docs):
        if d is None:
            continue
        if not isinstance(d, dict):
            raise ConfigError(f"{where}, document {i + 1}: expected a Kubernetes object, got {type(d).__name__}")
        if d.get("kind") == "List":
            out += [x for x in d.get("items") or [] if isinstance(x, dict)]
            continue
        if not d.get("kind") or not d.get("apiVersion") or not (d.get("metadata") or {}).get("name"):
            raise ConfigError(
                f"{where}, document {i + 1}: a Kubernetes object needs apiVersion, kind and metadata.name"
            )
        out.append(d)
    return out


def load(path: Path, *, kubectl: str | None = None) -> list[dict[str, Any]]:
    """Objects from a file, a directory of files, or a kustomize directory (rendered with kubectl)."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    if path.is_dir() and any((path / k).exists() for k in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
        if kubectl is None:
            from seatrial.stack import kubectl as find_kubectl

            kubectl = find_kubectl()
        proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ConfigError(f"kustomize could not render {path}: {proc.stderr.strip()}")
        return _docs(proc.stdout, f"the kustomize render of {path}")
    files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES) if path.is_dir() else [path]
    out: list[dict[str, Any]] = []
    for f in files:
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {f}: {exc}") from None
        out += _docs(text, str(f))
    if not out:
        raise ConfigError(f"no Kubernetes objects found in {path}")
    return out
