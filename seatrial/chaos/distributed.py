"""The load from inside the cluster: a locust master and N workers as pods, for stacks one machine
cannot load (or cannot reach).

The pods run the same locustfile (a ConfigMap) with the API key from the stack's own Secret (a
``secretKeyRef``, so the key is in no pod spec). Workers forward each request's row to the
master as a locust message; the master prints them, marked, on its stdout; seatrial follows the
master's log through the API and appends the rows to the same ``requests.csv`` the local load
writes, so everything downstream (percentiles, recovery, the timeline) is one code path.

Everything it creates is labelled with the run and ``app.kubernetes.io/managed-by: seatrial``
and removed when the block ends, whatever ends it; a run killed with ``-9`` leaves objects a
later cleanup finds by those labels.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from seatrial import kube
from seatrial.chaos import ledger
from seatrial.chaos.loadgen import HEADER, LOCUSTFILE, ROW_MARK, Locust
from seatrial.chaos.target import LoadTarget
from seatrial.errors import ClusterError

log = logging.getLogger("seatrial.chaos")
MANAGED = {"app.kubernetes.io/managed-by": "seatrial", "app.kubernetes.io/name": "seatrial-load"}
MASTER_PORT = 5557


class ClusterLocust(Locust):
    """``with ClusterLocust(target, api=..., namespace=..., workers=2, image=..., ...) as lg:``"""

    start_timeout = 120.0  # pods to schedule and start, workers to connect, the first requests

    def __init__(
        self,
        target: LoadTarget,
        *,
        users: int,
        log: Path,
        api: client.ApiClient,
        namespace: str,
        workers: int,
        image: str,
        auth_secret: str | None,
        spawn_rate: float | None = None,
        prompts: int = 200,
    ) -> None:
        super().__init__(target, users=users, log=log, spawn_rate=spawn_rate, prompts=prompts)
        self.core = client.CoreV1Api(api)
        self.namespace, self.workers, self.image, self.auth_secret = namespace, workers, image, auth_secret
        self.name = f"seatrial-load-{uuid.uuid4().hex[:6]}"
        self.labels = {**MANAGED, ledger.RUN_LABEL: ledger.current().run_id}
        self.follower: threading.Thread | None = None
        self.created: list[tuple[str, str]] = []  # (kind, name), to remove in reverse

    # ---- objects -----------------------------------------------------------------------------
    def _meta(self, name: str, component: str) -> dict[str, Any]:
        return {
            "name": name,
            "labels": {**self.labels, "app.kubernetes.io/component": component},
            "annotations": {"seatrial.dev/purpose": "load for a chaos experiment; removed when it ends"},
        }

    def _env(self, *, master: bool) -> list[dict[str, Any]]:
        env: list[dict[str, Any]] = [
            {"name": "SEATRIAL_LOAD_PATH", "value": urlsplit(self.target.url).path or "/"},
            {"name": "SEATRIAL_LOAD_PROMPTS", "value": str(self.prompts)},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ]
        if master:  # its rows (every worker's) go to stdout; a worker's go to the master
            env.append({"name": "SEATRIAL_LOAD_LOG", "value": "-"})
        elif self.auth_secret:
            secret, key = self.auth_secret.split("/")
            ref = {"secretKeyRef": {"name": secret, "key": key}}
            env.append({"name": "SEATRIAL_LOAD_TOKEN", "valueFrom": ref})
        return env

    def _pod(self, name: str, component: str, args: list[str]) -> dict[str, Any]:
        container = {
            "name": "locust",
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["python3", "-m", "locust"],
            "args": ["-f", "/seatrial/locustfile.py", "--loglevel", "WARNING", *args],
            "env": self._env(master=component == "master"),
            "ports": [{"containerPort": MASTER_PORT, "name": "locust"}] if component == "master" else [],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "locustfile", "mountPath": "/seatrial", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
        return {
            "metadata": self._meta(name, component),
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 10,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": {**copy.deepcopy(kube.RESTRICTED_POD), "runAsUser": 65534, "runAsGroup": 65534},
                "containers": [container],
                "volumes": [
                    {"name": "locustfile", "configMap": {"name": self.name}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                ],
            },
        }

    def _create_pod(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        self.created.append(("Pod", name))  # before: a create that times out may still have happened
        with kube.translate(f"creating load pod {self.namespace}/{name}"):
            self.core.create_namespaced_pod(self.namespace, client.V1Pod.model_validate(body))

    def _running_ip(self, name: str) -> str:
        def ip() -> str | None:
            with kube.translate(f"reading load pod {self.namespace}/{name}"):
                pod = kube.as_dict(self.core.read_namespaced_pod(name, self.namespace))
            st = pod.get("status") or {}
            if st.get("phase") in ("Failed", "Succeeded"):
                raise ClusterError(f"load pod {self.namespace}/{name} ended at start: {_why(st)}")
            return str(st.get("podIP") or "") if st.get("phase") == "Running" else None

        def why() -> str:
            with contextlib.suppress(ApiException):
                return _why(kube.as_dict(self.core.read_namespaced_pod(name, self.namespace)).get("status") or {})
            return ""

        return kube.wait_for(f"load pod {self.namespace}/{name} to run", ip, timeout=self.start_timeout, on_timeout=why)

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> ClusterLocust:
        ledger.current().allow(self.namespace, "run the distributed load")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text(",".join(HEADER) + "\n")
        self.started = time.time()
        try:
            self.created.append(("ConfigMap", self.name))
            cm = {"metadata": self._meta(self.name, "locustfile"), "data": {"locustfile.py": LOCUSTFILE.read_text()}}
            with kube.translate(f"creating ConfigMap {self.namespace}/{self.name}"):
                self.core.create_namespaced_config_map(self.namespace, client.V1ConfigMap.model_validate(cm))
            parts = urlsplit(self.target.url)
            master_args = [
                "--master", "--headless", "--expect-workers", str(self.workers), "--expect-workers-max-wait", "90",
                "-u", str(self.users), "-r", str(self.spawn_rate), "-H", f"{parts.scheme}://{parts.netloc}",
                "--master-bind-port", str(MASTER_PORT), "--only-summary",
            ]  # fmt: skip
            self._create_pod(self._pod(f"{self.name}-master", "master", master_args))
            master_ip = self._running_ip(f"{self.name}-master")
            self.follower = threading.Thread(target=self._follow, name="load-log", daemon=True)
            self.follower.start()
            for i in range(self.workers):
                args = ["--worker", "--master-host", master_ip, "--master-port", str(MASTER_PORT)]
                self._create_pod(self._pod(f"{self.name}-worker-{i}", "worker", args))
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_requests(self, count: int = 10, timeout: float | None = None) -> None:
        super().wait_for_requests(count, timeout or self.start_timeout)

    def _follow(self) -> None:
        """Append the master's marked rows to the local log until its container ends."""
        name = f"{self.name}-master"
        try:
            resp = self.core.read_namespaced_pod_log(
                name, self.namespace, container="locust", follow=True, _preload_content=False
            )
            with self.log.open("a") as fh:
                for raw in cast(Any, resp):  # not preloaded: urllib3's response, by lines
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    if line.startswith(ROW_MARK):
                        fh.write(line[len(ROW_MARK) :] + "\n")
                        fh.flush()
        except Exception as exc:  # the load's log ending early shows as missing requests, and here
            log.warning("following the load master's log stopped: %s", exc)

    def stop(self) -> None:
        """Workers first (their rows are already at the master), then the master once its log has
        drained, then the ConfigMap. Each removal is attempted whatever happened to the others."""
        pods = [n for k, n in self.created if k == "Pod"]
        workers = [n for n in pods if "-worker-" in n]
        for name in workers:
            self._delete("Pod", name, grace=5)
        self._gone(workers, timeout=30)
        time.sleep(1.0)  # the last forwarded rows reach the master's stdout
        for name in (n for n in pods if n.endswith("-master")):
            self._delete("Pod", name, grace=5)
        if self.follower is not None:
            self.follower.join(timeout=20)
        for kind, name in reversed(self.created):
            if kind == "ConfigMap":
                self._delete(kind, name)
        self._gone(pods, timeout=30)
        self.created.clear()

    def _delete(self, kind: str, name: str, grace: int | None = None) -> None:
        try:
            if kind == "Pod":
                self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=grace)
            else:
                self.core.delete_namespaced_config_map(name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                log.error("could not remove load %s %s/%s: %s", kind, self.namespace, name, exc.reason)

    def _gone(self, pods: list[str], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        left = list(pods)
        while left and time.monotonic() < deadline:
            for name in list(left):
                try:
                    self.core.read_namespaced_pod(name, self.namespace)
                except ApiException as exc:
                    if exc.status == 404:
                        left.remove(name)
            time.sleep(0.5)


def _why(status: dict[str, Any]) -> str:
    """The pod's state in a line: its phase, and each waiting or terminated container's reason."""
    parts = [str(status.get("phase") or "Pending")]
    for c in status.get("containerStatuses") or []:
        st = c.get("state") or {}
        for key in ("waiting", "terminated"):
            if st.get(key):
                parts.append(f"{key} {st[key].get('reason', '')} {st[key].get('message', '') or ''}".strip())
    for cond in status.get("conditions") or []:
        if cond.get("status") == "False" and cond.get("message"):
            parts.append(str(cond["message"]))
    return "; ".join(parts)
