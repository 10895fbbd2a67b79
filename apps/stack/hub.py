"""The routing registry (the PanGalactic seed's hub): inference replicas register, gateways ask
where a model is served, node agents heartbeat. State lives in etcd under leases, so a replica
that stops heartbeating disappears by itself and a hub restart loses nothing.

It is a single replica by design (a documented exception to the spread rules): it holds no state
of its own, and gateways keep their last answer while it restarts.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from stack.common import Etcd, HttpError, Request, Service, every, kube_get, log, setup_logging

TTL = 15


def main() -> None:
    setup_logging("hub")
    etcd = Etcd([e.strip() for e in os.environ.get("ETCD_ENDPOINTS", "http://etcd:2379").split(",") if e.strip()])
    svc = Service("hub", int(os.environ.get("PORT", "8080")))
    namespace = os.environ.get("POD_NAMESPACE", "")

    def readyz(_r: Request) -> tuple[int, Any]:
        if svc.draining.is_set():
            return 503, {"status": "draining"}
        return (200, {"status": "ok"}) if etcd.healthy() else (503, {"status": "etcd unreachable"})

    def healthz(_r: Request) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    def register(r: Request) -> tuple[int, Any]:
        body = r.json()
        name, model, url = body.get("name"), body.get("model"), body.get("url")
        if not (isinstance(name, str) and isinstance(model, str) and isinstance(url, str)):
            raise HttpError(400, "name, model and url are required strings")
        lease = etcd.grant(TTL)
        etcd.put(f"/hub/backends/{model}/{name}", json.dumps({"name": name, "url": url}), lease)
        svc.metrics.inc("hub_registrations_total")
        return 200, {"ttl": TTL}

    def deregister(r: Request) -> tuple[int, Any]:
        body = r.json()
        etcd.delete(f"/hub/backends/{body.get('model')}/{body.get('name')}")
        return 200, {}

    def backends(r: Request) -> tuple[int, Any]:
        model = r.headers.get("X-Model") or "seatrial-tiny"
        found = [json.loads(v) for v in etcd.prefix(f"/hub/backends/{model}/").values()]
        return 200, {"model": model, "backends": sorted(found, key=lambda b: b["name"])}

    def heartbeat(r: Request) -> tuple[int, Any]:
        body = r.json()
        node = body.get("node")
        if not isinstance(node, str):
            raise HttpError(400, "node is required")
        etcd.put(f"/hub/nodes/{node}", json.dumps(body), etcd.grant(TTL))
        return 200, {}

    def nodes(_r: Request) -> tuple[int, Any]:
        return 200, {"nodes": sorted(etcd.prefix("/hub/nodes/"))}

    def prune() -> None:
        """Drop registrations of pods that no longer exist, faster than their lease would.
        This is why the hub's ServiceAccount may list pods (and nothing else)."""
        if not namespace:
            return
        live = {
            p["metadata"]["name"]
            for p in kube_get(f"/api/v1/namespaces/{namespace}/pods?labelSelector=app.kubernetes.io/name%3Dinference")[
                "items"
            ]
        }
        for key in etcd.prefix("/hub/backends/"):
            if key.rsplit("/", 1)[-1] not in live:
                log.info("pruning %s: its pod is gone", key)
                etcd.delete(key)

    svc.route("GET", "/readyz", readyz)
    svc.route("GET", "/healthz", healthz)
    svc.route("POST", "/v1/register", register)
    svc.route("POST", "/v1/deregister", deregister)
    svc.route("GET", "/v1/backends", backends)
    svc.route("POST", "/v1/nodes/heartbeat", heartbeat)
    svc.route("GET", "/v1/nodes", nodes)
    stop = threading.Event()
    if os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"):
        every(10, prune, stop)
    svc.serve(on_drain=stop.set)


if __name__ == "__main__":
    main()
