"""Secret hygiene: no secret value in a manifest, a ConfigMap or an annotation, no API token
where nothing uses the API, and no ServiceAccount that can read other workloads' secrets."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

from seatrial.checks import crds, literals
from seatrial.checks.inventory import Facts, Inventory, Obj, Workload, home, ref_of
from seatrial.checks.literals import leaks
from seatrial.checks.model import Finding
from seatrial.checks.registry import check


def _reported(inv: Inventory, check_id: str) -> Iterator[Finding]:
    """The leaks one check owns, one finding per object and field (a command line may leak twice)."""
    seen: set[tuple[object, str]] = set()
    for leak in leaks(inv):
        if leak.check == check_id and (leak.target, leak.field) not in seen:
            seen.add((leak.target, leak.field))
            yield Finding(check_id, leak.target, leak.field, leak.why)


def secret_values(inv: Inventory) -> list[str]:
    """Every leaked literal's value, for the reports to redact (never to show)."""
    return sorted({leak.value for leak in leaks(inv)})


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
    return _reported(inv, "SEC-001")


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
    return _reported(inv, "SEC-002")


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
        data = [_decoded(v) for v in (s.get("data") or {}).values()]
        values = [*data, *(str(v if v is not None else "") for v in (s.get("stringData") or {}).values())]
        # a Secret whose every value is filled in at deploy time ($HF_TOKEN, <token>) holds none
        if any(not FILLED_IN_LATER.match(v.strip()) for v in values):
            yield Finding("SEC-003", ref_of(s), "data", "a Secret with values is part of the manifests")


# In a Secret every value is meant to be secret (a PIN of digits too): only empty values and
# variables a deploy step fills in are no secret.
FILLED_IN_LATER = re.compile(rf"^(|{literals.FILL_IN}|<[^<>]*>|replace-me|placeholder)$", re.I)


def _decoded(value: object) -> str:
    """``data`` is base64: judged by what it decodes to (or as written, when it is not base64)."""
    text = str(value if value is not None else "").strip()
    try:
        return base64.b64decode(text, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return text


def _bound_accounts(inv: Inventory) -> dict[tuple[str, str], list[Obj]]:
    """(namespace, serviceaccount) -> the roles bound to it."""
    roles = {
        (home(r) if r["kind"] == "Role" else "", r["kind"], r["metadata"]["name"]): r
        for r in inv.of("Role", "ClusterRole")
    }
    out: dict[tuple[str, str], list[Obj]] = {}
    for b in inv.of("RoleBinding", "ClusterRoleBinding"):
        ns = home(b)
        ref = b.get("roleRef") or {}
        role = roles.get((ns if ref.get("kind") == "Role" else "", str(ref.get("kind")), str(ref.get("name"))))
        for s in b.get("subjects") or []:
            if s.get("kind") == "ServiceAccount":
                subject_ns = str(s.get("namespace") or ns)
                key = (ANY if _placeholder(subject_ns, inv) else subject_ns, str(s.get("name")))
                out.setdefault(key, []).append(
                    role or {"kind": ref.get("kind"), "metadata": {"name": ref.get("name")}, "external": True}
                )
    return out


ANY = "*"  # a subject namespace that is a placeholder binds the account wherever it is deployed
PLACEHOLDERS = {"system", "placeholder", "namespace", "your-namespace", "changeme", "replace-me"}


def _placeholder(namespace: str, inv: Inventory) -> bool:
    """A subject namespace that is filled in at deploy time (kubebuilder's ``system``, a
    ``${NAMESPACE}`` or ``{{ .Release.Namespace }}`` left unrendered) and names none of the
    stack's namespaces."""
    if namespace in inv.homes:
        return False
    return namespace.lower() in PLACEHOLDERS or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace)


def bound_to(bound: dict[tuple[str, str], list[Obj]], w: Workload, sa: str) -> list[Obj]:
    """The roles bound to a workload's account, by its namespace or by a placeholder one."""
    return bound.get((w.home, sa), []) + bound.get((ANY, sa), [])


def _automount(inv: Inventory, w: Workload) -> bool:
    if "automountServiceAccountToken" in w.pod:
        return bool(w.pod["automountServiceAccountToken"])
    sa_name = w.pod.get("serviceAccountName") or "default"
    sa = inv.named("ServiceAccount", w.obj, str(sa_name))
    return True if sa is None else bool(sa.get("automountServiceAccountToken", True))


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
        if _automount(inv, w) and not bound_to(bound, w, sa) and not crds.operator_binds_token(w.obj):
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
        for role in bound_to(bound, w, sa):
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


@check(
    "SEC-008",
    "No secret values in commands, arguments or probe commands",
    family="secrets",
    severity="critical",
    why="A command line is in git, in `kubectl get -o yaml`, and in `ps` on the node for anyone who can "
    "see the process list: `--api-key=…` or `redis-cli -a …` publishes the key.",
    fix="Read the secret from a file mounted from a Secret, or from an env var set with "
    "valueFrom.secretKeyRef and referenced as $(VAR) in args.",
)
def command_literals(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    return _reported(inv, "SEC-008")


@check(
    "SEC-009",
    "No secret values in annotations",
    family="secrets",
    severity="high",
    why="Annotations are shown by every `kubectl describe` and readable by anyone who can list the object; "
    "they are not Secrets and are not encrypted at rest.",
    fix="Keep the value in a Secret and let the annotation name it (e.g. vault.hashicorp.com's "
    "agent-inject-secret-* take a path, not a value).",
)
def annotation_literals(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    return _reported(inv, "SEC-009")


@check(
    "SEC-010",
    "Client keys (DSNs) come from Secrets",
    family="secrets",
    severity="medium",
    why="A DSN's key (Sentry and the like) is meant to ship with an app, but in a manifest anyone can use it "
    "to flood the project with events or read its quota; rotating it means a redeploy.",
    fix="Put the DSN in a Secret and set the env var with valueFrom.secretKeyRef.",
)
def dsn_literals(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    return _reported(inv, "SEC-010")
