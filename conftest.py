"""pytest wiring shared by tests/ and suites/: command-line options and the harness fixtures."""

from __future__ import annotations

import pytest

pytest_plugins = ["fixtures.cluster", "fixtures.stack", "fixtures.conformance", "fixtures.chaos"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seatrial")
    group.addoption("--kubeconfig", default=None, help="kubeconfig of the cluster to use (default: the local cluster)")
    group.addoption("--kube-context", default=None, help="context in the kubeconfig (default: its current context)")
    group.addoption(
        "--profile", default=None, help="profile YAML: what to check and the SLOs (default: reference stack)"
    )
    group.addoption(
        "--keep-cluster",
        action="store_true",
        default=False,
        help="leave the local cluster running after the session if this session started it",
    )
    group.addoption("--stack-overlay", default=None, help="kustomize overlay to deploy (default: local, or staging)")
    group.addoption("--stack-namespace", default=None, help="use the reference stack already deployed there")
    group.addoption("--keep-stack", action="store_true", default=False, help="leave the deployed stack in place")
    group.addoption(
        "--static", default=None, help="check these manifests (file, dir or kustomize dir) without a cluster"
    )
    group.addoption("--pools", default=None, help="node pool dir describing the cluster for static checks")
    group.addoption(
        "--values", action="append", default=[], help="Helm values file for the charts --static renders (repeatable)"
    )
    group.addoption(
        "--fail-on",
        default="high",
        choices=["critical", "high", "medium", "low"],
        help="lowest severity that fails the run; findings below it are reported (default: high)",
    )
    group.addoption("--waivers", default=None, help="waivers YAML (default: waivers.yaml in the repo, if present)")
    group.addoption(
        "--load-workers",
        type=int,
        default=None,
        help="chaos load from a locust master and N worker pods in the cluster (default: the profile's load.workers)",
    )
    group.addoption(
        "--allow-node-chaos",
        action="store_true",
        help="allow node-level experiments (drain, preemption, node, GPU faults) on a cluster seatrial did not start",
    )
    group.addoption("--report-dir", default=None, help="where runs write their reports (default: reports/)")
