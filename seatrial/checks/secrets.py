"""Secret hygiene: no secret value in a manifest, a ConfigMap or an annotation, no API token
where nothing uses the API, and no ServiceAccount that can read other workloads' secrets."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from seatrial.checks.inventory import Facts, Inventory, Obj, Workload, ref_of
from seatrial.checks.model import Finding
from seatrial.checks.registry import check

SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|PASS|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY|AUTH)", re.I)
NOT_A_VALUE = re.compile(r"(_FILE|_PATH|_DIR|_URL|_HOST|_PORT|_NAME|_ENABLED|_TTL|_SECONDS)$", re.I)
TOKEN_FORMATS = {
    "AWS access key": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "OpenAI key": re.compile(r"\bsk-[A-Za-z0-9_-]{20,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
PLACEHOLDER = re.compile(
    r"^(\$\(.*\)|\$\{.*\}|<.*>|changeme|change-me|xxx+|\*+|redacted|none|null|true|false"
    r"|[0-9.]+(ms|s|m|h|Mi|Gi|%)?)$",  # numbers and durations: TOKEN_LATENCY_MS=20 is no token
    re.I,
)


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    if not s:
        return 0.0
    counts = Counter(s)
    return -sum(n / len(s) * math.log2(n / len(s)) for n in counts.values())


def _token_like(value: str) -> bool:
    """Random-looking: long, one unbroken run of token characters mixing letters and digits, high
    entropy. Model IDs (NousResearch/Hermes-3-Llama-3.1-70B), paths and hostnames are not."""
    if len(value) < 24 or not re.fullmatch(r"[A-Za-z0-9_+=-]+", value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes >= 2 and entropy(value) > 4.0 and not re.search(r"[a-z]{3,}-[a-z]{3,}", value)


def config_entries(key: str, value: object) -> Iterator[tuple[str, str]]:
    """A ConfigMap entry as (name, value) pairs: each ``NAME=value`` / ``name: value`` line of an
    embedded config file, or the entry itself when a line has no separator."""
    for line in str(value).splitlines() or [""]:
        k, sep, v = line.partition("=") if "=" in line else line.partition(":")
        yield (k.strip(), v.strip().strip("\"'")) if sep else (key, line.strip())


def secret_env_literals(inv: Inventory) -> Iterator[tuple[Workload, str, str, str, str]]:
    """Every literal env value that looks like a secret, as (workload, container, name, value,
    why): what SEC-001 reports and what every report redacts."""
    for w in inv.workloads:
        for c in w.containers(init=True):
            for env in c.spec.get("env") or []:
                if "value" not in env:
                    continue
                name, value = str(env.get("name", "")), str(env.get("value") or "")
                why = looks_secret(name, value)
                if why:
                    yield w, c.where, name, value, why


def looks_secret(name: str, value: str) -> str | None:
    """Why a literal (env var or ConfigMap entry) looks like a secret, or None."""
    for what, pattern in TOKEN_FORMATS.items():
        if pattern.search(value):
            return f"its value looks like {'an' if what[0] in 'AEIOUaeiou' else 'a'} {what}"
    if not value or PLACEHOLDER.match(value) or value.startswith("/") or ("://" in value and "@" not in value):
        return None
    if SECRET_NAME.search(name) and not NOT_A_VALUE.search(name):
        return f"{name} names a secret and holds a literal value"
    if _token_like(value):
        return f"its value is a {len(value)}-character high-entropy string"
    if "://" in value and re.search(r"://[^/\s:@]+:[^/\s@]+@", value):
        return "its value is a URL with a password in it"
    return None


@check(
    "SEC-001",
    "No secret values as literal env vars",
    family="secrets",
    severity="critical",
    why="A literal env value is in git, in `kubectl describe`, in every rendered manifest and in the "
    "process environment; a leaked API key costs money and data.",
    fix="Put the value in a Secret (created outside git) and mount it as a file (point *_FILE at it) "
    "or use valueFrom.secretKeyRef.",
)
def env_literals(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w, where, name, _, why in secret_env_literals(inv):
        yield Finding("SEC-001", w.ref, f"{where}.env[{name}]", why)


@check(
    "SEC-002",
    "ConfigMaps hold no secrets",
    family="secrets",
    severity="high",
    why="ConfigMaps are readable by anyone who can read the namespace's config and are not encrypted at rest.",
    fix="Move the value to a Secret.",
)
def configmap_secrets(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for cm in inv.of("ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            for name, val in config_entries(key, value):
                why = looks_secret(name, val)
                if why:
                    yield Finding("SEC-002", ref_of(cm), f"data[{key}]", why)
                    break


@check(
    "SEC-003",
    "No Secret objects in the manifests",
    family="secrets",
    severity="high",
    why="A Secret in the repository is a secret in git history for ever (base64 is not encryption).",
    fix="Create Secrets at deploy time (or use an external secret store / sealed secrets) and keep "
    "only references in the manifests.",
    modes=("static",),
)
def committed_secrets(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for s in inv.of("Secret"):
        if s.get("data") or s.get("stringData"):
            yield Finding("SEC-003", ref_of(s), "data", "a Secret with values is part of the manifests")


def _bound_accounts(inv: Inventory) -> dict[tuple[str, str], list[Obj]]:
    """(namespace, serviceaccount) -> the roles bound to it."""
    roles = {
        (str(r["metadata"].get("namespace") or ""), r["kind"], r["metadata"]["name"]): r
        for r in inv.of("Role", "ClusterRole")
    }
    out: dict[tuple[str, str], list[Obj]] = {}
    for b in inv.of("RoleBinding", "ClusterRoleBinding"):
        ns = str(b["metadata"].get("namespace") or "")
        ref = b.get("roleRef") or {}
        role = roles.get((ns if ref.get("kind") == "Role" else "", str(ref.get("kind")), str(ref.get("name"))))
        for s in b.get("subjects") or []:
            if s.get("kind") == "ServiceAccount":
                key = (str(s.get("namespace") or ns), str(s.get("name")))
                out.setdefault(key, []).append(
                    role or {"kind": ref.get("kind"), "metadata": {"name": ref.get("name")}, "external": True}
                )
    return out


def _automount(inv: Inventory, w: Workload) -> bool:
    if "automountServiceAccountToken" in w.pod:
        return bool(w.pod["automountServiceAccountToken"])
    sa_name = w.pod.get("serviceAccountName") or "default"
    for sa in inv.of("ServiceAccount"):
        if sa["metadata"]["name"] == sa_name and (sa["metadata"].get("namespace") or "") == w.namespace:
            return bool(sa.get("automountServiceAccountToken", True))
    return True


@check(
    "SEC-004",
    "API tokens are mounted only where the API is used",
    family="secrets",
    severity="medium",
    why="A mounted ServiceAccount token is a credential any code in the pod (or an attacker in it) can "
    "use against the API server.",
    fix="Set automountServiceAccountToken: false on the pod or its ServiceAccount unless the workload "
    "calls the API (then bind it a least-privilege Role).",
)
def token_automount(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    bound = _bound_accounts(inv)
    for w in inv.workloads:
        sa = str(w.pod.get("serviceAccountName") or "default")
        if _automount(inv, w) and (w.namespace, sa) not in bound:
            yield Finding(
                "SEC-004",
                w.ref,
                "spec.automountServiceAccountToken",
                f"mounts the {sa} token but no role is bound to {sa}",
            )


def _reads_secrets(role: Obj) -> bool:
    for rule in role.get("rules") or []:
        groups, resources, verbs = rule.get("apiGroups") or [], rule.get("resources") or [], rule.get("verbs") or []
        if (
            ("" in groups or "*" in groups)
            and ("secrets" in resources or "*" in resources)
            and {"get", "list", "watch", "*"} & set(verbs)
            and not rule.get("resourceNames")
        ):
            return True
    return False


@check(
    "SEC-005",
    "No workload ServiceAccount can read Secrets wholesale",
    family="secrets",
    severity="high",
    why="get/list/watch on all Secrets (or a ClusterRole that allows it) lets one compromised pod read "
    "every credential in the namespace, or the cluster.",
    fix="Grant get on the named Secrets the workload needs (resourceNames), in a Role, not a ClusterRole.",
)
def rbac_secrets(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    bound = _bound_accounts(inv)
    for w in inv.workloads:
        sa = str(w.pod.get("serviceAccountName") or "default")
        for role in bound.get((w.namespace, sa), []):
            if _reads_secrets(role):
                scope = "cluster-wide" if role.get("kind") == "ClusterRole" else "in its namespace"
                yield Finding(
                    "SEC-005",
                    w.ref,
                    f"serviceAccountName {sa}",
                    f"{role['kind']}/{role['metadata']['name']} reads all Secrets {scope}",
                )


@check(
    "SEC-006",
    "No secret data in last-applied-configuration annotations",
    family="secrets",
    severity="high",
    why="kubectl apply (client-side) copies the whole object, Secret data included, into an annotation "
    "that anyone who can read the object's metadata can see.",
    fix="Apply Secrets with server-side apply or create them without kubectl apply; remove the annotation.",
)
def last_applied(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    key = "kubectl.kubernetes.io/last-applied-configuration"
    for s in inv.of("Secret"):
        blob = (s["metadata"].get("annotations") or {}).get(key, "")
        if '"data"' in blob or '"stringData"' in blob:
            yield Finding("SEC-006", ref_of(s), f"metadata.annotations[{key}]", "holds a copy of the Secret's data")
