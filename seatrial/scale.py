"""The scale profile: a fleet of simulated GPU nodes and thousands of pods, with known defects.

Issue 17 asks how seatrial's live verdict grows with the cluster. This module is pure: it writes
the node pools (1,000 nodes by default: on-demand and spot GPU pools over three zones, and a CPU
pool) and the workloads (50 team namespaces of 10 workloads each, plus a GPU monitoring
DaemonSet on the H100 nodes), and says in advance which findings the catalogue must report.
The workloads are written the way the reference stack is (spread, budgets, probes, quotas,
least-privilege accounts), so everything that is not planted is clean: a finding beyond the
planted ones is a false alarm, a planted one not reported is a miss.

Every team's replicas grow with ``pods`` and nothing else does: the same objects at 1,000 and
at 10,000 pods, so the API requests a run makes can be compared between the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAMESPACES = 50
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SPOT_TAINT = {"key": "karpenter.sh/capacity-type", "value": "spot", "effect": "NoSchedule"}
SPOT_TOLERATION = {**SPOT_TAINT, "operator": "Equal"}
MONITORING = "gpu-monitoring"
STORAGE_CLASS = "scale-local"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


MONITORED_PRODUCT = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
ON_DEMAND_PRODUCTS = [MONITORED_PRODUCT, A100]  # the 80 GB models the GPU inference apps are sized for


def _pool(name: str, count: int, instance: str, cpu: str, memory: str, *, gpu: dict[str, Any] | None = None,
          spot: bool = False) -> dict[str, Any]:  # fmt: skip
    """One pool document (the format of ``manifests/cluster/*.yaml``), over three zones."""
    doc: dict[str, Any] = {
        "kind": "NodePool",
        "name": name,
        "count": count,
        "zones": ["zone-a", "zone-b", "zone-c"],
        "instanceType": instance,
        "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
        "capacityType": "spot" if spot else "on-demand",
    }
    if gpu:
        doc["gpu"] = gpu
    if spot:
        doc["taints"] = [dict(SPOT_TAINT)]
    return doc


def pool_documents(nodes: int = 1_000) -> list[dict[str, Any]]:
    """Node pool documents: 80 % GPU nodes (three in eight of them spot), 20 % CPU."""
    h100, a100, l4 = nodes // 4, nodes // 4, nodes * 3 // 10
    return [
        _pool("scale-h100", h100, "p5.48xlarge", "192", "2048Gi",
              gpu={"product": MONITORED_PRODUCT, "count": 8, "memoryMiB": 81559}),
        _pool("scale-a100", a100, "p4d.24xlarge", "96", "1152Gi",
              gpu={"product": A100, "count": 8, "memoryMiB": 81920}),
        _pool("scale-l4-spot", l4, "g6.48xlarge", "192", "768Gi",
              gpu={"product": "NVIDIA-L4", "count": 8, "memoryMiB": 23034}, spot=True),
        _pool("scale-cpu", nodes - h100 - a100 - l4, "m6i.8xlarge", "32", "128Gi"),
    ]  # fmt: skip


@dataclass(frozen=True)
class App:
    """One team workload: its kind, role, share of the namespace's pods, and where it runs."""

    name: str
    kind: str  # Deployment | StatefulSet | Job | CronJob
    component: str
    weight: int
    gpu: str = ""  # "" | "on-demand" | "spot"


APPS = (
    App("llm", "Deployment", "gpu-inference", 40, gpu="on-demand"),
    App("embed", "Deployment", "gpu-inference", 24, gpu="on-demand"),
    App("gateway", "Deployment", "serving", 30),
    App("router", "Deployment", "serving", 24),
    App("worker", "Deployment", "serving", 60),
    App("redis", "StatefulSet", "stateful", 0),
    App("etcd", "StatefulSet", "stateful", 0),
    App("finetune", "Job", "batch", 0, gpu="spot"),
    App("tokenize", "Job", "batch", 0),
    App("eval", "CronJob", "batch", 0),
)
QUORUM = 3  # the stores' members, at any size
MONITORED_POOL = "scale-h100"

# Planted defects: (namespace index, app, what is wrong) -> the check that must name it.
PLANTED: tuple[tuple[int, str, str, str], ...] = (
    (3, "llm", "no-pdb", "PDB-001"),
    (7, "gateway", "latest-tag", "ROLL-007"),
    (11, "router", "no-readiness", "ROLL-004"),
    (17, "worker", "secret-in-env", "SEC-001"),
    (23, "embed", "no-memory-limit", "RES-002"),
    (29, "redis", "no-volume", "STATE-001"),
    (31, "etcd", "shared-nodes", "STATE-002"),
    (37, "", "no-gpu-quota", "GPU-008"),
)
STORE_DATA = "data"


def replicas(pods: int, nodes: int = 1_000) -> dict[str, int]:
    """Replicas per app in each namespace so that the whole cluster runs about ``pods`` pods (at
    least 1,000 plus a monitoring pod per H100 node: two of each workload, three of each store)."""
    per_ns = max(0, pods - monitored_nodes(nodes)) // NAMESPACES
    out = {a.name: QUORUM if a.kind == "StatefulSet" else 0 if a.kind == "CronJob" else 2 for a in APPS}
    # Jobs keep their two pods at any size: simulated pods of a Job succeed at once, and a
    # complete Job starts no new ones when its parallelism grows
    room = max(0, per_ns - sum(out.values()))
    weights = sum(a.weight for a in APPS)
    for a in APPS:
        out[a.name] += room * a.weight // weights
    out["worker"] += max(0, per_ns - sum(out.values()))  # the rounding's remainder
    return out


def monitored_nodes(nodes: int = 1_000) -> int:
    """The nodes the monitoring DaemonSet runs on: the H100 pool's."""
    return int(next(p["count"] for p in pool_documents(nodes) if p["name"] == MONITORED_POOL))


def expected_pods(pods: int, nodes: int = 1_000) -> int:
    """The pods the stack will have (running, or succeeded for Jobs): the teams' replicas and
    one monitoring pod per H100 node."""
    return sum(replicas(pods, nodes).values()) * NAMESPACES + monitored_nodes(nodes)


def expected_findings() -> list[tuple[str, str, str]]:
    """(check ID, namespace, workload name) for every planted defect: exactly what a run must
    report, and nothing else."""
    # a namespace-wide finding names the Namespace (no namespace of its own)
    return sorted((check, namespace_name(i) if app else "", app or namespace_name(i)) for i, app, _, check in PLANTED)


def namespace_name(i: int) -> str:
    return f"team-{i:03d}"


def namespaces() -> list[str]:
    return [MONITORING] + [namespace_name(i) for i in range(NAMESPACES)]


def _labels(app: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/component": component}


def _spread(app: str) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
        }
    ]


def _container(app: App, image: str) -> dict[str, Any]:
    requests: dict[str, Any] = {"cpu": "100m", "memory": "128Mi"}
    limits: dict[str, Any] = {"cpu": "1", "memory": "512Mi"}
    if app.gpu:
        requests["nvidia.com/gpu"] = "1"
        limits["nvidia.com/gpu"] = "1"
    out: dict[str, Any] = {
        "name": app.name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080}],
        "env": [{"name": "PORT", "value": "8080"}],
        "resources": {"requests": requests, "limits": limits},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if app.kind in ("Deployment", "StatefulSet"):
        out["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2}
        out["livenessProbe"] = {
            "httpGet": {"path": "/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        }
        out["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    if app.component == "gpu-inference":
        out["startupProbe"] = {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 150,
        }
    return out


def _pod_spec(app: App, image: str) -> dict[str, Any]:
    tolerations: list[dict[str, Any]] = [KWOK_TOLERATION]
    expressions: list[dict[str, Any]]
    if app.gpu:
        tolerations.append(GPU_TOLERATION)
        expressions = [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]
        capacity = "spot" if app.gpu == "spot" else "on-demand"
        expressions.append({"key": "karpenter.sh/capacity-type", "operator": "In", "values": [capacity]})
        if app.gpu == "on-demand":  # sized for 80 GB cards: either on-demand model, never another (GPU-003)
            expressions.append({"key": "nvidia.com/gpu.product", "operator": "In", "values": ON_DEMAND_PRODUCTS})
        if app.gpu == "spot":
            tolerations.append(SPOT_TOLERATION)
    else:
        expressions = [{"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}]
    spec: dict[str, Any] = {
        "serviceAccountName": app.name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": tolerations,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": expressions}]
                }
            }
        },
        "containers": [_container(app, image)],
    }
    if app.kind in ("Deployment", "StatefulSet"):
        spec["topologySpreadConstraints"] = _spread(app.name)
        spec["terminationGracePeriodSeconds"] = 30
    else:
        spec["restartPolicy"] = "Never"
    return spec


def _workload(app: App, ns: str, count: int, defect: str) -> dict[str, Any]:
    image = f"registry.example/{app.name}:1.4.2"
    if defect == "latest-tag":
        image = f"registry.example/{app.name}:latest"
    template = {"metadata": {"labels": _labels(app.name, app.component)}, "spec": _pod_spec(app, image)}
    container = template["spec"]["containers"][0]
    if defect == "no-readiness":
        container.pop("readinessProbe")
    elif defect == "secret-in-env":
        container["env"].append({"name": "API_TOKEN", "value": "sk-live-4f9a8c2e7b1d"})
    elif defect == "no-memory-limit":
        container["resources"]["limits"].pop("memory")
    meta = {"name": app.name, "namespace": ns, "labels": _labels(app.name, app.component)}
    selector = {"matchLabels": {"app.kubernetes.io/name": app.name}}
    if app.kind == "Deployment":
        spec: dict[str, Any] = {
            "replicas": count,
            "revisionHistoryLimit": 5,
            "selector": selector,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": template,
        }
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}
    if app.kind == "StatefulSet":
        if defect != "shared-nodes":  # a store's members never share a node
            term = {"topologyKey": "kubernetes.io/hostname", "labelSelector": selector}
            template["spec"]["affinity"]["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
        spec = {
            "replicas": count,
            "serviceName": app.name,
            "podManagementPolicy": "Parallel",
            "selector": selector,
            "template": template,
        }
        if defect != "no-volume":
            container["volumeMounts"] = [{"name": STORE_DATA, "mountPath": "/data"}]
            claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            spec["volumeClaimTemplates"] = [
                {"metadata": {"name": STORE_DATA}, "spec": claim | {"storageClassName": STORAGE_CLASS}}
            ]
        return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec}
    job: dict[str, Any] = {"backoffLimit": 2, "parallelism": count, "completions": count, "template": template}
    if app.kind == "Job":
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job}
    cron = {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid", "suspend": True, "jobTemplate": {"spec": job}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta, "spec": cron}


def _around(app: App, ns: str, defect: str) -> list[dict[str, Any]]:
    """What each workload has beside it: its account, a Service and a budget for what serves."""
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": app.name, "namespace": ns},
            "automountServiceAccountToken": False,
        }
    ]
    if app.kind not in ("Deployment", "StatefulSet"):
        return out
    selector = {"app.kubernetes.io/name": app.name}
    service: dict[str, Any] = {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    if app.kind == "StatefulSet":
        service["clusterIP"] = "None"
    out.append(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app.name, "namespace": ns}, "spec": service}
    )
    if defect != "no-pdb":
        # a third may go at once: the pods of one zone of three, so the loss of a zone is within budget
        # (a store: one member, so a quorum of three keeps its majority)
        most: int | str = 1 if app.kind == "StatefulSet" else "34%"
        budget = {"maxUnavailable": most, "selector": {"matchLabels": selector}}
        out.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": app.name, "namespace": ns},
                "spec": budget,
            }
        )
    return out


def team(i: int, reps: dict[str, int]) -> list[dict[str, Any]]:
    """One team's namespace: its workloads, accounts, Services, budgets and policies."""
    ns = namespace_name(i)
    defects = {app: defect for j, app, defect, _ in PLANTED if j == i}
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    for app in APPS:
        out.append(_workload(app, ns, reps[app.name], defects.get(app.name, "")))
        out += _around(app, ns, defects.get(app.name, ""))
    gpus = sum(reps[a.name] for a in APPS if a.gpu)
    if "" in defects:  # a namespace-wide defect
        return [*out, _deny(ns)]
    out.append(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "gpu", "namespace": ns},
            "spec": {"hard": {"requests.nvidia.com/gpu": str(gpus * 2)}},
        }
    )
    return [*out, _deny(ns)]


def _deny(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }


def monitoring() -> list[dict[str, Any]]:
    """A DCGM-exporter-like DaemonSet on the H100 nodes."""
    ns, name = MONITORING, "gpu-metrics"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "daemon"}
    pod = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "priorityClassName": "system-node-critical",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": [KWOK_TOLERATION, GPU_TOLERATION, SPOT_TOLERATION],
        "nodeSelector": {"nvidia.com/gpu.product": MONITORED_PRODUCT},
        "containers": [
            {
                "name": name,
                "image": "registry.example/gpu-metrics:3.3.9",
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": "metrics", "containerPort": 9400}],
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "200m", "memory": "128Mi"},
                },
                "readinessProbe": {"httpGet": {"path": "/health", "port": "metrics"}},
                "livenessProbe": {"httpGet": {"path": "/health", "port": "metrics"}, "periodSeconds": 10},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": ns},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
        _deny(ns),
    ]


def stack(pods: int = 10_000, nodes: int = 1_000) -> list[dict[str, Any]]:
    """Every object of the scale stack, namespaces first."""
    reps = replicas(pods, nodes)
    return monitoring() + [o for i in range(NAMESPACES) for o in team(i, reps)]


def volumes() -> list[dict[str, Any]]:
    """The stores' volumes, made beforehand and bound to the claims their StatefulSets will make
    (``data-<store>-<ordinal>``): the local cluster has no provisioner, and a claim nobody binds
    leaves its pod Pending. Cluster-scoped, so not part of what the catalogue reads."""
    out: list[dict[str, Any]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
        }
    ]
    for i in range(NAMESPACES):
        for app in APPS:
            if app.kind != "StatefulSet":
                continue
            for ordinal in range(QUORUM):
                claim = f"{STORE_DATA}-{app.name}-{ordinal}"
                out.append(
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolume",
                        "metadata": {"name": f"scale-{i:03d}-{claim}"},
                        "spec": {
                            "capacity": {"storage": "1Gi"},
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": STORAGE_CLASS,
                            "hostPath": {"path": f"/var/lib/seatrial-scale/{i:03d}/{claim}"},
                            "claimRef": {"namespace": namespace_name(i), "name": claim},
                        },
                    }
                )
    return out
