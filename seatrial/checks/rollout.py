"""Rollout safety: a new version replaces the old without dropping capacity or requests, probes
say the right thing at the right time, and images are what was tested."""

from __future__ import annotations

import re
from collections.abc import Iterator

from seatrial.checks import crds
from seatrial.checks.inventory import Container, Facts, Inventory, Obj, Workload
from seatrial.checks.model import Finding
from seatrial.checks.registry import check

SERVING = ("serving", "gpu-inference")
MOVING_WORDS = {"latest", "nightly", "edge", "snapshot", "canary"}  # moving in any tag: main-latest, latest-gpu
MUTABLE_TAGS = re.compile(r"^(latest|main|master|dev|develop|edge|stable|nightly|head|trunk|release|prod|staging)$")


def _serving(inv: Inventory) -> list[Workload]:
    return [w for w in inv.workloads if w.role in SERVING and not crds.operator_probed(w.obj)]


def _probe_window(probe: Obj | None) -> float:
    """Seconds a probe gives a starting container before it acts."""
    if not probe:
        return 0.0
    return float(probe.get("initialDelaySeconds", 0)) + float(probe.get("periodSeconds", 10)) * float(
        probe.get("failureThreshold", 3)
    )


def _sleep_seconds(c: Container) -> float:
    pre = ((c.spec.get("lifecycle") or {}).get("preStop")) or {}
    if "sleep" in pre:
        return float((pre["sleep"] or {}).get("seconds", 0))
    cmd = " ".join(str(x) for x in ((pre.get("exec") or {}).get("command") or []))
    m = re.search(r"sleep\s+([0-9.]+)", cmd)
    return float(m.group(1)) if m else 0.0


@check(
    "ROLL-001",
    "Rolling updates keep serving capacity",
    family="rollout",
    severity="high",
    why="maxUnavailable that takes half the replicas (or more) away at once halves capacity in the middle "
    "of every deploy; maxSurge 0 with it removes capacity before adding any.",
    fix="Use maxUnavailable: 0 with maxSurge: 1 (or a small maxUnavailable on large Deployments).",
)
def keeps_capacity(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in _serving(inv):
        r = w.rolling_update()
        if r is None or not w.replicas:
            continue
        _, unavailable = r
        if unavailable > 0 and unavailable * 2 >= w.replicas:
            yield Finding(
                "ROLL-001",
                w.ref,
                "spec.strategy.rollingUpdate",
                f"maxUnavailable takes {unavailable} of {w.replicas} replicas away",
            )


@check(
    "ROLL-002",
    "Serving Deployments roll out by surging",
    family="rollout",
    severity="low",
    why="maxSurge 0 means every new pod first costs an old one: capacity dips on every deploy even when "
    "the cluster had room.",
    fix="Set maxSurge: 1 (GPU Deployments: only if a spare GPU exists, see GPU-007).",
)
def surges(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in _serving(inv):
        r = w.rolling_update()
        if r is not None and r[0] == 0 and not w.gpus:
            yield Finding("ROLL-002", w.ref, "spec.strategy.rollingUpdate.maxSurge", "is 0")


@check(
    "ROLL-003",
    "Serving workloads do not use the Recreate strategy",
    family="rollout",
    severity="high",
    why="Recreate stops every old pod before a new one starts: each deploy is an outage.",
    fix="Use RollingUpdate with maxUnavailable: 0 and maxSurge: 1.",
)
def no_recreate(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in _serving(inv):
        strategy = (w.spec.get("strategy") or w.spec.get("updateStrategy") or {}).get("type")
        if strategy in ("Recreate", "OnDelete"):
            yield Finding("ROLL-003", w.ref, "spec.strategy.type", f"is {strategy}")


@check(
    "ROLL-004",
    "Serving containers have a readiness probe, distinct from liveness",
    family="rollout",
    severity="high",
    why="Without readiness a pod gets traffic the moment it starts (before the model or cache is up); "
    "a readiness probe identical to liveness restarts pods that are only busy.",
    fix="Add a readinessProbe on an endpoint that checks the pod can serve; keep liveness to 'the process is alive'.",
)
def readiness(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in _serving(inv):
        for c in serving_containers(w):
            ready, live = c.spec.get("readinessProbe"), c.spec.get("livenessProbe")
            if not ready:
                yield Finding("ROLL-004", w.ref, c.where, "has no readinessProbe")
            elif live and _handler(ready) == _handler(live) and _patience(live) < TOLERANT * _patience(ready):
                yield Finding(
                    "ROLL-004",
                    w.ref,
                    c.where,
                    f"readinessProbe and livenessProbe check the same thing; liveness restarts after "
                    f"{_patience(live):.0f}s of failures, readiness acts after {_patience(ready):.0f}s "
                    f"(liveness should be at least {TOLERANT}x as patient)",
                )


TOLERANT = 3  # liveness this much more patient than readiness on one handler is a sound pattern (vLLM's /health)
SIDECARS = re.compile(
    r"kube-rbac-proxy|config-?reload|prometheus-config-reloader|istio-proxy|envoy|linkerd-proxy|oauth2-proxy"
    r"|fluent-?bit|fluentd|cloud-sql-proxy|vault-agent|git-sync"
)


def serving_containers(w: Workload) -> list[Container]:
    """The containers that take the traffic: not the known sidecars (an auth proxy, a config
    reloader, a mesh proxy), and of the rest those that expose ports, if any do."""
    own = [c for c in w.containers() if not SIDECARS.search(f"{c.spec.get('image', '')} {c.name}")]
    ported = [c for c in own if c.spec.get("ports")]
    return ported or own


def _handler(p: Obj) -> object:
    return {k: p[k] for k in ("httpGet", "tcpSocket", "exec", "grpc") if k in p}


def _patience(p: Obj) -> float:
    """Seconds of failures before a probe acts (restart for liveness, out of the Service for
    readiness)."""
    return float(p.get("periodSeconds", 10)) * float(p.get("failureThreshold", 3))


@check(
    "ROLL-005",
    "Liveness never kills a loading model",
    family="rollout",
    severity="high",
    why="A model takes minutes to load; a liveness probe that acts before that restarts the pod in a "
    "loop (CrashLoopBackOff) and the rollout never finishes.",
    fix="Add a startupProbe whose periodSeconds x failureThreshold covers the model load time "
    "(liveness waits for it), or an initialDelaySeconds that does.",
)
def model_load(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    for w in inv.workloads:
        if w.role != "gpu-inference" and not w.gpus:
            continue
        for c in w.containers():
            live, startup = c.spec.get("livenessProbe"), c.spec.get("startupProbe")
            if not live and not startup:
                continue
            window = _probe_window(startup) if startup else _probe_window(live)
            if window < facts.model_load_seconds:
                probe = "startupProbe" if startup else "livenessProbe"
                yield Finding(
                    "ROLL-005",
                    w.ref,
                    f"{c.where}.{probe}",
                    f"gives a loading model {window:.0f}s, less than the {facts.model_load_seconds:.0f}s budget",
                )


@check(
    "ROLL-006",
    "Serving pods finish in-flight requests before they stop",
    family="rollout",
    severity="medium",
    why="Endpoints are removed asynchronously: without a preStop pause the server stops while kube-proxies "
    "still send it traffic; a grace period shorter than the pause plus the drain cuts requests off.",
    fix="Add lifecycle.preStop (sleep 5-10 s) and a terminationGracePeriodSeconds longer than the "
    "pause plus your longest request.",
)
def graceful_stop(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in _serving(inv):
        grace = float(w.pod.get("terminationGracePeriodSeconds", 30))
        for c in w.containers():
            if not (c.spec.get("lifecycle") or {}).get("preStop"):
                yield Finding("ROLL-006", w.ref, c.where, "has no preStop hook")
            elif _sleep_seconds(c) >= grace:
                yield Finding(
                    "ROLL-006",
                    w.ref,
                    "terminationGracePeriodSeconds",
                    f"{grace:.0f}s leaves no time after a {_sleep_seconds(c):.0f}s preStop",
                )


@check(
    "ROLL-007",
    "Images are pinned",
    family="rollout",
    severity="medium",
    why="A mutable tag (:latest, :main, no tag) means the image that runs is not the one that was tested, "
    "and two replicas of one Deployment may run different code.",
    fix="Use a version tag or a digest (@sha256:…); then imagePullPolicy IfNotPresent is enough.",
)
def pinned_images(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        for c in w.containers(init=True):
            image = str(c.spec.get("image") or "")
            if not image or "@sha256:" in image:  # no image: a runtime fills it in (KServe's model)
                continue
            last = image.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else ""
            always = (
                "; imagePullPolicy Always pulls whatever it points to at every start"
                if c.spec.get("imagePullPolicy") == "Always"
                else ""
            )
            if not tag:
                yield Finding("ROLL-007", w.ref, f"{c.where}.image", f"{image} has no tag (means :latest){always}")
            elif MUTABLE_TAGS.match(tag) or MOVING_WORDS & set(re.split(r"[-_.]", tag.lower())):
                yield Finding("ROLL-007", w.ref, f"{c.where}.image", f"{image} uses the mutable tag :{tag}{always}")
