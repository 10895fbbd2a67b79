"""A typed, read-only view of a stack's objects and of the cluster it runs on, for the rules.

The same view is built from rendered manifests (static mode) and from a cluster's objects (live
mode), so a rule never knows which it is looking at. Workload roles come from the profile when
there is one, else from ``app.kubernetes.io/component`` (the reference stack's convention), else
from the shape of the object (a DaemonSet is a daemon, a Job is batch).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seatrial.checks import crds
from seatrial.checks.model import Ref

GPU = "nvidia.com/gpu"
STORES = (
    "redis|valkey|etcd|postgres|mysql|mariadb|mongo|zookeeper|kafka|rabbitmq|memcached|cassandra"
    "|elasticsearch|opensearch|minio|qdrant|milvus|weaviate"
)
STORE_IMAGE = re.compile(rf"(^|/)({STORES})[^/]*(:|@|$)")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod")
ROLES = ("serving", "gpu-inference", "stateful", "daemon", "batch", "control")
Obj = Mapping[str, Any]


QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?", re.ASCII)
_FACTORS = {
    "": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def quantity(value: Any) -> float:
    """A Kubernetes quantity as a number (bytes or cores), in the API's whole grammar (a sign, a
    decimal exponent, every suffix), so what the schema check accepts is never read as 0 (a GPU
    limit of ``1e0`` hid GPU-002). What is not a quantity reads as 0."""
    if value is None or isinstance(value, bool):
        return 0.0
    m = QUANTITY.fullmatch(str(value))
    if not m:
        return 0.0
    num = float(m.group(1))
    if m.group(2):
        return num * 10.0 ** int(m.group(2))
    return num * _FACTORS[m.group(3) or ""]


@dataclass(frozen=True)
class Container:
    name: str
    spec: Obj
    init: bool = False
    ephemeral: bool = False  # a debug container added to a running pod (kubectl debug)

    @property
    def resources(self) -> Obj:
        return self.spec.get("resources") or {}

    def request(self, name: str) -> Any:
        return (self.resources.get("requests") or {}).get(name)

    def limit(self, name: str) -> Any:
        return (self.resources.get("limits") or {}).get(name)

    @property
    def where(self) -> str:
        kind = "ephemeralContainers" if self.ephemeral else "initContainers" if self.init else "containers"
        return f"{kind}[{self.name}]"


@dataclass(frozen=True)
class Workload:
    obj: Obj
    role: str

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.obj["metadata"].get("namespace") or "")

    @property
    def home(self) -> str:
        return home(self.obj)

    @property
    def ref(self) -> Ref:
        return Ref(self.namespace, self.kind, self.name)

    @property
    def spec(self) -> Obj:
        return self.obj.get("spec") or {}

    @property
    def template(self) -> Obj:
        if self.kind == "Pod":
            return self.obj
        if self.kind == "CronJob":
            return ((self.spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        return self.spec.get("template") or {}

    @property
    def pod(self) -> Obj:
        return self.template.get("spec") or {}

    @property
    def pod_labels(self) -> Mapping[str, str]:
        return (self.template.get("metadata") or {}).get("labels") or {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.obj["metadata"].get("annotations") or {}

    @property
    def replicas(self) -> int | None:
        """Desired pods for replicated kinds; None for kinds without a replica count."""
        if self.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
            r = self.spec.get("replicas")
            return 1 if r is None else int(r)
        return None

    def containers(self, *, init: bool = False, ephemeral: bool = False) -> list[Container]:
        """The pod's containers; with ``init`` its init containers too, and with ``ephemeral``
        the debug containers added to it while it runs (only a live pod has them, and only the
        Pod Security Standards judge them: they ask for no resources and serve nothing)."""
        out = [Container(c.get("name", "?"), c) for c in self.pod.get("containers") or []]
        if init:
            out += [Container(c.get("name", "?"), c, init=True) for c in self.pod.get("initContainers") or []]
        if ephemeral:
            debug = self.pod.get("ephemeralContainers") or []
            out += [Container(c.get("name", "?"), c, ephemeral=True) for c in debug]
        return out

    @property
    def gpus(self) -> int:
        """GPUs one pod asks for (limits win: for extended resources requests must equal them)."""
        total = 0
        for c in self.containers():
            total += int(quantity(c.limit(GPU) or c.request(GPU)))
        return total

    @property
    def tolerations(self) -> list[Obj]:
        return list(self.pod.get("tolerations") or [])

    @property
    def tolerates_gpu_taint(self) -> bool:
        """Tolerates nvidia.com/gpu by key, or every taint (a key-less Exists)."""
        return any(
            t.get("key") == GPU or (t.get("operator") == "Exists" and not t.get("key")) for t in self.tolerations
        )

    def rolling_update(self) -> tuple[int, int] | None:
        """(maxSurge, maxUnavailable) of a Deployment's rolling update, resolved against replicas."""
        if self.kind != "Deployment":
            return None
        strategy = self.spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return None
        ru = strategy.get("rollingUpdate") or {}
        replicas = self.replicas or 1
        return (
            int_or_percent(ru.get("maxSurge", "25%"), replicas, round_up=True),
            int_or_percent(ru.get("maxUnavailable", "25%"), replicas, round_up=False),
        )


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str]
    taints: tuple[Obj, ...]
    gpus: int
    unschedulable: bool = False

    @property
    def zone(self) -> str:
        return self.labels.get("topology.kubernetes.io/zone", "")


@dataclass(frozen=True)
class Facts:
    """The cluster the stack runs on (live: its nodes; static: the assumed cluster)."""

    nodes: tuple[Node, ...] = ()
    source: str = "none"
    model_load_seconds: float = 60.0  # what a GPU-inference startup must survive (profile may set it)
    # never copied by dataclasses.replace (init=False): other nodes, other placements
    _usable: dict[str, tuple[Node, ...]] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def known(self) -> bool:
        return bool(self.nodes)

    def usable(self, w: Workload) -> tuple[Node, ...]:
        """The nodes ``w``'s pods may be scheduled on. Hundreds of workloads ask it of a thousand
        nodes, and they share a handful of placements (the GPU tier, the CPU tier, spot jobs), so
        each placement is worked out once."""
        affinity = ((w.pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        key = json.dumps([w.pod.get("nodeSelector"), affinity, w.tolerations, w.gpus], sort_keys=True, default=str)
        found = self._usable.get(key)
        if found is None:
            found = self._usable[key] = tuple(n for n in self.nodes if schedulable_on(w, n))
        return found


def home(o: Obj) -> str:
    """The namespace an object lands in. One without a namespace lands where kubectl applies it,
    ``default`` unless told otherwise, so for matching (a PDB to its pods, a binding to its
    account) an unset namespace and ``default`` are one place."""
    return str(o["metadata"].get("namespace") or "default")


@dataclass
class Inventory:
    """The objects, indexed once by kind and by namespace: a rule that looks up an object's
    neighbours (its PDBs, its ServiceAccount, its HPA) must cost the same per object at 100 or
    100,000 objects. A scan of every object per workload made SEC-004 grow as n^2.7."""

    objects: Sequence[Obj]
    roles: Mapping[str, str] = field(default_factory=dict)  # "kind/name" -> role, from a profile
    asked: set[str] = field(default_factory=set, compare=False)  # the kinds some rule has read

    @functools.cached_property
    def _by_kind(self) -> dict[str, list[Obj]]:
        out: dict[str, list[Obj]] = {}
        for o in self.objects:
            out.setdefault(str(o.get("kind")), []).append(o)
        return out

    @functools.cached_property
    def _by_home(self) -> dict[tuple[str, str], list[Obj]]:
        out: dict[tuple[str, str], list[Obj]] = {}
        for o in self.objects:
            out.setdefault((str(o.get("kind")), home(o)), []).append(o)
        return out

    def of(self, *kinds: str) -> list[Obj]:
        self.asked.update(kinds)
        return [o for k in kinds for o in self._by_kind.get(k, ())]

    def managed_namespaces(self) -> set[str]:
        """Namespaces whose own settings are in the input: their Namespace object, or a
        NetworkPolicy, ResourceQuota or LimitRange in them. Namespace-wide rules (default-deny, a
        GPU quota) judge only these: a file with one Deployment says nothing of its namespace."""
        names = {str(o["metadata"]["name"]) for o in self.of("Namespace")}
        # LimitRanges only mark a namespace as managed; no rule reads them, so they stay "not checked"
        settings = [*self.of("NetworkPolicy", "ResourceQuota"), *self._by_kind.get("LimitRange", ())]
        return names | {home(o) for o in settings}

    def beside(self, kind: str, o: Obj) -> list[Obj]:
        """The objects of ``kind`` in the namespace ``o`` lands in."""
        self.asked.add(kind)
        return self._by_home.get((kind, home(o)), [])

    @functools.cached_property
    def workloads(self) -> list[Workload]:
        """Workloads, and the pod templates of the custom resources ML teams run (``crds``)."""
        out = [Workload(o, self._role(o)) for o in self.of(*WORKLOAD_KINDS) if not _owned(o)]
        for o in self.of(*crds.KINDS):
            for stand_in in crds.stand_ins(o):
                w = Workload(stand_in, self._role(stand_in))
                out.append(w if w.role != "other" else Workload(stand_in, crds.role(w.kind, w.gpus)))
        return out

    @functools.cached_property
    def homes(self) -> frozenset[str]:
        """The namespaces the objects land in."""
        return frozenset(ns for _, ns in self._by_home)

    def unchecked(self) -> dict[str, int]:
        """Kind -> count of the objects no rule read, once the rules have run. Recorded from what
        the rules asked for, so the list cannot drift from the catalogue: a file of RayClusters
        must say that nothing in it was checked, not pass in silence."""
        return {k: len(v) for k, v in sorted(self._by_kind.items()) if k not in self.asked}

    def unchecked_summary(self) -> tuple[str, str, bool] | None:
        """What no rule read as ``("2 object(s) of 1 kind(s)", "Prometheus (2)", everything)``,
        ``everything`` saying nothing was judged at all; None when the rules read everything."""
        unchecked = self.unchecked()
        if not unchecked:
            return None
        count = sum(unchecked.values())
        kinds = ", ".join(f"{k} ({n})" for k, n in unchecked.items())
        return f"{count} object(s) of {len(unchecked)} kind(s)", kinds, count == len(self.objects)

    def _role(self, o: Obj) -> str:
        key = f"{o['kind']}/{o['metadata']['name']}"
        if key in self.roles:
            return self.roles[key]
        tmpl_labels = ((o.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
        component = (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component") or tmpl_labels.get(
            "app.kubernetes.io/component"
        )
        return str(component) if component in ROLES else _shape_role(o)

    def hpa_for(self, w: Workload) -> Obj | None:
        """The HorizontalPodAutoscaler that scales ``w``, if any."""
        return self._hpas.get((w.home, w.kind, w.name))

    @functools.cached_property
    def _hpas(self) -> dict[tuple[str, str, str], Obj]:
        out: dict[tuple[str, str, str], Obj] = {}
        for hpa in self.of("HorizontalPodAutoscaler"):
            target = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
            out.setdefault((home(hpa), str(target.get("kind")), str(target.get("name"))), hpa)
        return out

    def named(self, kind: str, o: Obj, name: str) -> Obj | None:
        """The object of ``kind`` called ``name`` in the namespace ``o`` lands in."""
        self.asked.add(kind)
        return self._named.get((kind, home(o), name))

    @functools.cached_property
    def _named(self) -> dict[tuple[str, str, str], Obj]:
        out: dict[tuple[str, str, str], Obj] = {}
        for o in self.objects:
            out.setdefault((str(o.get("kind")), home(o), str(o["metadata"].get("name"))), o)
        return out

    def pdbs_for(self, w: Workload) -> list[Obj]:
        """The PodDisruptionBudgets whose selector matches ``w``'s pods: only the budgets that
        share one of its labels (or select by expressions alone) are tried, so a namespace of
        thousands of workloads and budgets costs each workload its own few."""
        self.asked.add("PodDisruptionBudget")
        by_label, by_expression = self._pdb_index
        seen: dict[int, Obj] = {id(p): p for p in by_expression.get(w.home, [])}
        for k, v in w.pod_labels.items():
            seen |= {id(p): p for p in by_label.get((w.home, k, str(v)), [])}
        return [p for p in seen.values() if selector_matches((p.get("spec") or {}).get("selector"), w.pod_labels)]

    @functools.cached_property
    def _pdb_index(self) -> tuple[dict[tuple[str, str, str], list[Obj]], dict[str, list[Obj]]]:
        by_label: dict[tuple[str, str, str], list[Obj]] = {}
        by_expression: dict[str, list[Obj]] = {}
        for p in self.of("PodDisruptionBudget"):
            labels = ((p.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            if labels:
                k, v = next(iter(labels.items()))  # any one of them must match: one key is enough
                by_label.setdefault((home(p), str(k), str(v)), []).append(p)
            else:
                by_expression.setdefault(home(p), []).append(p)
        return by_label, by_expression

    def namespaces(self) -> set[str]:
        return {str(o["metadata"].get("namespace") or "") for o in self.objects if o.get("kind") != "Namespace"}


def ref_of(o: Obj) -> Ref:
    return Ref(str(o["metadata"].get("namespace") or ""), str(o["kind"]), str(o["metadata"]["name"]))


# inference servers that serve from a GPU unless told otherwise (a CPU build, --device cpu)
GPU_SERVER_IMAGE = re.compile(
    r"(^|/)(vllm-openai|vllm|text-generation-inference|tritonserver|sglang|tensorrt-llm|lmdeploy)(:|@|$)"
    r"|llama\.cpp:[^/]*(cuda|rocm)|ollama:[^/]*(cuda|rocm)"
)


def _gpu_server(c: Obj) -> bool:
    image = str(c.get("image") or "")
    words = " ".join(str(a) for a in [*(c.get("command") or []), *(c.get("args") or [])])
    cpu = "cpu" in image.rsplit(":", 1)[-1].lower() or re.search(r"--device[= ]cpu\b", words)
    return bool(GPU_SERVER_IMAGE.search(image)) and not cpu


def _shape_role(o: Obj) -> str:
    """A workload's role when nothing names it: from its kind, its flags and its image."""
    containers = (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    if o["kind"] == "DaemonSet":
        return "daemon"
    if _leader_elected(o):
        return "control"
    if o["kind"] in ("Deployment", "StatefulSet") and any(STORE_IMAGE.search(str(c.get("image"))) for c in containers):
        return "stateful"
    if o["kind"] in ("Deployment", "StatefulSet") and any(_gpu_server(c) for c in containers):
        return "gpu-inference"
    if o["kind"] in ("Job", "CronJob"):
        return "batch"
    return "serving" if o["kind"] in ("Deployment", "StatefulSet") else "other"


LEADER_FLAGS = re.compile(r"^--(leader-elect|enable-leader-election|leader-election)(=true)?$")


def _leader_elected(o: Obj) -> bool:
    """A controller that elects a leader (``--leader-elect``) runs one active replica by design:
    not a single-replica server."""
    pod = (((o.get("spec") or {}).get("template") or {}).get("spec")) or {}
    return any(
        LEADER_FLAGS.match(str(arg))
        for c in pod.get("containers") or []
        for arg in [*(c.get("command") or []), *(c.get("args") or [])]
    )


def _owned(o: Obj) -> bool:
    """Pods and ReplicaSets made by a controller are judged through their owner."""
    return bool(o["metadata"].get("ownerReferences")) and o["kind"] in ("Pod", "ReplicaSet", "Job")


def _expr_ok(op: str | None, have: str | None, values: list[str]) -> bool:
    """One matchExpression (label or node selector) against the value a label has, if any."""
    ok = {
        "In": have in values,
        "NotIn": have not in values,
        "Exists": have is not None,
        "DoesNotExist": have is None,
    }
    if op in ok:
        return ok[op]
    if op in ("Gt", "Lt") and have is not None and have.lstrip("-").isdigit() and values:
        return int(have) > int(values[0]) if op == "Gt" else int(have) < int(values[0])
    return False


def selector_matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; an empty one matches all."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(
        _expr_ok(e.get("operator"), labels.get(e.get("key", "")), [str(v) for v in e.get("values") or []])
        for e in selector.get("matchExpressions") or []
    )


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and str(t.get("value") or "") == str(taint.get("value") or ""):
            return True
    return False


def _term_matches(term: Obj, labels: Mapping[str, str]) -> bool:
    return all(
        _expr_ok(e.get("operator"), labels.get(e.get("key", "")), [str(v) for v in e.get("values") or []])
        for e in term.get("matchExpressions") or []
    )


def node_selected(w: Workload, node: Node) -> bool:
    """Whether the pod's nodeSelector and required node affinity admit the node (taints aside)."""
    for k, v in (w.pod.get("nodeSelector") or {}).items():
        if node.labels.get(k) != v:
            return False
    required = (((w.pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}).get("nodeSelectorTerms")  # fmt: skip
    if required:
        return any(_term_matches(t, node.labels) for t in required)
    return True


def schedulable_on(w: Workload, node: Node) -> bool:
    """Selectors, required affinity, taints (NoSchedule/NoExecute) and GPU count all admit it."""
    if node.unschedulable or not node_selected(w, node):
        return False
    hard = [t for t in node.taints if t.get("effect") in ("NoSchedule", "NoExecute")]
    if not all(tolerates(w.tolerations, t) for t in hard):
        return False
    return w.gpus <= node.gpus if w.gpus else True


def int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    """maxSurge/maxUnavailable/minAvailable: an int, or a percentage of ``total``."""
    if value is None:
        return 0
    s = str(value)
    if s.endswith("%"):
        pct = float(s[:-1]) / 100 * total
        return int(-(-pct // 1)) if round_up else int(pct // 1)
    return int(s)
