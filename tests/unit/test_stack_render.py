"""Both overlays of the reference stack render with kubectl's kustomize, into any namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from seatrial import stack
from seatrial.errors import ConfigError

pytestmark = pytest.mark.needs_binaries

WORKLOADS = {"gateway", "hub", "inference", "etcd", "redis", "node-agent", "benchmark"}


@pytest.mark.parametrize("overlay", ["local", "staging"])
def test_overlay_renders_every_workload_into_the_namespace(overlay: str) -> None:
    objects = stack.render(stack.overlay_dir(overlay), "ns-under-test")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {n for k, n in kinds if k in ("Deployment", "StatefulSet", "DaemonSet", "Job")} == WORKLOADS
    assert all(o["metadata"].get("namespace") == "ns-under-test" for o in objects)
    binding = next(o for o in objects if o["kind"] == "RoleBinding")
    assert binding["subjects"][0]["namespace"] == "ns-under-test"
    images = {
        c["image"]
        for o in objects
        if "template" in o.get("spec", {})
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert all(":" in i and not i.endswith(":latest") for i in images)  # pinned tags
    if overlay == "local":
        assert all(i.startswith("seatrial.local/") for i in images)
    else:
        assert not any(i.startswith("seatrial.local/") for i in images)


def test_no_secret_is_committed() -> None:
    objects = stack.render(stack.overlay_dir("local"), "x")
    assert not [o for o in objects if o["kind"] == "Secret"]


def test_unknown_overlay_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no kustomize overlay"):
        stack.overlay_dir(str(tmp_path / "nope"))
