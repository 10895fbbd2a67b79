"""The actions and probes seatrial's experiments name (``type: python``, module
``seatrial.chaos.actions``), usable by ``chaos run`` alone as by seatrial's runner.

Why our own and not chaostoolkit-kubernetes': every action here asks the run's ``Ledger`` first
(blast radius, then the undo, then the act), and the probes answer the questions our verdicts
need (rolled out and ready, error rate through the front door). chaosk8s' ``terminate_pods``
works with our client but acts outside any such guard, and its ``count_pods`` counts
terminating pods as running.

Every provider takes Chaos Toolkit's ``configuration``: ``namespace`` (the stack's), optional
``kubeconfig`` and ``kube_context``, and the load target's ``service``, ``port``, ``path`` and
``auth_secret`` (defaults: the reference profile's).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client

from seatrial import kube, load, workloads
from seatrial.chaos import drain, ledger
from seatrial.chaos.target import LoadTarget, load_target
from seatrial.errors import ClusterError
from seatrial.profile import Load

Configuration = dict[str, Any] | None


def _api(configuration: Configuration) -> client.ApiClient:
    cfg = configuration or {}
    path = cfg.get("kubeconfig") or os.environ.get("KUBECONFIG") or "~/.kube/config"
    return kube.api_client(kube.Target(Path(str(path)).expanduser(), cfg.get("kube_context") or None))


def _namespace(configuration: Configuration) -> str:
    ns = str((configuration or {}).get("namespace") or "")
    if not ns:
        raise ledger.OutsideBlastRadius(
            "the experiment names no namespace", hint="set SEATRIAL_NAMESPACE (the experiment's configuration)"
        )
    return ns


def _target(api: client.ApiClient, configuration: Configuration) -> LoadTarget:
    cfg, default = configuration or {}, Load()
    spec = Load(
        service=str(cfg.get("service", default.service)),
        port=int(cfg.get("port", default.port)),
        path=str(cfg.get("path", "/v1/chat/completions")),
        auth_secret=str(cfg.get("auth_secret", "stack-secrets/api-key")) or None,
    )
    return load_target(api, _namespace(configuration), spec)


# ---- actions -------------------------------------------------------------------------------
def kill_pods(
    kind: str,
    name: str,
    *,
    count: int = 1,
    fraction: float | None = None,
    grace_period: int | None = None,
    recovery_timeout: float = 180.0,
    configuration: Configuration = None,
) -> list[str]:
    """Delete ``count`` (or ``fraction`` of the) ready pods of a workload, chosen at random. Its
    controller brings them back; the undo waits until the workload is rolled out and ready."""
    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, f"kill pods of {kind}/{name}")
    ready = [p for p in workloads.pods(api, kind, name, ns) if workloads.pod_ready(p)]
    n = max(1, round(len(ready) * fraction)) if fraction is not None else count
    victims = sorted(p["metadata"]["name"] for p in random.sample(ready, min(n, len(ready))))
    book.will(
        f"{kind}/{name} ready again after killing {', '.join(victims)}",
        lambda: workloads.wait_rolled_out(api, kind, name, ns, timeout=recovery_timeout),
    )
    core = client.CoreV1Api(api)
    for pod in victims:
        with kube.translate(f"deleting pod {ns}/{pod}"):
            core.delete_namespaced_pod(pod, ns, grace_period_seconds=grace_period)
    return victims


def take_down(
    kind: str, name: str, *, count: int = 1, timeout: float = 300.0, configuration: Configuration = None
) -> int:
    """Take ``count`` replicas of a workload away (a StatefulSet loses its highest ordinals: for
    etcd, members) and leave them away: the steady state after is checked while they are gone.
    The original replica count is written on the object first (annotation ``seatrial.dev/original``,
    label ``seatrial.dev/run``); giving them back (``give_back``) is registered as the undo before
    the change, so an interrupt restores it too. Returns the replicas left running."""
    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, f"take {count} replica(s) of {kind}/{name} down")
    original = int((workloads.read(api, kind, name, ns).get("spec") or {}).get("replicas", 1))
    book.will(f"{kind}/{name} back to {original} replicas",
              lambda: give_back(kind, name, timeout=timeout, configuration=configuration))  # fmt: skip
    left = max(0, original - count)
    mark = {
        "metadata": {
            "labels": {ledger.RUN_LABEL: book.run_id},
            "annotations": {ledger.ORIGINAL_ANNOTATION: json.dumps({"replicas": original})},
        },
        "spec": {"replicas": left},
    }
    _patch(api, kind, name, ns, mark)
    workloads.wait_rolled_out(api, kind, name, ns, timeout=timeout, settled=True)
    return left


def give_back(
    kind: str, name: str, *, quorum: bool = False, timeout: float = 300.0, configuration: Configuration = None
) -> float:
    """Restore the replica count ``take_down`` wrote on the object, remove its marks, and wait
    until the workload is whole (and, with ``quorum``, until every etcd member lists them all).
    Does nothing to an object seatrial did not mark. Returns the seconds it took."""
    ns, api = _namespace(configuration), _api(configuration)
    ledger.current().allow(ns, f"give {kind}/{name} its replicas back")
    started = time.monotonic()
    unmark_replicas(api, kind, name, ns)
    workloads.wait_rolled_out(api, kind, name, ns, timeout=timeout, settled=True)
    if quorum:
        kube.wait_for(f"every member of {name} to list them all", lambda: quorum_whole(name, configuration),
                      timeout=timeout, interval=1)  # fmt: skip
    return time.monotonic() - started


def unmark_replicas(api: client.ApiClient, kind: str, name: str, ns: str) -> int | None:
    """Put back the replica count ``take_down`` recorded on the object and remove its marks (the
    undo, and cleanup after ``kill -9``). Returns the count, or None for an unmarked object."""
    meta = workloads.read(api, kind, name, ns).get("metadata") or {}
    try:
        saved = json.loads((meta.get("annotations") or {}).get(ledger.ORIGINAL_ANNOTATION) or "{}")
    except ValueError:
        saved = {}
    if not isinstance(saved, dict) or "replicas" not in saved:
        return None
    body = {
        "metadata": {"labels": {ledger.RUN_LABEL: None}, "annotations": {ledger.ORIGINAL_ANNOTATION: None}},
        "spec": {"replicas": int(saved["replicas"])},
    }
    _patch(api, kind, name, ns, body)
    return int(saved["replicas"])


def _patch(api: client.ApiClient, kind: str, name: str, ns: str, body: dict[str, Any]) -> None:
    apps = client.AppsV1Api(api)
    patch = apps.patch_namespaced_deployment if kind == "Deployment" else apps.patch_namespaced_stateful_set
    with kube.translate(f"patching {kind}/{name} in {ns}"):
        patch(name, ns, body)


def rolling_restart(kind: str, name: str, timeout: float = 300.0, configuration: Configuration = None) -> float:
    """Restart a workload as ``kubectl rollout restart`` does and wait until it is rolled out;
    returns the seconds the rollout took (ROLL-008 uses the same code)."""
    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, f"restart {kind}/{name}")
    book.will(
        f"{kind}/{name} rolled out after its restart",
        lambda: workloads.wait_rolled_out(api, kind, name, ns, timeout=timeout),
    )
    workloads.restart(api, kind, name, ns)
    return workloads.wait_rolled_out(api, kind, name, ns, timeout=timeout)


def respread(kind: str, name: str, timeout: float = 180.0, configuration: Configuration = None) -> list[str]:
    """After a node came back: replicas that moved onto a node shared with another replica are
    evicted one at a time (through the Eviction API, so budgets hold and pods drain), until no
    node holds two while another has room; the scheduler puts each replacement back by the
    workload's spread rules. The stack ends as it began, not just as many."""
    ns, api = _namespace(configuration), _api(configuration)
    ledger.current().allow(ns, f"respread {kind}/{name}")
    moved: list[str] = []
    for _ in range(10):
        workloads.wait_rolled_out(api, kind, name, ns, timeout=timeout, settled=True)
        by_node: dict[str, list[str]] = {}
        for p in workloads.pods(api, kind, name, ns):
            by_node.setdefault(str((p.get("spec") or {}).get("nodeName")), []).append(p["metadata"]["name"])
        crowded = sorted(pods for pods in by_node.values() if len(pods) > 1)
        if not crowded:
            return moved
        victim = sorted(crowded[0])[-1]
        outcome, why = drain.evict(api, ns, victim)
        if outcome == "refused":
            raise ClusterError(f"evicting {ns}/{victim} to respread {kind}/{name} was refused: {why}")
        moved.append(victim)

        def gone(pod: str = victim) -> bool:
            return pod not in {p["metadata"]["name"] for p in workloads.pods(api, kind, name, ns, terminating=True)}

        kube.wait_for(f"{victim} gone", gone, timeout=timeout, interval=0.5)
        # the replacement lands where the spread allows: if that is the same crowded node, stop
        workloads.wait_rolled_out(api, kind, name, ns, timeout=timeout, settled=True)
        after = {str((p.get("spec") or {}).get("nodeName")) for p in workloads.pods(api, kind, name, ns)}
        if len(after) <= len(by_node):
            return moved
    return moved


def wait_ready(kind: str, name: str, timeout: float = 180.0, configuration: Configuration = None) -> float:
    """A rollback: wait until the workload is rolled out, ready and settled (no old pod still
    terminating), so the next experiment starts from a whole stack; returns the seconds waited."""
    ns, api = _namespace(configuration), _api(configuration)
    ledger.current().allow(ns, f"wait for {kind}/{name}")
    return workloads.wait_rolled_out(api, kind, name, ns, timeout=timeout, settled=True)


# ---- probes --------------------------------------------------------------------------------
def _redis(api: client.ApiClient, namespace: str, service: str, secret: str, *command: str) -> str | None:
    """One Redis command through the Service, authenticated with the stack's password: the
    smallest RESP client that does (AUTH, then the command; bulk strings and simple replies)."""
    name, key = secret.split("/")
    core = client.CoreV1Api(api)
    with kube.translate(f"reading Service {service} and Secret {name} in {namespace}"):
        ip = kube.as_dict(core.read_namespaced_service(service, namespace))["spec"]["clusterIP"]
        password = base64.b64decode((core.read_namespaced_secret(name, namespace).data or {})[key]).decode()

    def encode(*words: str) -> bytes:
        return f"*{len(words)}\r\n".encode() + b"".join(f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words)

    with socket.create_connection((ip, 6379), timeout=5) as sock, sock.makefile("rb") as replies:
        sock.sendall(encode("AUTH", password) + encode(*command))
        answers: list[str | None] = []
        for _ in range(2):
            line = replies.readline().decode().rstrip("\r\n")
            if line.startswith("-"):
                raise ConnectionError(f"redis answered {line[1:80]}")
            if line.startswith("$"):
                size = int(line[1:])
                answers.append(None if size < 0 else replies.read(size + 2)[:-2].decode())
            else:
                answers.append(line[1:])
        return answers[1]


def _etcd(ip: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{ip}:2379{path}", data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=2) as resp:  # noqa: S310 - a pod of the stack
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def quorum_whole(name: str = "etcd", configuration: Configuration = None) -> bool:
    """Every pod of the etcd StatefulSet ``name`` answers healthy, and each one's member list has
    as many started members as the StatefulSet wants: a member that died has rejoined."""
    ns, api = _namespace(configuration), _api(configuration)
    want = int((workloads.read(api, "StatefulSet", name, ns).get("spec") or {}).get("replicas", 1))
    found = workloads.pods(api, "StatefulSet", name, ns)
    ips = [(p.get("status") or {}).get("podIP") for p in found]
    if len(ips) != want or not all(ips):
        return False
    try:
        for ip in ips:
            if _etcd(str(ip), "/health").get("health") != "true":
                return False
            members = _etcd(str(ip), "/v3/cluster/member/list", {}).get("members") or []
            if len([m for m in members if m.get("name")]) != want:
                return False
    except (OSError, ValueError):
        return False
    return True


def etcd_quorum(name: str = "etcd", configuration: Configuration = None) -> str:
    """Does a majority of the etcd StatefulSet's members answer healthy? ``ok: …`` or the count.
    (During a zone outage the members of the lost zone are gone: a majority is what serves.)"""
    ns, api = _namespace(configuration), _api(configuration)
    want = int((workloads.read(api, "StatefulSet", name, ns).get("spec") or {}).get("replicas", 1))
    healthy = 0
    for pod in workloads.pods(api, "StatefulSet", name, ns, terminating=True):
        ip = (pod.get("status") or {}).get("podIP")
        try:
            healthy += bool(ip) and _etcd(str(ip), "/health").get("health") == "true"
        except (OSError, ValueError):
            continue
    if healthy > want // 2:
        return f"ok: {healthy} of {want} members healthy, a majority"
    return f"etcd lost its quorum: {healthy} of {want} members healthy, {want // 2 + 1} needed"


def cache_keeps_data(
    service: str = "redis",
    secret: str = "stack-secrets/redis-password",  # noqa: S107 - a Secret's name/key, not a password
    configuration: Configuration = None,
) -> bool:
    """Before the fault: write a marker of this run into the cache (and register its removal).
    After: is it still there? A cache on a volume keeps it across a pod's death; one whose data
    lives in the container loses it."""
    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, f"write a marker into {service}")
    key = f"seatrial:marker:{book.run_id}"
    if key not in book.notes:
        book.will(f"remove {key} from {service}", lambda: _redis(api, ns, service, secret, "DEL", key))
        book.notes[key] = uuid.uuid4().hex
        _redis(api, ns, service, secret, "SET", key, book.notes[key])
        time.sleep(1.5)  # appendfsync everysec: on disk within a second
        return True
    return _redis(api, ns, service, secret, "GET", key) == book.notes[key]


def rolled_out(kind: str, name: str, within: float = 0.0, configuration: Configuration = None) -> bool:
    """Every pod of the workload's current revision is ready, as many as it wants — now, or
    within ``within`` seconds (after a fault: the recovery budget)."""
    ns, api = _namespace(configuration), _api(configuration)
    deadline = time.monotonic() + within
    while True:
        if workloads.rolled_out(workloads.read(api, kind, name, ns) | {"kind": kind}):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def error_rate(
    seconds: float = 5.0,
    *,
    timeout: float = 2.0,
    service: str | None = None,
    port: int | None = None,
    path: str | None = None,
    concurrency: int = 4,
    min_requests: int = 150,
    configuration: Configuration = None,
) -> float:
    """Failed share of requests sent by ``concurrency`` clients for ``seconds`` (each request
    failing after ``timeout``, the latency no user should wait): the steady state "it serves" as
    a number a tolerance can judge (e.g. ``[0, 0.01]``). Several clients, so a gap of a second
    right after a fault is seen even without seatrial's locust load. By default through the front
    door with its key; ``service``/``port``/``path`` aim it at another Service of the stack (a
    GET, no key), e.g. the hub's registry while its etcd loses a member.

    The window runs on past ``seconds`` (to three times as long) until ``min_requests`` were
    sent: 70 uncached requests cannot judge a 1 % budget, one failure among them is 1.4 %."""
    api = _api(configuration)
    if service is None:
        target = _target(api, configuration)
    else:
        spec = Load(service=service, port=port or 80, path=path or "/", auth_secret=None)
        target = load_target(api, _namespace(configuration), spec)
    counts = [0, 0]  # sent, failed
    why: dict[str, int] = {}  # each kind of failure, counted: a rate alone says nothing of its cause
    when: list[float] = []  # and when in the window each was sent: a burst at the start or a steady trickle
    lock = threading.Lock()
    start = time.monotonic()

    def client_loop() -> None:
        while (now := time.monotonic() - start) < seconds or (counts[0] < min_requests and now < 3 * seconds):
            sent = time.monotonic()
            error = ""
            try:
                with urllib.request.urlopen(load.request(target.url, target.headers), timeout=timeout) as resp:  # noqa: S310
                    resp.read()
            except (OSError, urllib.error.URLError) as exc:
                error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)} after {time.monotonic() - sent:.1f} s"
            ok = not error
            with lock:
                counts[0] += 1
                counts[1] += not ok
                if error:
                    why[error] = why.get(error, 0) + 1
                    when.append(sent - start)
            if not ok:
                time.sleep(0.05)

    workers = [threading.Thread(target=client_loop, daemon=True) for _ in range(max(1, concurrency))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if why:  # in the run's log beside the verdict: what the failed requests met
        said = "; ".join(f"{n} x {e}" for e, n in sorted(why.items(), key=lambda kv: -kv[1])[:3])
        at = ", ".join(f"{t:.1f}" for t in sorted(when)[:6])
        logging.getLogger("chaostoolkit").warning(
            "front door: %d of %d requests failed: %s (sent at %s s of %.1f s)",
            counts[1], counts[0], said, at, time.monotonic() - start,
        )  # fmt: skip
    return counts[1] / counts[0] if counts[0] else 1.0
