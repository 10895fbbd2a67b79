"""GPU scheduling: GPU pods ask for GPUs the way the scheduler counts them, can reach the GPU
nodes, stay off CPU nodes, keep CPU pods off GPU nodes, and fit the GPUs the cluster has."""

from __future__ import annotations

import re
from collections.abc import Iterator

from seatrial.checks.inventory import GPU, Facts, Inventory, Node, Workload, home, node_selected, tolerates
from seatrial.checks.inventory import quantity as q
from seatrial.checks.model import Finding, Ref, Skip
from seatrial.checks.registry import check

GPU_NODE_LABELS = (
    "nvidia.com/gpu.present",
    "nvidia.com/gpu.product",
    "nvidia.com/gpu.count",
    "cloud.google.com/gke-accelerator",
    "node.kubernetes.io/instance-type",
)


def _selected_keys(w: Workload) -> set[str]:
    """The node labels a pod's nodeSelector and required node affinity ask for."""
    keys = set(w.pod.get("nodeSelector") or {})
    terms = (((w.pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []  # fmt: skip
    for t in terms:
        keys |= {e.get("key") for e in t.get("matchExpressions") or [] if e.get("operator") in ("In", "Exists")}
    return keys


def _max_pods(w: Workload, inv: Inventory) -> int:
    """Replicas at the top of the HPA's range, if an HPA scales the workload."""
    hpa = inv.hpa_for(w)
    return max(w.replicas or 1, int(hpa["spec"].get("maxReplicas") or 0) if hpa else 0)


@check(
    "GPU-001",
    "GPUs are requested in limits, with requests equal to limits",
    family="gpu",
    severity="high",
    why="The scheduler counts nvidia.com/gpu from limits; a request without a limit is rejected by "
    "the API server, and a limit without a matching request silently becomes one of another size.",
    fix="Set resources.limits['nvidia.com/gpu'] and, if you set requests, the same number there.",
)
def gpu_in_limits(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        for c in w.containers(init=True):
            req, lim = c.request(GPU), c.limit(GPU)
            if req is not None and lim is None:
                yield Finding("GPU-001", w.ref, c.where, f"requests {req} {GPU} but sets no limit")
            elif req is not None and q(req) != q(lim):
                yield Finding("GPU-001", w.ref, c.where, f"requests {req} {GPU} but limits {lim}")


@check(
    "GPU-002",
    "GPU pods tolerate the taints of the GPU nodes they target",
    family="gpu",
    severity="critical",
    why="GPU nodes are tainted (nvidia.com/gpu:NoSchedule) so CPU pods stay off; a GPU pod that does "
    "not tolerate the taints waits Pending forever while the GPUs sit idle.",
    fix="Add tolerations for every NoSchedule/NoExecute taint of the GPU nodes (e.g. key nvidia.com/gpu, "
    "operator Exists).",
)
def gpu_tolerations(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    gpu_nodes = [n for n in facts.nodes if n.gpus > 0]
    _judged_only_with_nodes(inv, facts)
    for w in inv.workloads:
        if not w.gpus:
            continue
        if gpu_nodes:
            targeted = [n for n in gpu_nodes if node_selected(w, n) and n.gpus >= w.gpus]
            if not targeted:
                yield Finding(
                    "GPU-002", w.ref, "spec.affinity", f"no GPU node with {w.gpus} GPUs matches its node selection"
                )
            elif not {n.name for n in targeted} & {n.name for n in facts.usable(w)}:
                taints = sorted({f"{t['key']}:{t['effect']}" for n in targeted for t in n.taints})
                yield Finding(
                    "GPU-002", w.ref, "spec.tolerations", f"tolerates none of the GPU nodes' taints {', '.join(taints)}"
                )


@check(
    "GPU-003",
    "GPU pods are pinned to the GPU models they were sized for",
    family="gpu",
    severity="medium",
    why="On a cluster with more than one GPU model, a pod that names no model lands on whichever "
    "has room: a model sized for 80 GB meets a 24 GB card and fails to load.",
    fix="Select the model in nodeSelector or required node affinity: nvidia.com/gpu.product (In, "
    "with every model it was sized for), or the cloud's accelerator label.",
)
def gpu_pinned(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    """Judged against the nodes (live or ``--pools``): the models of the GPU nodes the pod's
    selectors and tolerations let it use, when it selects no model label. The GPU request alone
    already keeps it on GPU nodes, so without nodes there is nothing to say (on 25 public
    manifests, 11 of 11 findings of the old "no GPU node label" rule were that guess). A pod that
    names its models (``In`` two of them) chose them."""
    _judged_only_with_nodes(inv, facts)
    for w in inv.workloads:
        if not w.gpus or _selected_keys(w) & set(MODEL_LABELS):
            continue
        models = sorted({_model(n) for n in facts.usable(w) if n.gpus >= w.gpus})
        if len(models) > 1:
            yield Finding(
                "GPU-003",
                w.ref,
                "spec.affinity",
                f"names no GPU model and can land on any of {', '.join(models)}",
            )


def _judged_only_with_nodes(inv: Inventory, facts: Facts) -> None:
    """GPU placement needs the nodes: say so rather than pass what was never judged. Whether the
    GPU nodes are tainted, whether the cluster adds the toleration itself (GKE's
    ExtendedResourceToleration admission does) and how many GPU models it has, the manifests do
    not show; on 25 public manifests the guesses were wrong 20 times in 20."""
    if not facts.known and any(w.gpus for w in inv.workloads):
        raise Skip("GPU placement is judged against nodes: give --pools, or run live")


# node labels that name a GPU model: GPU Feature Discovery's, GKE's, and the instance type that
# implies one (AKS and EKS nodes without GFD)
MODEL_LABELS = ("nvidia.com/gpu.product", "cloud.google.com/gke-accelerator", "node.kubernetes.io/instance-type")


def _model(n: Node) -> str:
    return next((n.labels[k] for k in MODEL_LABELS if n.labels.get(k)), "unlabelled")


@check(
    "GPU-004",
    "GPU-tier workloads request a GPU",
    family="gpu",
    severity="high",
    why="An inference workload without a GPU request is scheduled anywhere and serves from CPU at a "
    "fraction of the throughput — or shares a GPU nobody accounted for.",
    fix="Request nvidia.com/gpu in the container's limits (and requests).",
)
def gpu_tier_requests(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if w.role == "gpu-inference" and not w.gpus:
            yield Finding("GPU-004", w.ref, "resources.limits", f"has role gpu-inference but requests no {GPU}")


@check(
    "GPU-005",
    "Pods without GPUs stay off GPU nodes",
    family="gpu",
    severity="medium",
    why="A CPU pod that tolerates the GPU taint takes CPU and memory on expensive GPU nodes and can "
    "block a GPU pod from fitting there.",
    fix="Drop the nvidia.com/gpu (or blanket) toleration from pods that request no GPU; node agents "
    "belong in DaemonSets.",
)
def cpu_pods_off_gpu_nodes(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    gpu_nodes = [n for n in facts.nodes if n.gpus > 0]
    for w in inv.workloads:
        if w.gpus or w.kind == "DaemonSet" or w.role in ("daemon", "gpu-inference"):  # GPU-004 covers the last
            continue
        if gpu_nodes:
            landing = [n.name for n in facts.usable(w) if n.gpus > 0]
            if landing:
                yield Finding(
                    "GPU-005",
                    w.ref,
                    "spec.tolerations",
                    f"requests no GPU but may be scheduled on GPU nodes ({landing[0]}, …)",
                )
        elif w.tolerates_gpu_taint:
            yield Finding("GPU-005", w.ref, "spec.tolerations", f"requests no GPU but tolerates the {GPU} taint")


@check(
    "GPU-006",
    "GPU workloads fit the GPUs they can use",
    family="gpu",
    severity="high",
    why="HPA maxReplicas (or replicas) x GPUs per pod beyond the allocatable GPUs of the nodes the pod "
    "may use means scale-out stalls Pending exactly when load peaks.",
    fix="Lower maxReplicas, widen the node affinity to more GPU nodes, or add GPU capacity "
    "(and the autoscaler's node-group limit).",
)
def gpu_capacity(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    if not facts.known:
        return
    for w in inv.workloads:
        if not w.gpus or w.replicas is None:
            continue
        usable = list(facts.usable(w))
        if not usable:
            continue  # nowhere to run at all: GPU-002 names the cause
        capacity = sum(n.gpus // w.gpus for n in usable) * w.gpus
        want = _max_pods(w, inv) * w.gpus
        if want > capacity:
            yield Finding(
                "GPU-006",
                w.ref,
                "spec.replicas",
                f"may need {want} GPUs ({_max_pods(w, inv)} pods x {w.gpus}) but the {len(usable)} nodes it can use "
                f"hold {capacity}",
            )


@check(
    "GPU-007",
    "A GPU Deployment's rolling update has a GPU for its surge pod",
    family="gpu",
    severity="medium",
    why="With maxSurge ≥ 1 the new pod starts before an old one stops; if every usable GPU is taken, "
    "the rollout hangs with the surge pod Pending.",
    fix="Keep one pod's worth of GPUs free on usable nodes, or use maxSurge 0 with maxUnavailable 1 "
    "(and a PDB that allows it).",
)
def gpu_surge(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    if not facts.known:
        return
    for w in inv.workloads:
        if w.kind != "Deployment" or not w.gpus or w.replicas is None:
            continue
        rolling = w.rolling_update()
        if rolling is None or rolling[0] < 1:
            continue
        surge = rolling[0]
        usable = list(facts.usable(w))
        capacity = sum(n.gpus // w.gpus for n in usable)
        if usable and w.replicas + surge > capacity:  # no usable node at all: GPU-002 says so
            yield Finding(
                "GPU-007",
                w.ref,
                "spec.strategy",
                f"{w.replicas} pods + {surge} surge need {(w.replicas + surge) * w.gpus} GPUs; usable nodes fit "
                f"{capacity} pods",
            )


@check(
    "GPU-008",
    "Namespaces running GPU workloads have a GPU quota",
    family="gpu",
    severity="low",
    why="Without a ResourceQuota on requests.nvidia.com/gpu one team's scale-out can take every GPU in the cluster.",
    fix="Add a ResourceQuota with hard requests.nvidia.com/gpu sized for the namespace.",
)
def gpu_quota(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    quota_ns = {
        home(o) for o in inv.of("ResourceQuota") if f"requests.{GPU}" in ((o.get("spec") or {}).get("hard") or {})
    }
    managed = inv.managed_namespaces()
    for w in inv.workloads:
        if w.gpus and w.home in managed and w.home not in quota_ns:
            yield Finding(
                "GPU-008",
                Ref("", "Namespace", w.home),
                "ResourceQuota",
                f"runs GPU pods ({w.kind}/{w.name}) with no requests.{GPU} quota",
            )
            quota_ns.add(w.home)  # once per namespace


GPU_AGENT_IMAGE = re.compile(
    r"k8s-device-plugin|gpu-feature-discovery|dcgm-exporter|nvidia/driver|container-toolkit|mig-manager"
    r"|gpu-operator-validator|nvidia-device-plugin"
)


def gpu_agent(w: Workload) -> bool:
    """A DaemonSet meant for the GPU nodes: an NVIDIA agent by its image, or any DaemonSet pinned
    to GPU nodes by a GPU node label."""
    if w.kind != "DaemonSet":
        return False
    images = " ".join(str(c.spec.get("image", "")) for c in w.containers())
    return bool(GPU_AGENT_IMAGE.search(images)) or bool(_selected_keys(w) & set(GPU_NODE_LABELS))


# the condition taints the DaemonSet controller tolerates for its pods on its own
DAEMONSET_TOLERATED = {
    f"node.kubernetes.io/{c}"
    for c in ("not-ready", "unreachable", "disk-pressure", "memory-pressure", "pid-pressure", "unschedulable",
              "network-unavailable")
}  # fmt: skip


def _untolerated(w: Workload, n: Node) -> set[str]:
    """The NoSchedule/NoExecute taints of ``n`` that keep ``w``'s pods off it. A DaemonSet's pods
    tolerate the control plane's condition taints (not-ready, unreachable, unschedulable …) on
    their own: the DaemonSet controller adds those tolerations."""
    return {
        f"{t['key']}:{t['effect']}"
        for t in n.taints
        if t.get("effect") in ("NoSchedule", "NoExecute")
        and not (w.kind == "DaemonSet" and t["key"] in DAEMONSET_TOLERATED)
        and not tolerates(w.tolerations, {"key": t["key"], "value": str(t.get("value") or ""), "effect": t["effect"]})
    }


@check(
    "GPU-011",
    "GPU node agents tolerate the GPU nodes' taints",
    family="gpu",
    severity="critical",
    why="The device plugin, GPU Feature Discovery, DCGM exporter and node agents run on the GPU nodes "
    "only if they tolerate those nodes' taints; a device plugin that does not never advertises a GPU, "
    "so every GPU pod waits Pending. A toleration of one cloud's taint does not carry to another's.",
    fix="Tolerate every NoSchedule/NoExecute taint of the GPU nodes (key nvidia.com/gpu, operator Exists; "
    "and the cloud's own, such as kubernetes.azure.com/scalesetpriority on Azure spot pools).",
)
def gpu_agents_reach_gpu_nodes(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    gpu_nodes = [n for n in facts.nodes if n.gpus > 0]
    for w in inv.workloads:
        if not gpu_agent(w):
            continue
        if gpu_nodes:
            # every GPU node it targets, pool by pool: a device plugin that cannot reach the spot
            # pool (Azure's scalesetpriority taint) leaves that pool's GPUs unadvertised
            targeted = [n for n in gpu_nodes if node_selected(w, n)] or gpu_nodes
            carriers: dict[str, list[str]] = {}  # untolerated taint -> the targeted nodes with it
            for n in targeted:
                for taint in _untolerated(w, n):
                    carriers.setdefault(taint, []).append(n.name)
            blocked = {name for names in carriers.values() for name in names}
            if carriers and len(blocked) == len(targeted):  # it runs on none of them: one finding
                parts = [
                    t if len(names) == len(targeted) else f"{t} ({len(names)} of them)"
                    for t, names in sorted(carriers.items())
                ]
                said = (
                    f"does not tolerate {parts[0]}, which every GPU node carries: it never runs there"
                    if len(parts) == 1
                    else f"does not tolerate {', '.join(parts)}: it runs on none of its {len(targeted)} GPU nodes"
                )
                yield Finding("GPU-011", w.ref, "spec.tolerations", said)
                continue
            for taint, names in sorted(carriers.items()):
                shown = ", ".join(sorted(names)[:3]) + (", …" if len(names) > 3 else "")
                yield Finding(
                    "GPU-011",
                    w.ref,
                    "spec.tolerations",
                    f"does not tolerate {taint}, which {len(names)} of its {len(targeted)} GPU nodes carry "
                    f"({shown}): it never runs on them",
                )
        elif not w.tolerates_gpu_taint:
            yield Finding(
                "GPU-011",
                w.ref,
                "spec.tolerations",
                f"does not tolerate the {GPU} taint GPU nodes carry: it never runs there",
            )
