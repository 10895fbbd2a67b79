"""Static mode on repositories as users have them (issue 12, part 3): trees of kustomize roots,
charts and files that are not manifests, objects defined twice, the custom resources ML teams
run, and the YAML kubectl reads that PyYAML alone would not."""

from __future__ import annotations

from pathlib import Path

import pytest

from seatrial import checks, manifests
from seatrial.checks.inventory import Node
from seatrial.errors import ConfigError

STACKS = Path(__file__).resolve().parents[1] / "stacks"


@pytest.fixture(scope="module")
def helm() -> str:
    """The helm static mode renders charts with (built from its Go module once, when none is on PATH)."""
    return manifests.helm()


@pytest.mark.needs_binaries  # the overlay is rendered with the built kubectl
def test_a_repository_tree_is_read_as_kubectl_kustomize_and_helm_would(helm: str) -> None:
    del helm
    notes: list[str] = []
    objects = manifests.load(STACKS / "repo-tree", notes=notes)
    names = sorted((o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects)
    # the base only through the overlay that includes it; the guestbook once; the chart rendered
    assert names == [
        ("Deployment", "", "guestbook"),
        ("Deployment", "", "web"),
        ("Deployment", "prod", "api"),
        ("RayCluster", "", "ray"),
    ]
    said = "\n".join(notes)
    assert "2 file(s) in" in said and "app/config.yaml, values.yaml" in said  # the chart's values are its own
    assert "Deployment/guestbook (defined 2 times)" in said


@pytest.mark.needs_binaries  # kubectl kustomize, and helm v3 for the chart
def test_a_kustomization_with_helm_charts_renders_them() -> None:
    """kustomize inflates ``helmCharts`` only with ``--enable-helm`` and a helm v3: without them
    such a root failed with kustomize's "must specify --enable-helm"."""
    [web] = manifests.load(STACKS / "kustomize-helm")
    assert (web["kind"], web["metadata"].get("namespace"), web["spec"]["replicas"]) == ("Deployment", "shop", 4)


def test_a_chart_renders_with_the_users_values(helm: str, tmp_path: Path) -> None:
    del helm
    chart = STACKS / "repo-tree" / "charts" / "web"
    [default] = manifests.load(chart)
    assert default["spec"]["replicas"] == 2
    override = tmp_path / "prod.yaml"
    override.write_text("replicaCount: 5\n")
    [prod] = manifests.load(chart, values=[override])
    assert prod["spec"]["replicas"] == 5
    broken = tmp_path / "broken.yaml"
    broken.write_text("replicaCount: [\n")
    with pytest.raises(ConfigError, match=r"helm could not render the chart"):
        manifests.load(chart, values=[broken])


def test_the_pod_templates_of_ml_custom_resources_are_checked() -> None:
    inv = checks.Inventory(manifests.load(STACKS / "ml-crds"))
    parts = sorted(f"{w.kind}/{w.name} {w.role}" for w in inv.workloads)
    assert parts == [
        "InferenceService/llama/predictor gpu-inference",
        "JobSet/pretrain/workers batch",
        "LeaderWorkerSet/vllm/leaderTemplate gpu-inference",
        "LeaderWorkerSet/vllm/workerTemplate gpu-inference",
        "PyTorchJob/finetune/master batch",
        "PyTorchJob/finetune/worker batch",
        "RayCluster/ray/head other",
        "RayCluster/ray/workers-gpu other",
        "RayJob/train/head batch",
        "ServingRuntime/vllm-runtime/runtime serving",
    ]
    gpu_node = Node("gpu-0", {}, ({"key": "nvidia.com/gpu", "effect": "NoSchedule"},), 8)
    results = {r.check.id: r for r in checks.run(inv, checks.Facts((gpu_node,)), mode="static")}
    assert [str(f.target) for f in results["GPU-002"].findings] == ["ml/RayCluster/ray/workers-gpu"]
    assert not any(r.status == "error" for r in results.values())
    assert inv.unchecked() == {}


def test_kinds_no_rule_reads_are_counted() -> None:
    inv = checks.Inventory(
        [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}},
            {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": {"name": "k8s"}},
            {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "metadata": {"name": "k9s"}},
        ]
    )
    checks.run(inv, checks.Facts(), mode="static")
    assert inv.unchecked() == {"Prometheus": 2}


def test_yaml_as_kubectl_reads_it(tmp_path: Path) -> None:
    """kube-prometheus: ``kind: ConfigMapList`` and the YAML 1.1 scalar ``=`` in a CRD's enum
    (PyYAML's ``value`` tag, which safe_load refuses); dates stay strings as in kubectl."""
    f = tmp_path / "list.yaml"
    f.write_text(
        "apiVersion: v1\nkind: ConfigMapList\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {op: =, day: 2024-01-01}}\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n"
    )
    objects = manifests.load(f)
    assert [o["metadata"]["name"] for o in objects] == ["a", "b"]
    assert objects[0]["data"] == {"op": "=", "day": "2024-01-01"}


def test_a_tree_skips_what_is_not_manifests_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "kind.yaml").write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}]\n"
    )
    (tmp_path / "broken.yaml").write_text("a: [\n")
    (tmp_path / "svc.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n"
    )
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "ci.yaml").write_text("on: push\n")
    notes: list[str] = []
    [svc] = manifests.load(tmp_path, notes=notes)
    assert svc["kind"] == "Service"
    assert any("are YAML but not Kubernetes objects, skipped: kind.yaml" in n for n in notes), notes
    assert any("are not valid YAML, skipped: broken.yaml" in n for n in notes), notes
    assert not any(".github" in n for n in notes)


def test_helm_renders_a_chart_given_as_dot_and_never_quotes_a_value(
    helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    del helm
    chart = tmp_path / "My_Chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text('password: "p4ss{{w0rd-hunter2"\n')
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata: {x: y}\n"
    )
    monkeypatch.chdir(chart)
    [cm] = manifests.load(Path("."))
    assert cm["metadata"]["name"] == "my-chart"
    (chart / "templates" / "bad.yaml").write_text("{{ tpl .Values.password . }}\n")
    with pytest.raises(ConfigError) as err:
        manifests.load(Path("."))
    assert "hunter2" not in str(err.value) and "helm could not render" in str(err.value)
