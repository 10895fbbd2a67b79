"""Synthetic stacks of any size, for measuring how the catalogue's cost grows with its input.

Each namespace holds what a small ML team ships: a GPU inference Deployment and a gateway with
their Services, PDBs and HPA, a ServiceAccount with a Role and binding, a ConfigMap and a Secret,
a NetworkPolicy, a StatefulSet store and a batch Job (15 objects). The objects are written the
way the reference stack writes them, so a rule meets the references it resolves in a real stack
(selectors, bindings, scale targets) in the proportion it would, and its cost per object can be
compared across sizes.
"""

from __future__ import annotations

from typing import Any

PER_NAMESPACE = 15


def _meta(name: str, ns: str, app: str | None = None, component: str | None = None) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": app or name}
    if component:
        labels["app.kubernetes.io/component"] = component
    return {"name": name, "namespace": ns, "labels": labels}


def _pod(app: str, image: str, *, gpu: bool = False, sa: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": app,
                "image": image,
                "ports": [{"name": "http", "containerPort": 8080}],
                "env": [{"name": "MODEL", "value": "tiny"}],
                "resources": resources,
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 20},
            }
        ]
    }
    if gpu:
        resources["requests"]["nvidia.com/gpu"] = 1
        resources["limits"]["nvidia.com/gpu"] = 1
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        spec["nodeSelector"] = {"nvidia.com/gpu.present": "true"}
    if sa:
        spec["serviceAccountName"] = sa
    return {"metadata": {"labels": {"app.kubernetes.io/name": app}}, "spec": spec}


def namespace(i: int) -> list[dict[str, Any]]:
    """One team's namespace of ``PER_NAMESPACE`` objects."""
    ns = f"team-{i:05d}"
    out: list[dict[str, Any]] = []
    for app, component, gpu, replicas in (("inference", "gpu-inference", True, 2), ("gateway", "serving", False, 3)):
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": _meta(app, ns, component=component),
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
                    "template": _pod(app, f"registry.example/{app}:1.{i % 7}", gpu=gpu, sa=app),
                },
            }
        )
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta(app, ns),
                "spec": {"selector": {"app.kubernetes.io/name": app}, "ports": [{"port": 80, "targetPort": "http"}]},
            }
        )
        out.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _meta(app, ns),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": app}}},
            }
        )
    out.append(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta("gateway", ns),
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"},
                "minReplicas": 3,
                "maxReplicas": 6,
            },
        }
    )
    out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("gateway", ns)})
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta("gateway", ns),
            "rules": [{"apiGroups": [""], "resources": ["endpoints"], "verbs": ["get", "list", "watch"]}],
        }
    )
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta("gateway", ns),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gateway"},
            "subjects": [{"kind": "ServiceAccount", "name": "gateway", "namespace": ns}],
        }
    )
    out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("config", ns), "data": {"LOG": "info"}})
    out.append({"apiVersion": "v1", "kind": "Secret", "metadata": _meta("api-key", ns), "type": "Opaque"})
    out.append(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("default-deny", ns),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }
    )
    out.append(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": _meta("redis", ns, component="stateful"),
            "spec": {
                "replicas": 1,
                "serviceName": "redis",
                "selector": {"matchLabels": {"app.kubernetes.io/name": "redis"}},
                "template": _pod("redis", "redis:7.4"),
            },
        }
    )
    job = _pod("benchmark", "registry.example/bench:1")
    job["spec"]["restartPolicy"] = "Never"
    out.append(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": _meta("benchmark", ns, component="batch"),
            "spec": {"backoffLimit": 2, "template": job},
        }
    )
    assert len(out) == PER_NAMESPACE
    return out


def stack(objects: int) -> list[dict[str, Any]]:
    """About ``objects`` objects (a whole number of namespaces, at least one)."""
    return [o for i in range(max(1, objects // PER_NAMESPACE)) for o in namespace(i)]
