"""Kubernetes access never leaks a client exception: bad kubeconfigs and dead servers are ours."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from seatrial import kube
from seatrial.errors import ClusterError, ConfigError, ExitCode


def test_missing_kubeconfig(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kubeconfig not found"):
        kube.api_client(kube.Target(tmp_path / "nope"))


@pytest.mark.parametrize(
    "content",
    ["not: [valid", "apiVersion: v1\nkind: Config\n", "- just\n- a list\n"],
    ids=["yaml", "empty-config", "list"],
)
def test_malformed_kubeconfig(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        kube.api_client(kube.Target(path))
    assert info.value.exit_code == ExitCode.USAGE


def test_unknown_context(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: x}}]\ncontexts: [{name: a, context: {cluster: c, user: u}}]\n"
        "current-context: a\n"
    )
    with pytest.raises(ConfigError):
        kube.api_client(kube.Target(path, context="staging"))


def test_unreachable_server_is_exit_3(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', "
        "insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: x}}]\n"
        "contexts: [{name: a, context: {cluster: c, user: u}}]\ncurrent-context: a\n"
    )
    api = kube.api_client(kube.Target(path))
    with pytest.raises(ClusterError) as info:
        kube.server_version(api, timeout=2)
    assert info.value.exit_code == ExitCode.CLUSTER
    assert "unreachable" in str(info.value)


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/api/v1/namespaces/a/pods", "list pods"),
        ("GET", "/api/v1/namespaces/a/pods/p1", "get pods"),
        ("POST", "/api/v1/namespaces/a/pods/p1/eviction", "create pods/eviction"),
        ("GET", "/api/v1/nodes?limit=500", "list nodes"),
        ("GET", "/apis/apps/v1/namespaces/a/deployments?watch=true", "watch deployments"),
        ("PATCH", "/api/v1/nodes/n1", "patch nodes"),
        ("GET", "/api/v1/namespaces", "list namespaces"),
        ("GET", "/api/v1/namespaces/a", "get namespaces"),
        ("DELETE", "/apis/batch/v1/namespaces/a/jobs", "deletecollection jobs"),
        ("GET", "/version", "get /version"),
    ],
)
def test_a_request_is_counted_by_verb_and_resource(method: str, path: str, kind: str) -> None:
    from seatrial.kube import request_kind

    assert request_kind(method, f"https://127.0.0.1:6443{path}") == kind
