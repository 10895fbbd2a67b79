"""Deploy and tear down the reference stack (``manifests/stack``) on any cluster.

A deploy renders the kustomize overlay into a fresh namespace, proves the whole render against
the API server (server-side dry run) before anything is created in it, creates the Secrets with
random values, applies everything with one field manager, and waits until every workload is
ready, saying what it waits for. When it cannot succeed, the error names the workload and the
reason a person would look up (unschedulable and why, an image that is missing, a failing
probe) instead of a bare timeout. Only namespaces this module labelled are ever deleted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from seatrial import kube, runs
from seatrial.cluster import build
from seatrial.errors import ClusterError, ConfigError, ToolMissingError, yaml_problem

FIELD_MANAGER = "seatrial"
STACK_LABEL = "seatrial.dev/stack"
MANAGED = {"app.kubernetes.io/managed-by": "seatrial", STACK_LABEL: "reference"}
SECRET_NAME = "stack-secrets"  # noqa: S105 - the Secret's name, not a value
SECRET_KEYS = ("api-key", "redis-password")
IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def overlay_dir(name_or_path: str) -> Path:
    """``local``/``staging`` name an overlay of the reference stack; anything else is a path."""
    p = repo_root() / "manifests" / "stack" / "overlays" / name_or_path
    if p.is_dir():
        return p
    q = Path(name_or_path)
    if q.is_dir() and (q / "kustomization.yaml").exists():
        return q.resolve()
    raise ConfigError(
        f"no kustomize overlay {name_or_path!r}",
        hint="use local, staging, or a directory with a kustomization.yaml",
    )


def kubectl() -> str:
    bins = build.cached_binaries()
    if bins is not None and "kubectl" in bins.paths:
        return str(bins.paths["kubectl"])
    found = shutil.which("kubectl")
    if found is None:
        raise ToolMissingError("kubectl is needed to render and apply the stack", hint="nox -s cluster -- build")
    return found


def _kubectl(target: kube.Target, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [kubectl(), f"--kubeconfig={target.kubeconfig}"]
    if target.context:
        cmd.append(f"--context={target.context}")
    return subprocess.run([*cmd, *args], input=stdin, capture_output=True, text=True, check=False)


def render(overlay: Path, namespace: str) -> list[dict[str, Any]]:
    """The overlay's objects, placed in ``namespace`` by kustomize itself (RoleBinding subjects
    included), so the result is exactly what ``kubectl kustomize`` users would see."""
    with tempfile.TemporaryDirectory(prefix="seatrial-render-") as tmp:
        Path(tmp, "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "namespace": namespace,
                    "resources": [os.path.relpath(overlay, tmp)],
                }
            )
        )
        proc = subprocess.run([kubectl(), "kustomize", tmp], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"kustomize could not render {overlay}: {proc.stderr.strip()}")
    try:
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    except yaml.YAMLError as exc:
        raise ConfigError(f"the render of {overlay} is not YAML: {yaml_problem(exc)}") from None
    if any(d.get("kind") == "Secret" for d in docs):
        raise ConfigError(f"{overlay} renders a Secret: secrets are created at deploy time, never committed")
    return docs


@dataclass
class Workload:
    kind: str
    name: str
    ready: bool = False
    progress: str = ""
    reasons: list[str] = field(default_factory=list)
    fatal: bool = False

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class Deployed:
    namespace: str
    target: kube.Target
    objects: list[dict[str, Any]]
    seconds: float = 0.0

    def secret(self, key: str) -> str:
        import base64

        core = client.CoreV1Api(kube.api_client(self.target))
        with kube.translate(f"reading {SECRET_NAME}"):
            data = core.read_namespaced_secret(SECRET_NAME, self.namespace).data or {}
        return base64.b64decode(data[key]).decode()


def _say(message: str) -> None:
    build.say(message)


class Stack:
    def __init__(self, target: kube.Target, *, local: Any = None) -> None:
        self.target = target
        self.local = local  # the LocalCluster when deploying to it: images and volumes are ours to provide
        api = kube.api_client(target)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)

    # ---- deploy ----------------------------------------------------------------------------
    def deploy(
        self,
        overlay: Path,
        *,
        namespace: str | None = None,
        timeout: float = 300.0,
        cleanup_on_failure: bool = False,
    ) -> Deployed:
        started = time.monotonic()
        ns = namespace or f"seatrial-stack-{secrets.token_hex(3)}"
        objects = render(overlay, ns)
        if self.local is not None:
            from seatrial.cluster import images

            bins = build.cached_binaries()
            wanted = [images.stack_image(repo_root() / "apps")]
            if bins is not None and "etcd" in bins.paths:
                wanted.append(images.etcd_image(bins.paths["etcd"]))
            self.local.ensure_images(wanted)
            self.local.ensure_volumes(self.core)
        created = self._namespace(ns)
        try:
            self._apply(objects, ns, dry_run=True)
            self._secrets(ns)
            _say(f"applying {len(objects)} objects of {overlay.name} to namespace {ns}")
            self._apply(objects, ns, dry_run=False)
            self.wait_ready(ns, objects, timeout=timeout)
        except BaseException as exc:
            keep = created and not cleanup_on_failure and not isinstance(exc, ConfigError)
            if created and not keep:
                self.delete(ns, quiet=True)
            elif keep:
                _say(f"namespace {ns} is kept for inspection; remove it with: nox -s stack -- delete {ns}")
            raise
        seconds = time.monotonic() - started
        _say(f"reference stack ready in namespace {ns} in {seconds:.1f}s")
        return Deployed(ns, self.target, objects, seconds)

    def _namespace(self, ns: str) -> bool:
        """Create the run's namespace; reuse one only if seatrial made it (never adopt a stranger)."""
        with kube.translate(f"reading namespace {ns}"):
            existing = [n for n in self.core.list_namespace().items if kube.name_of(n) == ns]
        if existing:
            labels = (existing[0].metadata.labels or {}) if existing[0].metadata else {}
            if labels.get(STACK_LABEL) != "reference":
                raise ConfigError(f"namespace {ns} exists and was not created by seatrial; pick another")
            return False
        body = {"metadata": {"name": ns, "labels": MANAGED | runs.labels()}}  # a run's own: cleaned if it dies
        with kube.translate(f"creating namespace {ns}"):
            self.core.create_namespace(client.V1Namespace.model_validate(body))
        return True

    def _secrets(self, ns: str) -> None:
        body = {
            "metadata": {"name": SECRET_NAME, "labels": MANAGED},
            "type": "Opaque",
            "stringData": {k: secrets.token_urlsafe(24) for k in SECRET_KEYS},
        }
        with kube.translate(f"creating secret {SECRET_NAME}"):
            self.core.create_namespaced_secret(ns, client.V1Secret.model_validate(body))

    def _apply(self, objects: list[dict[str, Any]], ns: str, *, dry_run: bool) -> None:
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(MANAGED)
        args = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", ns, "-f", "-"]
        if dry_run:
            args.insert(1, "--dry-run=server")
        proc = _kubectl(self.target, *args, stdin=yaml.safe_dump_all(objects))
        if proc.returncode != 0 and dry_run:
            raise ConfigError(
                f"the API server rejected the stack (server-side dry run; nothing was applied): {proc.stderr.strip()}"
            )
        if proc.returncode != 0:
            raise ClusterError(f"applying the stack failed: {proc.stderr.strip()}")

    # ---- readiness -------------------------------------------------------------------------
    def _read(self, kind: str, name: str, ns: str) -> dict[str, Any]:
        readers = {
            "Deployment": self.apps.read_namespaced_deployment,
            "StatefulSet": self.apps.read_namespaced_stateful_set,
            "DaemonSet": self.apps.read_namespaced_daemon_set,
            "Job": self.batch.read_namespaced_job,
        }
        with kube.translate(f"reading {kind}/{name}"):
            return kube.as_dict(readers[kind](name, ns))

    def workloads(self, ns: str, objects: list[dict[str, Any]]) -> list[Workload]:
        out = []
        for obj in objects:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if kind not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
                continue
            w = Workload(kind, name)
            o = self._read(kind, name, ns)
            spec, st = o.get("spec", {}), o.get("status", {})
            if kind in ("Deployment", "StatefulSet"):
                want, ready = spec.get("replicas", 1), st.get("readyReplicas", 0)
                current = st.get("updatedReplicas", 0) >= want and st.get("observedGeneration") == o["metadata"].get(
                    "generation"
                )
                w.ready, w.progress = ready >= want and current, f"{ready}/{want} ready"
            elif kind == "DaemonSet":
                want, ready = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
                w.ready, w.progress = ready >= want > 0, f"{ready}/{want} ready"
            else:
                done, want = st.get("succeeded", 0), spec.get("completions", 1)
                w.ready, w.progress = done >= want, f"{done}/{want} complete"
                for cond in st.get("conditions", []):
                    if cond["type"] == "Failed" and cond["status"] == "True":
                        w.fatal = True
                        w.reasons.append(f"the Job failed: {cond.get('reason')}: {cond.get('message')}")
            out.append(w)
        return out

    def _diagnose(self, ns: str, w: Workload, *, age: float) -> None:
        """Why a workload is not ready, from its pods' conditions, container states and events."""
        selector = f"app.kubernetes.io/name={w.name}"
        with kube.translate(f"listing pods of {w.label}"):
            pods = [kube.as_dict(p) for p in self.core.list_namespaced_pod(ns, label_selector=selector).items]
            events = [kube.as_dict(e) for e in self.core.list_namespaced_event(ns).items]
        if not pods and w.kind != "DaemonSet":
            w.reasons.append("no pod was created (see the controller's events: kubectl describe)")
        for pod in pods:
            pname, st = pod["metadata"]["name"], pod.get("status", {})
            for cond in st.get("conditions", []):
                if cond["type"] == "PodScheduled" and cond["status"] == "False":
                    w.reasons.append(f"pod {pname} cannot be scheduled: {cond.get('message')}")
            for cs in st.get("containerStatuses", []):
                waiting = cs.get("state", {}).get("waiting", {})
                reason = waiting.get("reason", "")
                if reason in IMAGE_ERRORS | CONFIG_ERRORS:
                    w.reasons.append(f"pod {pname}: {reason}: {waiting.get('message') or cs.get('image')}")
                    w.fatal = w.fatal or age > 20  # it will not fix itself
                elif reason == "CrashLoopBackOff":
                    term = cs.get("lastState", {}).get("terminated", {})
                    w.reasons.append(
                        f"pod {pname}: container {cs['name']} keeps crashing"
                        f" (exit {term.get('exitCode')}; last log line: {self._last_log(ns, pname, cs['name'])})"
                    )
                    w.fatal = w.fatal or cs.get("restartCount", 0) >= 3
            for ev in events:
                if (
                    ev.get("type") == "Warning"
                    and ev.get("involvedObject", {}).get("name") == pname
                    and ev.get("reason") in ("Unhealthy", "BackOff", "FailedMount", "FailedScheduling")
                ):
                    w.reasons.append(f"pod {pname}: {ev.get('reason')}: {ev.get('message')}")
        w.reasons = list(dict.fromkeys(w.reasons))[:6]

    def _last_log(self, ns: str, pod: str, container: str) -> str:
        try:
            with kube.translate(f"reading the log of {pod}"):
                text = self.core.read_namespaced_pod_log(pod, ns, container=container, previous=True, tail_lines=5)
        except ClusterError:
            return "(no log)"
        lines = [line for line in str(text).splitlines() if line.strip()]
        return lines[-1].strip() if lines else "(empty log)"

    def wait_ready(self, ns: str, objects: list[dict[str, Any]], *, timeout: float) -> None:
        started = time.monotonic()
        last_line, last_print = "", 0.0
        while True:
            ws = self.workloads(ns, objects)
            pending = [w for w in ws if not w.ready]
            if not pending:
                return
            age = time.monotonic() - started
            for w in pending:
                self._diagnose(ns, w, age=age)
            fatal = [w for w in pending if w.fatal]
            if fatal or age > timeout:
                order = fatal + [w for w in pending if not w.fatal]  # what cannot recover first
                lines = [f"{w.label} ({w.progress}): {'; '.join(w.reasons) or 'not ready yet'}" for w in order]
                why = "cannot become ready" if fatal else f"was not ready within {timeout:.0f}s"
                raise ClusterError(f"the stack in {ns} {why}:\n  " + "\n  ".join(lines))
            line = ", ".join(f"{w.label} {w.progress}" for w in pending)
            if line != last_line or time.monotonic() - last_print > 15:
                _say(f"  [{age:4.0f}s] waiting for {line}")
                if line == last_line:  # stuck for a while: say why
                    for w in pending:
                        if w.reasons:
                            _say(f"         {w.label}: {w.reasons[0]}")
                last_line, last_print = line, time.monotonic()
            time.sleep(1)

    # ---- delete / status -------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        with kube.translate("listing stack namespaces"):
            items = self.core.list_namespace(label_selector=f"{STACK_LABEL}=reference").items
        return sorted(kube.name_of(n) for n in items)

    def delete(self, ns: str, *, quiet: bool = False, timeout: float = 120.0) -> None:
        if ns not in self.namespaces():
            raise ConfigError(f"namespace {ns} is not a seatrial stack namespace; not deleting it")
        if not quiet:
            _say(f"deleting namespace {ns} and everything in it")
        # Workloads first, then wait for their pods: the namespace controller, finding pods still
        # terminating, re-checks only after their longest grace period (60 s for inference).
        with kube.translate(f"deleting the workloads in {ns}"):
            for collection in (
                self.apps.delete_collection_namespaced_deployment,
                self.apps.delete_collection_namespaced_stateful_set,
                self.apps.delete_collection_namespaced_daemon_set,
                self.batch.delete_collection_namespaced_job,
            ):
                collection(ns, propagation_policy="Background")

        def no_pods() -> bool:
            with kube.translate(f"listing pods in {ns}"):
                return not self.core.list_namespaced_pod(ns).items

        kube.wait_for(f"the pods in {ns} to stop", no_pods, timeout=timeout)
        with kube.translate(f"deleting namespace {ns}"):
            self.core.delete_namespace(ns)
        kube.wait_namespaces_gone(self.core, [ns], selector=f"{STACK_LABEL}=reference", timeout=timeout)
        if self.local is not None:
            self.local.ensure_volumes(self.core)  # released local volumes are wiped and offered again

    def listed(self, ns: str) -> list[dict[str, Any]]:
        """The workloads found in a namespace, in the shape ``render`` returns."""
        with kube.translate(f"reading the stack in {ns}"):
            return [
                {"kind": k, "metadata": {"name": n}}
                for k, lister in (
                    ("Deployment", self.apps.list_namespaced_deployment),
                    ("StatefulSet", self.apps.list_namespaced_stateful_set),
                    ("DaemonSet", self.apps.list_namespaced_daemon_set),
                    ("Job", self.batch.list_namespaced_job),
                )
                for n in (kube.name_of(o) for o in lister(ns).items)
            ]

    def status(self) -> list[str]:
        lines = []
        for ns in self.namespaces():
            ws = self.workloads(ns, self.listed(ns))
            state = "ready" if ws and all(w.ready for w in ws) else "not ready"
            lines.append(f"{ns}: {state}")
            lines += [f"  {w.label:<28} {w.progress}" for w in ws]
        return lines or ["no reference stack is deployed"]


def on_target(target: kube.Target | None) -> Stack:
    """A Stack on the named cluster, or on the local cluster (started if needed)."""
    if target is not None:
        return Stack(target)
    from seatrial.cluster.local import LocalCluster

    cluster = LocalCluster()
    cluster.up()
    return Stack(cluster.target(), local=cluster)
