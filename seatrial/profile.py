"""Profiles: what a run targets on someone's stack, as strict YAML.

A profile names the namespaces to check, the role of each workload where labels do not say it,
the SLOs experiments are judged by, the load target, and the model load time GPU inference must
be allowed. Unknown fields are errors with a did-you-mean, because a typo in a gate's
configuration must not silently relax the gate.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seatrial.checks.inventory import ROLES
from seatrial.errors import ConfigError, reject_unknown, yaml_problem

FIELDS = {
    "kind", "name", "description", "namespaces", "workloads", "slos", "load", "modelLoadSeconds", "rollout", "chaos",
    "safety",
}  # fmt: skip
SAFETY_FIELDS = {"refuseContexts"}
REFUSE_CONTEXTS = ("*prod*",)  # a production cluster is never a test bed unless the profile says otherwise
CHAOS_FIELDS = {"provider", "nodeSelector"}
PROVIDERS = ("aws", "gke", "azure")
WORKLOAD_FIELDS = {"kind", "name", "role"}
SLO_FIELDS = {"errorRate", "p99Ms", "recoverySeconds"}
LOAD_FIELDS = {"service", "port", "path", "users", "spawnRate", "workers", "image", "authSecret"}


@dataclass(frozen=True)
class Slos:
    error_rate: float = 0.01
    p99_ms: float = 2000.0
    recovery_seconds: float = 60.0


@dataclass(frozen=True)
class Load:
    service: str = "gateway"
    port: int = 80
    path: str = "/v1/chat/completions"
    users: int = 10
    spawn_rate: float = 0.0  # users started per second; 0: all at once
    workers: int = 0  # 0: locust runs here; N: a master and N workers run as pods in the cluster
    image: str = ""  # the pods' image (python3 -m locust, this version); "": built locally
    auth_secret: str | None = None  # "secret-name/key": sent as a Bearer token


@dataclass(frozen=True)
class Chaos:
    """Node-level chaos: the cloud whose spot preemption is imitated, and the labels a node must
    carry to be a target (the node blast radius; empty: any worker node, once node chaos is on)."""

    provider: str = "aws"
    node_selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Safety:
    """Guards that act before anything is read from a cluster: kubeconfig contexts whose name
    matches one of ``refuse_contexts`` (shell-style patterns) are refused."""

    refuse_contexts: tuple[str, ...] = REFUSE_CONTEXTS

    def refused(self, context: str) -> str | None:
        """The pattern ``context`` matches, if any (case-insensitive)."""
        return next((p for p in self.refuse_contexts if fnmatch.fnmatchcase(context.lower(), p.lower())), None)

    def check(self, context: str) -> None:
        """Refuse a context named like production, before anything is read from it."""
        pattern = self.refused(context)
        if pattern is not None:
            raise ConfigError(
                f"refused: kubeconfig context {context!r} matches the production pattern {pattern!r}; "
                "seatrial changes what it tests (pods, nodes, load) and never runs against production",
                hint="point it at a staging context, or change safety.refuseContexts in your profile",
            )


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    namespaces: tuple[str, ...] = ()  # empty: the reference stack seatrial deploys
    roles: Mapping[str, str] = field(default_factory=dict)  # "Kind/name" -> role
    slos: Slos = Slos()
    load: Load = Load()
    model_load_seconds: float = 60.0
    description: str = ""
    rollout: str | None = None  # "Deployment/name": rolled out under load by ROLL-008
    chaos: Chaos = Chaos()
    safety: Safety = Safety()

    @property
    def deploys_reference(self) -> bool:
        return not self.namespaces


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping")
    return value


def _number(value: Any, where: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (positive and value <= 0):
        raise ConfigError(f"{where} must be a {'positive ' if positive else ''}number, got {value!r}")
    return float(value)


def parse(doc: Any, source: str) -> Profile:
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a profile is a YAML mapping")
    reject_unknown(doc, FIELDS, source)
    if doc.get("kind", "Profile") != "Profile":
        raise ConfigError(f"{source}: kind must be Profile, got {doc.get('kind')!r}")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name is required")
    namespaces = doc.get("namespaces") or []
    if not isinstance(namespaces, list) or not all(isinstance(n, str) and n for n in namespaces):
        raise ConfigError(f"{source}: namespaces must be a list of namespace names")
    roles: dict[str, str] = {}
    for i, w in enumerate(doc.get("workloads") or []):
        where = f"{source}: workloads[{i}]"
        w = _mapping(w, where)
        reject_unknown(w, WORKLOAD_FIELDS, where)
        if w.get("role") not in ROLES:
            raise ConfigError(f"{where}: role must be one of {', '.join(ROLES)}, got {w.get('role')!r}")
        if not w.get("kind") or not w.get("name"):
            raise ConfigError(f"{where}: kind and name are required")
        roles[f"{w['kind']}/{w['name']}"] = str(w["role"])
    s = _mapping(doc.get("slos"), f"{source}: slos")
    reject_unknown(s, SLO_FIELDS, f"{source}: slos")
    slos = Slos(
        error_rate=_number(s.get("errorRate", 0.01), f"{source}: slos.errorRate"),
        p99_ms=_number(s.get("p99Ms", 2000), f"{source}: slos.p99Ms"),
        recovery_seconds=_number(s.get("recoverySeconds", 60), f"{source}: slos.recoverySeconds"),
    )
    ld = _mapping(doc.get("load"), f"{source}: load")
    reject_unknown(ld, LOAD_FIELDS, f"{source}: load")
    load = Load(
        service=str(ld.get("service", "gateway")),
        port=int(_number(ld.get("port", 80), f"{source}: load.port")),
        path=str(ld.get("path", "/v1/chat/completions")),
        users=int(_number(ld.get("users", 10), f"{source}: load.users")),
        spawn_rate=_number(ld.get("spawnRate", 0), f"{source}: load.spawnRate", positive=False),
        workers=int(_number(ld.get("workers", 0), f"{source}: load.workers", positive=False)),
        image=str(ld.get("image") or ""),
        auth_secret=_secret_ref(ld.get("authSecret"), f"{source}: load.authSecret"),
    )
    if load.workers < 0 or load.workers != ld.get("workers", 0) or load.spawn_rate < 0:
        raise ConfigError(f"{source}: load.workers must be a whole number >= 0 and load.spawnRate >= 0")
    rollout = doc.get("rollout")
    if rollout is not None and (not isinstance(rollout, str) or not rollout.startswith("Deployment/")):
        raise ConfigError(f"{source}: rollout must name a Deployment as Deployment/<name>, got {rollout!r}")
    ch = _mapping(doc.get("chaos"), f"{source}: chaos")
    reject_unknown(ch, CHAOS_FIELDS, f"{source}: chaos")
    if ch.get("provider", "aws") not in PROVIDERS:
        raise ConfigError(f"{source}: chaos.provider must be one of {', '.join(PROVIDERS)}, got {ch.get('provider')!r}")
    selector = _mapping(ch.get("nodeSelector"), f"{source}: chaos.nodeSelector")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        raise ConfigError(f"{source}: chaos.nodeSelector must map label names to string values")
    sf = _mapping(doc.get("safety"), f"{source}: safety")
    reject_unknown(sf, SAFETY_FIELDS, f"{source}: safety")
    refuse = sf.get("refuseContexts", list(REFUSE_CONTEXTS))
    if not isinstance(refuse, list) or not all(isinstance(p, str) and p for p in refuse):
        raise ConfigError(f"{source}: safety.refuseContexts must be a list of context name patterns, e.g. ['*prod*']")
    return Profile(
        safety=Safety(tuple(refuse)),
        chaos=Chaos(str(ch.get("provider", "aws")), dict(selector)),
        name=name,
        source=source,
        namespaces=tuple(namespaces),
        roles=roles,
        slos=slos,
        load=load,
        model_load_seconds=_number(doc.get("modelLoadSeconds", 60), f"{source}: modelLoadSeconds"),
        description=str(doc.get("description") or ""),
        rollout=rollout,
    )


def _secret_ref(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.count("/") != 1 or not all(value.split("/")):
        got = f"a {type(value).__name__} of {len(value)} characters" if isinstance(value, str) else type(value).__name__
        raise ConfigError(f"{where} must be <secret-name>/<key>, got {got}")  # never echo it: it may be the token
    return value


def load(path: Path | None) -> Profile:
    """The named profile, or the default one (the reference stack)."""
    path = path or Path(__file__).resolve().parents[1] / "profiles" / "reference.yaml"
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path} is not valid YAML: {yaml_problem(exc)}") from None
    return parse(doc, str(path))
