"""Issue 4, acceptance 4-5: both overlays render and the staging one passes a server-side dry run;
a deploy that cannot succeed fails within its deadline naming the workload and the reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from seatrial import kube, stack
from seatrial.errors import ClusterError, ConfigError

STACKS = Path(__file__).resolve().parents[1] / "stacks"


def test_staging_overlay_passes_a_server_side_dry_run(kube_target: kube.Target) -> None:
    st = stack.Stack(kube_target)
    ns = f"seatrial-stack-dryrun-{int(time.time())}"
    objects = stack.render(stack.overlay_dir("staging"), ns)
    assert st._namespace(ns)
    try:
        st._apply(objects, ns, dry_run=True)  # raises with the server's message on any rejection
        core = client.CoreV1Api(kube.api_client(kube_target))
        assert not core.list_namespaced_config_map(ns, label_selector="app.kubernetes.io/part-of").items
    finally:
        st.delete(ns, quiet=True)


def test_missing_image_fails_naming_the_workload_and_keeps_the_namespace(kube_target: kube.Target) -> None:
    st = stack.Stack(kube_target)
    started = time.monotonic()
    with pytest.raises(ClusterError) as err:
        st.deploy(STACKS / "bad-image", timeout=90)
    took = time.monotonic() - started
    msg = str(err.value)
    assert "Deployment/ghost" in msg
    assert "seatrial.local/does-not-exist:1.0" in msg or "ErrImage" in msg or "ImagePull" in msg, msg
    assert took < 90, f"a missing image should fail fast, took {took:.0f}s"
    ns = msg.split("the stack in ", 1)[1].split(maxsplit=1)[0]
    assert ns in st.namespaces()  # kept for inspection, as documented
    st.delete(ns, quiet=True)


def test_unsatisfiable_gpu_request_fails_at_its_deadline_and_cleans_up_when_asked(kube_target: kube.Target) -> None:
    st = stack.Stack(kube_target)
    before = set(st.namespaces())
    with pytest.raises(ClusterError) as err:
        st.deploy(STACKS / "too-many-gpus", timeout=20, cleanup_on_failure=True)
    msg = str(err.value)
    assert "StatefulSet/giant-model" in msg
    assert "cannot be scheduled" in msg and "nvidia.com/gpu" in msg, msg
    assert set(st.namespaces()) == before  # --cleanup removed it


def test_rejected_manifest_applies_nothing(kube_target: kube.Target) -> None:
    st = stack.Stack(kube_target)
    before = set(st.namespaces())
    with pytest.raises(ConfigError) as err:
        st.deploy(STACKS / "invalid", timeout=20)
    assert "broken" in str(err.value) and "99999" in str(err.value)
    assert set(st.namespaces()) == before  # not even the namespace is left
