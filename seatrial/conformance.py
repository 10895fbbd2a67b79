"""Where the checks get their inventory: rendered manifests (static) or a cluster (live).

Live reading never keeps a Secret's values: only the metadata the rules need (and whether a
last-applied annotation carries data) is kept, so no secret can reach a finding or a report.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from seatrial import kube, manifests
from seatrial.chaos.target import load_target
from seatrial.checks import Facts, Inventory, facts
from seatrial.checks.inventory import ref_of
from seatrial.checks.model import Ref
from seatrial.checks.secrets import secret_values as leaked_values
from seatrial.cluster.pools import POOL_LABEL
from seatrial.errors import ClusterError, ConfigError
from seatrial.excerpt import LAST_APPLIED, excerpt
from seatrial.profile import Profile
from seatrial.report import Attachment


def static_inventory(
    path: Path,
    profile: Profile,
    pools_dir: Path | None,
    notes: list[str] | None = None,
    values: Sequence[Path] = (),
) -> tuple[Inventory, Facts]:
    """Without node pool files there is no cluster to judge capacity or placement against: those
    checks then judge what the manifests alone show (a GPU agent without the GPU taint's
    toleration) or say they were skipped (a GPU pod's toleration or model pin). Warnings about the
    manifests (unknown fields) go to ``notes``."""
    objects = manifests.load(path, notes=notes, values=values)
    if pools_dir is None:
        return Inventory(objects, profile.roles), Facts(model_load_seconds=profile.model_load_seconds)
    return Inventory(objects, profile.roles), facts.from_pools(pools_dir, model_load_seconds=profile.model_load_seconds)


def say_unchecked(inv: Inventory, where: str) -> None:
    """Name the kinds no rule read. When that is every object, nothing was judged: a failure to
    read (exit 2), never a pass."""
    summary = inv.unchecked_summary()
    if summary is None:
        return
    what, kinds, everything = summary
    if everything:
        raise ConfigError(
            f"nothing in {where} is a kind seatrial checks: {what}: {kinds}",
            hint="custom resources are read only for the workload kinds README lists; name the manifests that "
            "deploy the stack",
        )
    print(f"seatrial: {what} not checked: {kinds}", flush=True)


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    if obj.get("kind") == "Secret":
        blob = (meta.get("annotations") or {}).get(LAST_APPLIED, "")
        leaked = '"data"' in blob or '"stringData"' in blob
        meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
        if leaked:
            meta["annotations"][LAST_APPLIED] = json.dumps({"data": "<redacted>"})
        obj = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": obj.get("type")}
    return obj


# What a live run reads, per namespace: (apiVersion, kind, kubectl's resource name, the client's
# list_namespaced_* method). The scale bench times `kubectl get` of the same resources.
LIVE_KINDS = (
    ("apps/v1", "Deployment", "deployments", "deployment"),
    ("apps/v1", "StatefulSet", "statefulsets", "stateful_set"),
    ("apps/v1", "DaemonSet", "daemonsets", "daemon_set"),
    ("batch/v1", "Job", "jobs", "job"),
    ("batch/v1", "CronJob", "cronjobs", "cron_job"),
    ("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", "pod_disruption_budget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontal_pod_autoscaler"),
    ("v1", "Service", "services", "service"),
    ("v1", "Pod", "pods", "pod"),
    ("v1", "ConfigMap", "configmaps", "config_map"),
    ("v1", "Secret", "secrets", "secret"),
    ("v1", "ServiceAccount", "serviceaccounts", "service_account"),
    ("v1", "ResourceQuota", "resourcequotas", "resource_quota"),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", "network_policy"),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", "role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", "role_binding"),
)


def live_objects(api: client.ApiClient, namespaces: list[str]) -> list[dict[str, Any]]:
    rbac = client.RbacAuthorizationV1Api(api)
    apis = {
        "v1": client.CoreV1Api(api), "apps/v1": client.AppsV1Api(api), "batch/v1": client.BatchV1Api(api),
        "policy/v1": client.PolicyV1Api(api), "autoscaling/v2": client.AutoscalingV2Api(api),
        "networking.k8s.io/v1": client.NetworkingV1Api(api), "rbac.authorization.k8s.io/v1": rbac,
    }  # fmt: skip
    listers: list[tuple[str, str, Callable[..., Any]]] = [
        (version, kind, getattr(apis[version], f"list_namespaced_{method}")) for version, kind, _, method in LIVE_KINDS
    ]
    # the namespaces read are in the input (NET-002 judges a namespace only then)
    out: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
    ]

    def read(ns: str, api_version: str, kind: str, lister: Callable[..., Any]) -> list[dict[str, Any]]:
        with kube.translate(f"listing {kind} in {ns}"):
            items = kube.list_items(lister, ns, resource_version="0")  # from the watch cache: one request, any size
        got = []
        for obj in items:
            obj.update(apiVersion=api_version, kind=kind)
            if kind == "ConfigMap" and (obj.get("metadata") or {}).get("name") == "kube-root-ca.crt":
                continue
            got.append(_clean(obj))
        return got

    # one request per kind and namespace, whatever their size; the requests of many namespaces
    # overlap (the server answers them from its cache while the last answer is being parsed)
    calls = [(ns, *lister) for ns in namespaces for lister in listers]
    pool = ThreadPoolExecutor(max_workers=min(8, max(1, len(calls))))
    try:
        for got in pool.map(lambda c: read(*c), calls):
            out.extend(got)
    except BaseException:  # a refused list or Ctrl-C: the lists still queued are not worth waiting for
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    with kube.translate("listing cluster role bindings"):
        crbs = kube.list_items(rbac.list_cluster_role_binding, resource_version="0")
        roles = {r["metadata"]["name"]: r for r in kube.list_items(rbac.list_cluster_role, resource_version="0")}
    for b in crbs:
        if any(s.get("kind") == "ServiceAccount" and s.get("namespace") in namespaces for s in b.get("subjects") or []):
            out.append({**b, "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding"})
            role = roles.get(b["roleRef"]["name"])
            if role and b["roleRef"]["kind"] == "ClusterRole":
                out.append({**role, "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"})
    return out


def live_inventory(api: client.ApiClient, namespaces: list[str], profile: Profile) -> tuple[Inventory, Facts]:
    with kube.translate("listing namespaces"):
        have = {kube.name_of(n) for n in client.CoreV1Api(api).list_namespace().items}
    missing = [n for n in namespaces if n not in have]
    if missing:  # checking nothing would pass every check: a wrong name must not look like a clean stack
        raise ConfigError(
            f"profile {profile.source} names namespaces the cluster does not have: {', '.join(missing)}",
            hint="kubectl get namespaces; fix the profile's namespaces",
        )
    objects = live_objects(api, namespaces)
    return Inventory(objects, profile.roles), facts.from_cluster(api, model_load_seconds=profile.model_load_seconds)


def live_context(api: client.ApiClient, namespaces: list[str], inv: Inventory, fx: Facts, profile: Profile) -> Any:
    """What the acting checks need: where to send load (the profile's Service, by ClusterIP) and
    which Deployment to roll out. The auth token is read from its Secret into memory only."""
    from seatrial.checks.live import Live

    live = Live(api, namespaces, inv, fx, rollout=profile.rollout)
    try:
        target = load_target(api, namespaces[0] if namespaces else "", profile.load)
    except (ClusterError, ConfigError):
        return live  # no load target: ROLL-008 says so when it is skipped
    live.load_url, live.load_headers = target.url, dict(target.headers)
    return live


# ---- evidence for reports ----------------------------------------------------------------
def secret_values(inv: Inventory) -> list[str]:
    """Every value in the inventory that is or looks like a secret: the reports redact them all,
    a second line of defence behind findings that never quote values and default-deny excerpts."""
    out: set[str] = set(leaked_values(inv))
    for s in inv.of("Secret"):
        out.update(str(v) for v in (s.get("stringData") or {}).values())
        for v in (s.get("data") or {}).values():
            try:
                out.add(base64.b64decode(str(v)).decode())
            except (ValueError, UnicodeDecodeError):
                out.add(str(v))
    return sorted(out)


def _events_about(items: list[Any], ref: Ref, limit: int = 30) -> str:
    """Events about the object and what it owns (its pods, ReplicaSets), newest last: what the
    cluster said while the finding was true."""
    rows = []
    for ev in items:
        inv_obj = ev.involved_object
        name = inv_obj.name or ""
        if name != ref.name and not name.startswith(f"{ref.name}-"):
            continue
        when = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp
        rows.append((str(when), f"{when} {ev.type} {ev.reason} {inv_obj.kind}/{name}: {ev.message}"))
    rows.sort()
    return "\n".join(r for _, r in rows[-limit:]) or f"no events about {ref.kind}/{ref.name} in {ref.namespace}"


def evidence(inv: Inventory, refs: Iterable[Ref], api: client.ApiClient | None) -> dict[Ref, list[Attachment]]:
    """For each object: an excerpt and, on a live cluster, the events about it. Several checks
    usually name the same objects, so each is described once and each namespace's events are
    listed once."""
    objects = {ref_of(o): o for o in inv.objects}
    listed: dict[str, list[Any] | str] = {}
    out: dict[Ref, list[Attachment]] = {}
    for ref in sorted(set(refs)):
        found = out[ref] = []
        obj = objects.get(ref) or objects.get(Ref(ref.namespace, ref.kind, ref.name.split("/")[0]))  # crds' parts
        if obj is not None:
            found.append(Attachment(f"{ref.kind} {ref.name}", excerpt(obj), "application/yaml"))
        if api is None or not ref.namespace:
            continue
        if ref.namespace not in listed:
            try:
                with kube.translate(f"listing events in {ref.namespace}"):
                    listed[ref.namespace] = client.CoreV1Api(api).list_namespaced_event(ref.namespace).items
            except ClusterError as exc:
                listed[ref.namespace] = f"could not list events: {exc}"
        items = listed[ref.namespace]
        found.append(
            Attachment(f"events {ref.kind} {ref.name}", items if isinstance(items, str) else _events_about(items, ref))
        )
    return out


def run_facts(fx: Facts, *, server: str | None = None, context: str | None = None, **more: str) -> dict[str, Any]:
    """What the report's environment says about the cluster the run judged (``more``: the API
    requests the run made, …)."""
    pools: dict[str, int] = {}
    for n in fx.nodes:
        pool = n.labels.get(POOL_LABEL) or n.labels.get("node.kubernetes.io/instance-type") or "other"
        pools[pool] = pools.get(pool, 0) + 1
    out: dict[str, Any] = {"facts": fx.source}
    if server:
        out["server"] = server
    if context:
        out["context"] = context
    out |= more
    if fx.nodes:
        out |= {
            "nodes": len(fx.nodes),
            "gpus": sum(n.gpus for n in fx.nodes),
            "pools": ",".join(f"{k}={v}" for k, v in sorted(pools.items())),
        }
    return out
