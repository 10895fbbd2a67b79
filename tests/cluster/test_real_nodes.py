"""Issue 3, acceptance 1-2: real pods behind a real Service, by ClusterIP from the host and by DNS
from another pod; readiness really takes a pod out of rotation; logs and exec work."""

from __future__ import annotations

import collections
import os
import subprocess
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from seatrial import kube
from seatrial.cluster import build, images

from .conftest import deployment, pods_of, ready_pods, wait

REAL = {"seatrial.dev/real-node": "true"}
# A tiny server that says which pod answered, and fails readiness while /tmp/unready exists.
SERVER = """
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == '/ready' and os.path.exists('/tmp/unready'):
            self.send_response(503); self.end_headers(); return
        self.send_response(200); self.end_headers(); self.wfile.write(socket.gethostname().encode())
http.server.ThreadingHTTPServer(('', 8080), H).serve_forever()
"""


def web_spec() -> dict[str, Any]:
    return {
        "nodeSelector": REAL,
        "terminationGracePeriodSeconds": 5,
        "containers": [
            {
                "name": "web",
                "image": images.PYTHON,
                "imagePullPolicy": "Never",
                "command": ["python3", "-c", SERVER],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": 8080},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                },
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            }
        ],
    }


@pytest.fixture(scope="module")
def real_nodes(core: client.CoreV1Api) -> list[str]:
    nodes = [kube.name_of(n) for n in core.list_node(label_selector="seatrial.dev/real-node=true").items]
    if not nodes:
        pytest.skip("the cluster has no real nodes (no RealNodePool in the node pools)")
    return nodes


@pytest.fixture(scope="module")
def web(core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str, real_nodes: list[str]) -> str:
    apps.create_namespaced_deployment(namespace, deployment("web", 3, web_spec()))
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    ready_pods(core, namespace, "web", 3, timeout=120)
    ip = str(core.read_namespaced_service("web", namespace).spec.cluster_ip)
    wait_routed(ip, {p.metadata.name for p in pods_of(core, namespace, "web")})
    return ip


def wait_routed(ip: str, pods: set[str]) -> None:
    """Ready pods are not yet routable: each kube-proxy programs new endpoints on its next sync.
    Wait until requests reach every pod and none fails."""
    seen: set[str] = set()

    def routed() -> bool:
        answers = hit(f"http://{ip}/", 10)
        if any(a.startswith("error") for a in answers):
            seen.clear()
            return False
        seen.update(answers)
        return seen >= pods

    wait(f"kube-proxy to route the Service to all of {sorted(pods)}", routed, timeout=60)


def hit(url: str, n: int) -> collections.Counter[str]:
    answers: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                answers[resp.read().decode()] += 1
        except OSError as exc:
            answers[f"error: {exc}"] += 1
    return answers


def kubectl(target: kube.Target, *args: str) -> subprocess.CompletedProcess[str]:
    bins = build.cached_binaries()
    assert bins is not None
    return subprocess.run(
        [str(bins["kubectl"]), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ | {"KUBECONFIG": str(target.kubeconfig)},
    )


def test_service_answers_from_host_by_cluster_ip(web: str, core: client.CoreV1Api, namespace: str) -> None:
    answers = hit(f"http://{web}/", 30)
    pods = {p.metadata.name for p in pods_of(core, namespace, "web")}
    assert set(answers) <= pods, answers  # every request answered by a web pod, none failed
    assert sum(answers.values()) == 30
    assert len(answers) >= 2  # and the Service balances over pods (on more than one node)
    assert len({p.spec.node_name for p in pods_of(core, namespace, "web")}) >= 2


def test_service_answers_by_dns_name_from_another_pod(
    web: str, kube_target: kube.Target, namespace: str, core: client.CoreV1Api
) -> None:
    pod = pods_of(core, namespace, "web")[0].metadata.name
    url = f"http://web.{namespace}.svc.cluster.local/"
    proc = kubectl(
        kube_target,
        "-n",
        namespace,
        "exec",
        pod,
        "--",
        "python3",
        "-c",
        # retried a few seconds: this pod's node may program the Service a moment after the host's
        "import time, urllib.request\n"
        "for attempt in range(20):\n"
        "    try:\n"
        f"        print(urllib.request.urlopen({url!r}, timeout=5).read().decode()); break\n"
        "    except OSError:\n"
        "        time.sleep(0.5)\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in {p.metadata.name for p in pods_of(core, namespace, "web")}


def test_logs_show_the_requests(web: str, kube_target: kube.Target, namespace: str, core: client.CoreV1Api) -> None:
    hit(f"http://{web}/", 6)
    logs = "".join(
        kubectl(kube_target, "-n", namespace, "logs", p.metadata.name).stdout for p in pods_of(core, namespace, "web")
    )
    assert '"GET / HTTP/1.1" 200' in logs


def test_unready_pod_leaves_endpoints_and_gets_no_traffic(
    web: str, kube_target: kube.Target, namespace: str, core: client.CoreV1Api, api: client.ApiClient
) -> None:
    victim = pods_of(core, namespace, "web")[0].metadata.name
    assert kubectl(kube_target, "-n", namespace, "exec", victim, "--", "touch", "/tmp/unready").returncode == 0
    discovery = client.DiscoveryV1Api(api)

    def out_of_rotation() -> bool:
        slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector="kubernetes.io/service-name=web")
        for s in slices.items:
            for ep in s.endpoints or []:
                if ep.target_ref and ep.target_ref.name == victim:
                    return not ep.conditions.ready
        return False

    wait(f"{victim} to be marked not ready in the EndpointSlice", out_of_rotation, timeout=30)
    # kube-proxy applies the change on its next sync (about a second): wait for the data plane too
    wait("kube-proxy to stop sending traffic to it", lambda: victim not in hit(f"http://{web}/", 10), timeout=15)
    answers = hit(f"http://{web}/", 30)
    assert victim not in answers and sum(answers.values()) == 30 and not any(a.startswith("error") for a in answers)
    kubectl(kube_target, "-n", namespace, "exec", victim, "--", "rm", "/tmp/unready")
    ready_pods(core, namespace, "web", 3)
