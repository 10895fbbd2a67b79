"""Pod security: the Kubernetes Pod Security Standards' baseline level, as data, with what GPU
node agents legitimately need.

Every peer flags privileged containers, host namespaces and hostPath; none knows that the NVIDIA
device plugin must mount the kubelet's device-plugin socket directory and DCGM exporter the
pod-resources one, so on a GPU cluster they either cry wolf or get silenced wholesale. Here a GPU
agent (recognised as GPU-011 recognises it) may have exactly its documented needs, and anything
beyond them is named. The controls and their allowed values follow the standard's baseline
table (https://kubernetes.io/docs/concepts/security/pod-security-standards/).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from seatrial.checks.gpu import GPU_AGENT_IMAGE, gpu_agent
from seatrial.checks.inventory import Container, Facts, Inventory, Workload
from seatrial.checks.model import Finding
from seatrial.checks.registry import check

# baseline: capabilities a container may add
BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# What GPU node agents need, from NVIDIA's own manifests: the device plugin registers through the
# kubelet's socket directory, DCGM exporter maps GPUs to pods through pod-resources and (for
# profiling metrics) SYS_ADMIN, GFD writes node features; the driver, toolkit and MIG manager
# containers change the host and run privileged.
GPU_AGENT_PATHS = (
    "/var/lib/kubelet/device-plugins", "/var/lib/kubelet/pod-resources", "/etc/kubernetes/node-feature-discovery",
    "/run/nvidia", "/var/run/nvidia", "/sys", "/dev", "/usr/local/nvidia",
)  # fmt: skip
GPU_AGENT_CAPS = {"SYS_ADMIN"}
HOST_CHANGERS = ("nvidia/driver", "container-toolkit", "mig-manager")
# ... and GPU Feature Discovery, whose NVIDIA manifests run it privileged to read the GPUs
PRIVILEGED_AGENTS = (*HOST_CHANGERS, "gpu-feature-discovery")


def _needed(path: str) -> bool:
    """A host path a GPU node agent needs: one of its directories or below (``/sysroot`` is not ``/sys``)."""
    return any(path == p or path.startswith(p + "/") for p in GPU_AGENT_PATHS)


def _pod_level(w: Workload, agent: bool) -> Iterator[tuple[str, str]]:
    pod = w.pod
    for ns in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(ns):
            yield f"spec.{ns}", f"shares the node's {ns.removeprefix('host')} namespace"
    for v in pod.get("volumes") or []:
        path = str(((v or {}).get("hostPath") or {}).get("path") or "") if (v or {}).get("hostPath") else None
        if path is not None and not (agent and _needed(path)):
            extra = " (beyond what a GPU node agent needs)" if agent else ""
            yield f"volumes[{v.get('name')}].hostPath", f"mounts the node's {path or '/'}{extra}"
    for s in (pod.get("securityContext") or {}).get("sysctls") or []:
        if s and str(s.get("name")) not in SAFE_SYSCTLS:
            yield "spec.securityContext.sysctls", f"sets the unsafe sysctl {s.get('name')}"
    yield from _context(pod.get("securityContext") or {}, "spec.securityContext")


def _context(ctx: Mapping[str, Any], where: str) -> Iterator[tuple[str, str]]:
    if str((ctx.get("seccompProfile") or {}).get("type") or "") == "Unconfined":
        yield f"{where}.seccompProfile", "runs without seccomp (Unconfined)"
    if str((ctx.get("appArmorProfile") or {}).get("type") or "") == "Unconfined":
        yield f"{where}.appArmorProfile", "runs without AppArmor (Unconfined)"
    selinux = ctx.get("seLinuxOptions") or {}
    if str(selinux.get("type") or "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        yield f"{where}.seLinuxOptions", "sets an SELinux type, user or role the baseline forbids"


def _container_level(c: Container, agent: bool) -> Iterator[tuple[str, str]]:
    ctx = c.spec.get("securityContext") or {}
    where = f"{c.where}.securityContext"
    # what it runs: since v0.15 GFD ships in the device plugin's image, started by its command
    runs = " ".join(str(x) for x in [c.spec.get("image", ""), *(c.spec.get("command") or [])])
    if ctx.get("privileged") and not (agent and any(h in runs for h in PRIVILEGED_AGENTS)):
        why = " (a device plugin or DCGM exporter does not need it)" if agent else ""
        yield f"{where}.privileged", f"runs privileged: root on the node{why}"
    allowed = BASELINE_CAPS | (GPU_AGENT_CAPS if agent else set())
    added = sorted({str(x) for x in ((ctx.get("capabilities") or {}).get("add") or []) if x} - allowed)
    if added:
        yield f"{where}.capabilities.add", f"adds {', '.join(added)}"
    if str(ctx.get("procMount") or "Default") != "Default":
        yield f"{where}.procMount", "unmasks /proc"
    for p in c.spec.get("ports") or []:
        if (p or {}).get("hostPort"):
            yield f"{c.where}.ports", f"binds host port {p['hostPort']} on the node"
    yield from _context(ctx, where)


@check(
    "PSS-001",
    "Pods meet the Pod Security Standards' baseline",
    family="podsecurity",
    severity="high",
    why="Privileged containers, host namespaces, hostPath mounts, extra capabilities and host ports let a "
    "compromised container take the node, and with a GPU node every model and credential on it.",
    fix="Drop the field named, or for a GPU node agent keep to what it needs (the device-plugin and "
    "pod-resources directories, SYS_ADMIN for DCGM profiling); enforce with the namespace label "
    "pod-security.kubernetes.io/enforce: baseline.",
)
def baseline(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        agent = gpu_agent(w) or any(GPU_AGENT_IMAGE.search(str(c.spec.get("image", ""))) for c in w.containers())
        found = list(_pod_level(w, agent))
        for c in w.containers(init=True, ephemeral=True):
            found += _container_level(c, agent)
        for field, message in found:
            yield Finding("PSS-001", w.ref, field, message)


# restricted: the volume types a pod may use, and the one capability it may add back
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
RESTRICTED_CAPS = {"NET_BIND_SERVICE"}
SECCOMP_NOT_MINE = {"RuntimeDefault", "Localhost", "Unconfined"}  # Unconfined is the baseline's (PSS-001)


def _needs_privilege(w: Workload, agent: bool) -> bool:
    """A GPU node agent that uses what the baseline lets it have (a host directory, privilege,
    SYS_ADMIN, a host namespace): the restricted level is not for it. An agent that needs none
    of it, like the reference stack's, is held to the restricted level like any pod."""
    if not agent:
        return False
    pod = w.pod
    if any(pod.get(ns) for ns in ("hostNetwork", "hostPID", "hostIPC")):
        return True
    if any((v or {}).get("hostPath") is not None for v in pod.get("volumes") or []):
        return True
    for c in w.containers(init=True):  # a debug container's privilege is not the agent's need
        ctx = c.spec.get("securityContext") or {}
        if ctx.get("privileged") or set((ctx.get("capabilities") or {}).get("add") or []) - BASELINE_CAPS:
            return True
    return False


def _set(ctx: Mapping[str, Any], key: str, pod_ctx: Mapping[str, Any]) -> Any:
    """A container's setting, or the pod's where the container leaves it unset (or null)."""
    value = ctx.get(key)
    return pod_ctx.get(key) if value is None else value


def _unrestricted(w: Workload) -> Iterator[tuple[str, str]]:
    """Each control of the restricted level the pod misses, as (field, what to set), the
    containers named when only some miss it (a pod-level setting covers every container that
    does not undo it). Each control is one level's: hostPath, Unconfined, privileged and the
    capabilities beyond the baseline's list are PSS-001's findings, not said twice here. As the
    admission controller does, Windows pods skip the Linux-only controls (escalation, seccomp,
    capabilities) and pods in a user namespace (``hostUsers: false``) the user controls."""
    pod = w.pod
    pod_ctx = pod.get("securityContext") or {}
    linux = str((pod.get("os") or {}).get("name") or "") != "windows"
    host_users = pod.get("hostUsers") is not False
    allowed = RESTRICTED_VOLUMES | {"name", "hostPath"}
    odd = sorted({str(k) for v in pod.get("volumes") or [] for k in (v or {}) if k not in allowed})
    if odd:
        yield "spec.volumes", f"volume types it allows (not {', '.join(odd)})"
    if host_users and pod_ctx.get("runAsUser") == 0:
        yield "spec.securityContext.runAsUser", "a runAsUser other than 0"
    if host_users and pod_ctx.get("runAsNonRoot") is False:
        yield "spec.securityContext.runAsNonRoot", "runAsNonRoot: true (not false)"

    def privileged(ctx: Mapping[str, Any]) -> bool:
        return bool(ctx.get("privileged"))  # the baseline's finding; escalation cannot even be unset there

    controls: list[tuple[str, str, bool, Callable[[Mapping[str, Any]], bool]]] = [
        ("allowPrivilegeEscalation", "allowPrivilegeEscalation: false", linux,
         lambda ctx: ctx.get("allowPrivilegeEscalation") is False or privileged(ctx)),
        ("runAsNonRoot", "runAsNonRoot: true", host_users, lambda ctx: _set(ctx, "runAsNonRoot", pod_ctx) is True),
        ("runAsUser", "a runAsUser other than 0", host_users, lambda ctx: ctx.get("runAsUser") != 0),
        ("seccompProfile", "seccompProfile RuntimeDefault", linux,
         lambda ctx: str((_set(ctx, "seccompProfile", pod_ctx) or {}).get("type") or "") in SECCOMP_NOT_MINE),
        ("capabilities", "capabilities drop [ALL] (only NET_BIND_SERVICE added back)", linux,
         lambda ctx: privileged(ctx) or ("ALL" in ((ctx.get("capabilities") or {}).get("drop") or [])
         and not set((ctx.get("capabilities") or {}).get("add") or []) & (BASELINE_CAPS - RESTRICTED_CAPS))),
    ]  # fmt: skip
    containers = w.containers(init=True, ephemeral=True)
    for field, setting, applies, ok in controls:
        missing = [c for c in containers if applies and not ok(c.spec.get("securityContext") or {})]
        if len(missing) == len(containers) == 1:
            yield f"{missing[0].where}.securityContext.{field}", setting
        elif len(missing) == len(containers):
            yield f"containers[*].securityContext.{field}", setting
        elif missing:
            yield f"{missing[0].where}.securityContext.{field}", f"{setting} in {', '.join(c.name for c in missing)}"


def _one_finding(w: Workload, missed: list[tuple[str, str]]) -> Finding:
    """All a pod misses of the restricted level as one finding: it is one fix (a securityContext
    block), and four lines per workload would bury the findings that break something."""
    field = missed[0][0] if len(missed) == 1 else ("spec" if w.kind == "Pod" else "spec.template.spec")
    return Finding("PSS-002", w.ref, field, "misses the restricted level: " + ", ".join(m for _, m in missed))


@check(
    "PSS-002",
    "Pods that need no privilege meet the Pod Security Standards' restricted level",
    family="podsecurity",
    severity="low",
    why="A model server or cache that runs as root, may escalate, keeps its capabilities and makes any "
    "syscall turns one exploited request into a foothold on the node; the restricted level costs "
    "such a pod nothing.",
    fix="Set runAsNonRoot: true and seccompProfile RuntimeDefault on the pod, allowPrivilegeEscalation: "
    "false and capabilities drop [ALL] on every container (fsGroup lets a non-root user write its "
    "volume); enforce with pod-security.kubernetes.io/enforce: restricted. GPU node agents that "
    "need a host directory or privilege are left to PSS-001.",
)
def restricted(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        agent = gpu_agent(w) or any(GPU_AGENT_IMAGE.search(str(c.spec.get("image", ""))) for c in w.containers())
        if _needs_privilege(w, agent):
            continue
        if missed := list(_unrestricted(w)):
            yield _one_finding(w, missed)
