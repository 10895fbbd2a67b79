"""Where load and probes go: the profile's Service by ClusterIP, with its API key in memory only.

Shared by the acting checks (ROLL-008's load), the chaos load (locust) and the experiments'
probes, so all three hit the same front door with the same credentials.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from kubernetes import client

from seatrial import kube
from seatrial.errors import ClusterError, ConfigError, NotFoundError
from seatrial.profile import Load


@dataclass(frozen=True)
class LoadTarget:
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.headers.get("Authorization", "").removeprefix("Bearer ")


def load_target(api: client.ApiClient, namespace: str, load: Load) -> LoadTarget:
    """The URL of ``load.service`` and the bearer token from ``load.authSecret``, read now."""
    core = client.CoreV1Api(api)
    try:
        with kube.translate(f"reading Service {load.service} in {namespace}"):
            svc = kube.as_dict(core.read_namespaced_service(load.service, namespace))
    except NotFoundError:  # the profile names what to load: a wrong name is the profile's to fix
        raise ConfigError(
            f"namespace {namespace} has no Service {load.service} to send load to (or is not there)",
            hint="check the profile's namespaces and load.service",
        ) from None
    ip = (svc.get("spec") or {}).get("clusterIP")
    if not ip or ip == "None":
        raise ConfigError(f"Service {namespace}/{load.service} has no ClusterIP to send load to")
    headers: dict[str, str] = {}
    if load.auth_secret:
        name, key = load.auth_secret.split("/")
        with kube.translate(f"reading Secret {name} in {namespace}"):
            data = core.read_namespaced_secret(name, namespace).data or {}
        if key not in data:
            raise ClusterError(f"Secret {namespace}/{name} has no key {key} (the profile's load.authSecret)")
        headers["Authorization"] = f"Bearer {base64.b64decode(data[key]).decode()}"
    return LoadTarget(f"http://{ip}:{load.port}{load.path}", headers)
