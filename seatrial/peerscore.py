"""Recall and precision against a hand-labelled public set: what each tool found, in one language.

The public manifests in ``tests/public`` were labelled by reading them, before any tool ran
(``tests/public/POLICY.md``): each problem is an object and a family (``no-requests``,
``privileged`` …). Each tool's findings are brought to the same pairs here, through a table from
its check names to those families, and scored: recall is the share of labelled problems a tool
named, strict precision the share of its (object, family) pairs that are labelled problems. A
finding whose check maps to no family (a CPU limit, a NetworkPolicy, a read-only root
filesystem) is a pair of its own and counts against precision: the user had to read it too.

Pure functions over the tools' JSON; the bench runs the tools (``staticbench``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seatrial.errors import ConfigError

FAMILIES = (
    "api-removed", "selector", "mutable-image", "no-requests", "no-memory-limit", "gpu-resources",
    "gpu-missing", "gpu-toleration", "no-readiness", "probes-identical", "no-graceful-shutdown",
    "rollout-capacity", "single-replica", "no-pdb", "no-spread", "pdb-blocks", "stateful-no-pvc",
    "secret-literal", "secret-object", "exposed", "privileged", "host-access", "capabilities",
    "not-hardened", "token-automount",
)  # fmt: skip

Pair = tuple[str, str, str]  # file, "Kind/name", family (or "other:<check>")

# seatrial's checks; "" where the message decides (below)
SEATRIAL: Mapping[str, str] = {
    "API-001": "api-removed", "API-002": "selector",
    "GPU-001": "gpu-resources", "GPU-002": "gpu-toleration", "GPU-004": "gpu-missing",
    "GPU-007": "rollout-capacity", "GPU-011": "gpu-toleration",
    "NET-001": "exposed",
    "PDB-001": "no-pdb", "PDB-003": "pdb-blocks", "PDB-004": "pdb-blocks",
    "PSS-001": "", "PSS-002": "not-hardened",
    "RES-001": "no-requests", "RES-002": "no-memory-limit", "RES-003": "no-requests+no-memory-limit",
    "ROLL-001": "rollout-capacity", "ROLL-002": "rollout-capacity", "ROLL-003": "rollout-capacity",
    "ROLL-004": "", "ROLL-006": "no-graceful-shutdown", "ROLL-007": "mutable-image",
    "SEC-001": "secret-literal", "SEC-002": "secret-literal", "SEC-003": "secret-object",
    "SEC-004": "token-automount", "SEC-006": "secret-literal", "SEC-008": "secret-literal",
    "SEC-009": "secret-literal", "SEC-010": "secret-literal",
    "SPREAD-001": "no-spread", "SPREAD-003": "single-replica",
    "STATE-001": "stateful-no-pvc", "STATE-002": "pdb-blocks",
}  # fmt: skip

KUBE_SCORE: Mapping[str, str] = {
    "container-image-tag": "mutable-image",
    "statefulset-has-poddisruptionbudget": "no-pdb", "deployment-has-poddisruptionbudget": "no-pdb",
    "pod-probes": "", "pod-probes-identical": "probes-identical",
    "container-security-context-user-group-id": "not-hardened", "container-seccomp-profile": "not-hardened",
    "container-security-context-privileged": "privileged",
    "service-type": "exposed", "stable-version": "api-removed",
    "deployment-has-host-podantiaffinity": "no-spread", "statefulset-has-host-podantiaffinity": "no-spread",
    "pod-topology-spread-constraints": "no-spread",
    "deployment-pod-selector-labels-match-template-metadata-labels": "selector",
    "statefulset-pod-selector-labels-match-template-metadata-labels": "selector",
    "deployment-strategy": "rollout-capacity", "deployment-replicas": "single-replica",
    "container-resources": "",
}  # fmt: skip

KUBE_LINTER: Mapping[str, str] = {
    "latest-tag": "mutable-image", "no-readiness-probe": "no-readiness",
    "unset-cpu-requirements": "no-requests", "unset-memory-requirements": "",
    "run-as-non-root": "not-hardened", "privilege-escalation-container": "",
    "unsafe-sysctls": "not-hardened",
    "drop-net-raw-capability": "not-hardened",
    "privileged-container": "privileged",
    "host-network": "host-access", "host-pid": "host-access", "host-ipc": "host-access",
    "sensitive-host-mounts": "host-access", "docker-sock": "host-access", "writable-host-mount": "host-access",
    "unsafe-proc-mount": "not-hardened",  # as seatrial's "unmasks /proc": a baseline control, no host access
    "no-anti-affinity": "no-spread", "mismatching-selector": "selector", "no-extensions-v1beta": "api-removed",
    "exposed-services": "exposed", "env-var-secret": "secret-literal",
    "minimum-three-replicas": "single-replica", "no-rolling-update-strategy": "rollout-capacity",
    "pdb-max-unavailable": "pdb-blocks", "pdb-min-available": "pdb-blocks",
}  # fmt: skip


# The checks that name several families, told apart by what they say: the first rule whose
# words the message holds ("" holds always).
BY_MESSAGE: Mapping[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "PSS-001": ((("privileged",), "privileged"),
                (("shares the node", "mounts the node", "binds host port"), "host-access"),
                (("adds ",), "capabilities"), (("",), "not-hardened")),
    "ROLL-004": ((("same", "identical"), "probes-identical"), (("readiness",), "no-readiness")),
    "pod-probes": ((("same", "identical"), "probes-identical"), (("readiness",), "no-readiness")),
    "container-resources": ((("memory limit",), "no-memory-limit"), (("request",), "no-requests")),  # kube-score
    "unset-memory-requirements": ((("limit",), "no-memory-limit"), (("",), "no-requests")),  # kube-linter
    "privilege-escalation-container": ((("sys_admin",), "capabilities"), (("privileged",), "privileged"),
                                       (("",), "not-hardened")),  # kube-linter: three messages
}  # fmt: skip


def _by_message(check: str, message: str) -> str:
    m = message.lower()
    for words, fam in BY_MESSAGE.get(check, ()):
        if any(w in m for w in words):
            return fam
    return f"other:{check}"


def families(table: Mapping[str, str], check: str, message: str = "") -> list[str]:
    """The families a finding names (``a+b``: a BestEffort pod has neither requests nor a limit)."""
    mapped = table.get(check)
    if mapped is None:
        return [f"other:{check}"]
    return (mapped or _by_message(check, message)).split("+")


def _ref(kind: str, name: str) -> str:
    return f"{kind}/{name}"


def _kind_name(target: str) -> str:
    """``ns/Kind/name`` or ``ns/Kind/name/template`` (a custom resource's pod template, e.g. a
    RayService's worker group) as ``Kind/name``: the kind is the first part with a capital (a
    namespace never has one)."""
    parts = target.split("/")
    i = next((k for k, p in enumerate(parts) if p[:1].isupper()), 0)
    return "/".join(parts[i : i + 2])


def from_seatrial(out: str, files: Mapping[str, str]) -> set[Pair]:
    """``seatrial check --json``; ``files`` maps each path as given to the file's name."""
    pairs: set[Pair] = set()
    for p in json.loads(out or "{}").get("paths") or []:
        name = files.get(p["path"], Path(p["path"]).name)
        for f in p.get("findings") or []:
            ref = _kind_name(str(f["target"]))
            pairs.update((name, ref, fam) for fam in families(SEATRIAL, f["check"], f.get("message", "")))
    return pairs


def from_kube_score(out: str) -> set[Pair]:
    """``kube-score score -o json``: a check graded below 10 and not skipped, per comment."""
    pairs: set[Pair] = set()
    for obj in json.loads(out or "[]") or []:
        name = Path(str(obj.get("file_name", ""))).name
        ref = _ref(obj["type_meta"]["kind"], obj["object_meta"]["name"])
        for c in obj.get("checks") or []:
            if c.get("skipped") or c.get("grade", 10) >= 10:
                continue
            check = c["check"]["id"]
            for comment in c.get("comments") or [{"summary": ""}]:
                pairs.update((name, ref, fam) for fam in families(KUBE_SCORE, check, str(comment.get("summary", ""))))
    return pairs


def from_kube_linter(out: str) -> set[Pair]:
    """``kube-linter lint --format json``: one report per check, object and container."""
    pairs: set[Pair] = set()
    for r in json.loads(out or "{}").get("Reports") or []:
        obj = r["Object"]
        k8s = obj["K8sObject"]
        name = Path(str(obj["Metadata"]["FilePath"])).name
        ref = _ref(k8s["GroupVersionKind"]["Kind"], k8s["Name"])
        pairs.update((name, ref, fam) for fam in families(KUBE_LINTER, r["Check"], r["Diagnostic"]["Message"]))
    return pairs


def public_files(public: Path) -> list[Path]:
    """The manifests of the public set: every YAML file beside ``truth.yaml``."""
    return sorted(f for f in public.glob("*.yaml") if f.name != "truth.yaml")


def load_truth(path: Path) -> set[Pair]:
    """``truth.yaml``: per file, its problems as ``{object, family, where, why}``."""
    doc = yaml.safe_load(path.read_text()) or {}
    pairs: set[Pair] = set()
    for name, problems in doc.items():
        for i, p in enumerate(problems or []):
            if not isinstance(p, dict) or "object" not in p:
                raise ConfigError(f"{path}: {name} problem {i + 1}: expected {{object, family, where, why}}")
            if p.get("family") not in FAMILIES:
                raise ConfigError(f"{path}: {name} problem {i + 1}: unknown family {p.get('family')!r}")
            pairs.add((str(name), str(p["object"]), str(p["family"])))
    return pairs


@dataclass(frozen=True)
class Score:
    """One tool on the public set: labelled problems it named, and the pairs it reported."""

    found: int  # labelled problems the tool named
    labelled: int
    pairs: int  # distinct (object, family) pairs the tool reported
    right: int  # of those, labelled problems

    @property
    def recall(self) -> float:
        return self.found / self.labelled if self.labelled else 0.0

    @property
    def precision(self) -> float:
        return self.right / self.pairs if self.pairs else 0.0


def score(reported: Iterable[Pair], truth: set[Pair]) -> Score:
    """How a tool's pairs meet the labelled ones (each pair counted once, however often said)."""
    got = set(reported)
    hits = got & truth
    return Score(len(hits), len(truth), len(got), len(hits))


def misses(reported: Iterable[Pair], truth: set[Pair]) -> dict[str, int]:
    """Labelled problems not named, counted per family: where a tool is blind."""
    out: dict[str, int] = {}
    for _, _, fam in truth - set(reported):
        out[fam] = out.get(fam, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def wolves(reported: Iterable[Pair], truth: set[Pair]) -> dict[str, int]:
    """Reported pairs that are no labelled problem, per family or check: where it cries wolf."""
    out: dict[str, int] = {}
    for _, _, fam in set(reported) - truth:
        out[fam] = out.get(fam, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def as_dict(s: Score) -> dict[str, Any]:
    """For JSON reports and assertion messages."""
    return {"found": s.found, "labelled": s.labelled, "pairs": s.pairs, "right": s.right,
            "recall": round(s.recall, 3), "precision": round(s.precision, 3)}  # fmt: skip
