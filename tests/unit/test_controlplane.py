"""The control plane's process plan, read as the supervisor gets it (no process is started)."""

from __future__ import annotations

from pathlib import Path

from seatrial.cluster import build, controlplane, pki, pools


def _plan(tmp_path: Path, *, advertise: str | None = None, unthrottled: bool = False) -> dict[str, list[str]]:
    names = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
    bins = build.Binaries({n: Path("/cache/bin") / n for n in names})
    kcfg = {c: tmp_path / f"{c}.kubeconfig" for c in ("controller-manager", "scheduler", "kwok")}
    run = tmp_path / "run"
    run.mkdir()
    plan = controlplane.processes(
        bins, pki.Pki(tmp_path / "pki"), kcfg, ports=controlplane.Ports(), run=run, advertise=advertise,
        node_monitor_grace=20, unthrottled=unthrottled,
    )  # fmt: skip
    assert [p.name for p in plan] == list(names)
    assert [p.stage for p in plan] == [0, 1, 2, 2, 2]
    # a sweep after a crash finds this cluster's leftovers by the run directory in their argv
    assert all(any(str(run) in a for a in p.argv) for p in plan), [p.name for p in plan]
    return {p.name: p.argv for p in plan}


def test_the_plan_keeps_to_loopback_and_to_kwoks_own_nodes(tmp_path: Path) -> None:
    argv = _plan(tmp_path)
    assert "--bind-address=127.0.0.1" in argv["kube-apiserver"]
    assert "--endpoint-reconciler-type=none" in argv["kube-apiserver"]
    assert f"--manage-nodes-with-label-selector={pools.KWOK_LABEL}=fake" in argv["kwok"]
    assert "--node-monitor-grace-period=20s" in argv["kube-controller-manager"]
    assert (tmp_path / "run" / "kwok.yaml").read_text().endswith("enablePodsOnNodeSyncStreamWatch: false\n")
    assert not [a for a in argv["kube-scheduler"] if a.startswith("--kube-api-qps")]


def test_real_nodes_and_the_scale_profile_change_only_their_flags(tmp_path: Path) -> None:
    argv = _plan(tmp_path, advertise="10.77.0.1", unthrottled=True)
    assert "--advertise-address=10.77.0.1" in argv["kube-apiserver"]
    assert "--endpoint-reconciler-type=lease" in argv["kube-apiserver"]
    for name in ("kube-controller-manager", "kube-scheduler"):
        assert argv[name][-2:] == ["--kube-api-qps=5000", "--kube-api-burst=10000"]
