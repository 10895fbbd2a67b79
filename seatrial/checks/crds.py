"""The pod templates inside the custom resources ML teams deploy, so every pod rule applies to them.

A RayCluster's GPU workers, a KServe predictor or a LeaderWorkerSet's leader are pods like any
Deployment's, but they sit at a different path in each kind. No peer tool reads them; without
this a file of RayClusters "passed" with nothing checked. Each template becomes a stand-in object
of the custom resource's own kind, named ``<name>/<part>`` (a slash no real name can hold), with
the template under ``spec.template`` where the rules look for it.

Paths follow each project's API: KubeRay ``ray.io/v1``, KServe ``serving.kserve.io``, LWS
``leaderworkerset.x-k8s.io``, JobSet ``jobset.x-k8s.io``, Kubeflow ``kubeflow.org``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

Obj = Mapping[str, Any]
Part = tuple[str, Obj]  # (part name, pod template: {metadata, spec})

KUBEFLOW = {
    "PyTorchJob": "pytorchReplicaSpecs",
    "TFJob": "tfReplicaSpecs",
    "MPIJob": "mpiReplicaSpecs",
    "XGBoostJob": "xgbReplicaSpecs",
    "PaddleJob": "paddleReplicaSpecs",
    "JAXJob": "jaxReplicaSpecs",
}
SERVING = ("InferenceService", "ServingRuntime", "LeaderWorkerSet", "RayService")
# Kinds whose operator probes and drains their pods itself, so the rollout rules (readiness,
# preStop) are the operator's business: KubeRay injects readiness and liveness probes into Ray
# head and worker pods (since v1.1) and Ray Serve drains its replicas; KServe's queue-proxy
# probes the predictor and holds requests while it scales down (serverless mode only: a
# RawDeployment/Standard predictor is a plain Deployment, judged as one).
RAY = ("RayCluster", "RayService", "RayJob")
OPERATOR_PROBED = (*RAY, "InferenceService")
KSERVE_MODE = "serving.kserve.io/deploymentMode"


def operator_probed(obj: Obj) -> bool:
    """Whether the operator of this custom resource (or its stand-in) probes and drains its pods."""
    if obj.get("kind") not in OPERATOR_PROBED:
        return False
    mode = str(_mapping(_mapping(obj.get("metadata")).get("annotations")).get(KSERVE_MODE) or "")
    return not (obj.get("kind") == "InferenceService" and mode in ("RawDeployment", "Standard"))


BATCH = ("RayJob", "JobSet", *KUBEFLOW)
KINDS = (*SERVING, *BATCH, "RayCluster")
# KServe component fields that are not PodSpec fields
_KSERVE_OWN = {
    "model", "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType", "autoScaling",
    "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels", "annotations",
    "deploymentStrategy", "workerSpec", "storageUri", "storage", "supportedModelFormats", "multiModel",
    "disabled", "protocolVersions", "builtInAdapter", "grpcDataEndpoint", "grpcEndpoint", "httpDataEndpoint",
    "replicas", "storageHelper", "modelFormat", "runtime",
}  # fmt: skip


KSERVE_FRAMEWORKS = (
    "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "pmml", "lightgbm", "paddle", "huggingface",
)  # fmt: skip


def _mapping(value: Any) -> Obj:
    return value if isinstance(value, Mapping) else {}


def _ray(spec: Obj) -> Iterator[Part]:
    head = _mapping(spec.get("headGroupSpec")).get("template")
    if isinstance(head, Mapping):
        yield "head", head
    for group in spec.get("workerGroupSpecs") or []:
        tmpl = _mapping(group).get("template")
        if isinstance(tmpl, Mapping):
            yield f"workers-{_mapping(group).get('groupName', '?')}", tmpl


def _kserve(component: Obj, name: str, *, defaults: bool = False) -> Iterator[Part]:
    """A KServe component carries PodSpec fields inline, and a ``model`` that is its container."""
    pod = {k: v for k, v in component.items() if k not in _KSERVE_OWN and k not in KSERVE_FRAMEWORKS}
    # the model: the v1beta1 ``model`` field, or one of the older per-framework fields
    model = _mapping(next((component[k] for k in ("model", *KSERVE_FRAMEWORKS) if k in component), None))
    if model and not pod.get("containers"):
        # the serving runtime supplies the image, and Knative a TCP readiness probe when none is set
        container = {"name": "kserve-container", **{k: v for k, v in model.items() if k in _CONTAINER}}
        container.setdefault("readinessProbe", {"tcpSocket": {"port": 8080}})
        pod["containers"] = [container]
    if pod.get("containers"):
        if defaults:
            first, *rest = pod["containers"]
            pod["containers"] = [_with_kserve_defaults(_mapping(first)), *rest]
        yield name, {"metadata": {"labels": component.get("labels") or {}}, "spec": pod}


KSERVE_RESOURCES = {"cpu": "1", "memory": "2Gi"}  # inferenceservice-config's defaults, out of the box


def _with_kserve_defaults(container: Obj) -> dict[str, Any]:
    """The component's container as KServe's webhook leaves it: each CPU or memory request or
    limit it does not name set to the configured default, key by key (a 4Gi request with no
    limit gets a 2Gi limit, below it, and the pod is refused)."""
    resources = dict(_mapping(container.get("resources")))
    for side in ("requests", "limits"):
        resources[side] = {**KSERVE_RESOURCES, **_mapping(resources.get(side))}
    return {**container, "resources": resources}


_CONTAINER = {
    "image", "args", "command", "env", "envFrom", "resources", "ports", "readinessProbe", "livenessProbe",
    "securityContext",
}  # fmt: skip


RAY_CLUSTER = {"RayService": "rayClusterConfig", "RayJob": "rayClusterSpec"}  # where the cluster's spec sits


def _autoscaled_ray_head(obj: Obj, part: str) -> bool:
    """A Ray head with the in-tree autoscaler: KubeRay gives it a ServiceAccount bound to a Role
    of its own, because the autoscaler sidecar scales the cluster through the API."""
    if obj.get("kind") not in RAY or part != "head":
        return False
    spec = _mapping(obj.get("spec"))
    cluster = _mapping(spec.get(RAY_CLUSTER[str(obj["kind"])])) if obj["kind"] in RAY_CLUSTER else spec
    return cluster.get("enableInTreeAutoscaling") is True


def operator_binds_token(obj: Obj) -> bool:
    """Whether the operator binds a role to this stand-in's account itself (the binding is in
    no manifest, so an API token mounted there is used, not spare)."""
    return _mapping(obj.get("spec")).get("operatorBindsToken") is True


def parts(obj: Obj) -> list[Part]:
    """The pod templates of a custom resource of a kind in ``KINDS`` (none for other kinds)."""
    kind, spec = obj.get("kind"), _mapping(obj.get("spec"))
    found: list[Part] = []
    if kind == "RayCluster":
        found += _ray(spec)
    elif kind == "RayService":
        found += _ray(_mapping(spec.get("rayClusterConfig")))
    elif kind == "RayJob":
        found += _ray(_mapping(spec.get("rayClusterSpec")))
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            found += _kserve(_mapping(spec.get(component)), component, defaults=True)
    elif kind == "ServingRuntime":
        found += _kserve(spec, "runtime")
    elif kind == "LeaderWorkerSet":
        lwt = _mapping(spec.get("leaderWorkerTemplate"))
        found += [(p, t) for p in ("leaderTemplate", "workerTemplate") if isinstance(t := lwt.get(p), Mapping)]
    elif kind == "JobSet":
        for job in spec.get("replicatedJobs") or []:
            tmpl = _mapping(_mapping(_mapping(_mapping(job).get("template")).get("spec")).get("template"))
            if tmpl:
                found.append((str(_mapping(job).get("name", "?")), tmpl))
    elif kind in KUBEFLOW:
        for replica_type, rs in _mapping(spec.get(KUBEFLOW[str(kind)])).items():
            replica_template = _mapping(_mapping(rs).get("template"))
            if replica_template:
                found.append((str(replica_type).lower(), replica_template))
    return found


def stand_ins(obj: Obj) -> list[dict[str, Any]]:
    """One object per pod template, of the custom resource's kind, for the pod rules."""
    meta = _mapping(obj.get("metadata"))
    out = []
    for part, template in parts(obj):
        stand_meta = {k: meta[k] for k in ("namespace", "labels", "annotations") if k in meta}
        stand_meta["name"] = f"{meta.get('name')}/{part}"
        spec: dict[str, Any] = {"template": template}
        if _autoscaled_ray_head(obj, part):
            spec["operatorBindsToken"] = True
        out.append({"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": stand_meta, "spec": spec})
    return out


def role(kind: str, gpus: int) -> str:
    """What a custom resource's pods are for, as the rules' roles say it."""
    if kind in SERVING:
        return "gpu-inference" if gpus else "serving"
    return "batch" if kind in BATCH else "other"
