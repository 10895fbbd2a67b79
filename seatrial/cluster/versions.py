"""The pinned versions of everything the local cluster is built from.

One place, so the build cache key, the ldflags and the docs can never disagree.
"""

from __future__ import annotations

KUBERNETES = "v1.34.4"
"""Upstream Kubernetes release; its staging modules are pinned to the matching v0.X.Y."""

ETCD = "v3.6.16"
"""etcd server: Kubernetes 1.34 is built and tested against etcd 3.6."""

KWOK = "v0.7.0"
"""KWOK controller that keeps the simulated node pools alive."""

COREDNS = "v1.14.7"
"""Cluster DNS on the real nodes."""

HELM = "v4.3.2"
"""Renders Helm charts for static mode; built on first use, when no ``helm`` is on PATH."""

HELM3 = "v3.21.4"
"""What kustomize's ``helmCharts`` run (``--enable-helm``): kustomize accepts helm v3 only (it asks
``helm version -c``, a flag v4 dropped); built on first use, when no helm v3 is on PATH."""

KUBE_SCORE = "v1.20.0"
KUBE_LINTER = "v0.8.3"
"""The peer static checkers ``nox -s bench -- peers`` runs beside seatrial on the same files
(Polaris would be the third; the Go module proxy here serves none of its versions)."""

GO_DIRECTIVE = "1.24.0"
GODEBUG_DEFAULT = "go1.24"
"""Copied from k8s.io/kubernetes' go.mod so a newer Go keeps the runtime defaults it expects."""


def staging_version(kubernetes: str = KUBERNETES) -> str:
    """Staging modules (k8s.io/api, client-go, …) are tagged v0.<minor>.<patch>."""
    major, minor, patch = kubernetes.lstrip("v").split(".")
    del major
    return f"v0.{minor}.{patch}"
