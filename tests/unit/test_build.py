"""The build recipe: staging modules pinned, versions stamped, a missing toolchain said plainly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from seatrial.cluster import build, versions
from seatrial.errors import ToolMissingError

UPSTREAM = """module k8s.io/kubernetes

go 1.24.0

godebug default=go1.24

require (
\tgithub.com/spf13/cobra v1.9.1
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

require k8s.io/kms v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
)
"""


def test_staging_modules_are_the_v000_requirements() -> None:
    assert build.staging_modules(UPSTREAM) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/kms"]


def test_wrapper_pins_every_staging_module_to_matching_release() -> None:
    mod = build.kubernetes_wrapper_go_mod("v1.34.4", ["k8s.io/api", "k8s.io/client-go"])
    assert "require k8s.io/kubernetes v1.34.4" in mod
    assert "\tk8s.io/api => k8s.io/api v0.34.4" in mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.34.4" in mod
    assert "godebug default=go1.24" in mod


def test_version_ldflags_stamp_both_version_packages() -> None:
    flags = build.version_ldflags("v1.34.4")
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.34.4" in flags
        assert f"-X {pkg}.gitMinor=34" in flags


def test_staging_version() -> None:
    assert versions.staging_version("v1.34.4") == "v0.34.4"


def test_recipe_digest_changes_with_version() -> None:
    a = build.Recipe("kubernetes", "v1.34.4", "kubectl", "k8s.io/kubernetes/cmd/kubectl")
    b = build.Recipe("kubernetes", "v1.34.5", "kubectl", "k8s.io/kubernetes/cmd/kubectl")
    assert a.digest() != b.digest()


def test_missing_go_is_a_tool_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEATRIAL_GO", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match="Go toolchain was not found"):
        build.go_binary()


def test_cached_binaries_skip_build(tmp_path: Path) -> None:
    """A binary whose recipe stamp matches is not rebuilt (no go is even looked for)."""
    recipes = build.kubernetes_recipes(["kubectl"])
    dest = tmp_path / "bin" / f"kubernetes-{versions.KUBERNETES}"
    dest.mkdir(parents=True)
    (dest / "kubectl").write_text("#!/bin/sh\n")
    (dest / "kubectl.recipe").write_text(recipes[0].digest())
    assert build._missing(recipes, dest) == []
    (dest / "kubectl.recipe").write_text("stale")
    assert build._missing(recipes, dest) == recipes


def test_cli_without_go_exits_2_with_one_message(tmp_path: Path) -> None:
    """Acceptance: a missing Go toolchain gives one clear message, exit 2, and starts nothing."""
    pools = tmp_path / "pools"
    pools.mkdir()
    (pools / "cpu.yaml").write_text("name: cpu\ncount: 1\nzones: [a]\ncapacity: {cpu: '1', memory: 1Gi, pods: '9'}\n")
    env = {
        "PATH": "/usr/sbin:/sbin",
        "SEATRIAL_POOLS": str(pools),
        "HOME": str(tmp_path),
        "SEATRIAL_CACHE": str(tmp_path / "cache"),
        "SEATRIAL_CLUSTER_DIR": str(tmp_path / "cluster"),
        "SEATRIAL_PORT_OFFSET": "-1000",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "seatrial", "cluster", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Go toolchain was not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "cluster" / "run" / "supervisor.pid").exists()


def test_etcd_falls_back_to_system_etcd_with_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seatrial.errors import BuildError

    fake = tmp_path / "etcd"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    def broken(**_: object) -> Path:
        raise BuildError("building etcd failed (go exited 1)")

    monkeypatch.setattr(build, "build_etcd", broken)
    assert build.etcd_or_fallback(root=tmp_path) == fake
    assert "falling back to" in capsys.readouterr().err
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BuildError):
        build.etcd_or_fallback(root=tmp_path)


def test_cli_without_node_packages_names_them(tmp_path: Path) -> None:
    """Real nodes need Debian packages: a machine without them is told which, exit 2."""
    env = {
        "PATH": "/nonexistent",
        "HOME": str(tmp_path),
        "SEATRIAL_CLUSTER_DIR": str(tmp_path / "cluster"),
        "SEATRIAL_PORT_OFFSET": "-1000",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "seatrial", "cluster", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "real nodes need these Debian packages: " in proc.stderr
    assert "containerd" in proc.stderr and "apt-get install" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("package", "name"),
    [
        ("go.etcd.io/etcd/server/v3", "server"),  # the element before a major-version suffix
        ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
        ("github.com/coredns/coredns", "coredns"),
        ("example.com/tool/v1", "v1"),  # v1 is no major-version suffix
        ("example.com/tool/v10", "tool"),
    ],
)
def test_go_output_name_follows_go_build(package: str, name: str) -> None:
    assert build.go_output_name(package) == name


def test_install_renames_to_the_clusters_name_and_says_when_nothing_was_built(tmp_path: Path) -> None:
    from seatrial.errors import BuildError

    built, dest, log = tmp_path / "out", tmp_path / "bin", tmp_path / "build.log"
    built.mkdir()
    (built / "server").write_text("#!/bin/sh\n")
    etcd = build.Recipe("etcd", "v3.6.16", "etcd", "go.etcd.io/etcd/server/v3")
    build._install([etcd], built, dest, log)
    assert (dest / "etcd").exists() and (dest / "etcd.recipe").read_text() == etcd.digest()
    kwok = build.Recipe("kwok", "v0.7.0", "kwok", "sigs.k8s.io/kwok/cmd/kwok")
    with pytest.raises(BuildError, match=r"produced no kwok .*the build wrote: server.*build\.log"):
        build._install([kwok], built, dest, log)


def test_locust_wheels_come_from_uv_on_path_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from seatrial.cluster import images

    monkeypatch.setattr(images.shutil, "which", lambda name: f"/opt/bin/{name}")
    assert images.wheel_installer()[:3] == ["/opt/bin/uv", "pip", "install"]


def test_locust_wheels_use_this_pythons_uv_or_pip_when_uv_is_not_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A venv nox made with uv has no pip: the uv beside it, or a uv package, must still be found."""
    import importlib.util

    from seatrial.cluster import images

    monkeypatch.setattr(images.shutil, "which", lambda name: None)
    have = {"uv", "pip"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name in have else None)
    assert images.wheel_installer()[:3] == [sys.executable, "-m", "uv"]
    have.discard("uv")
    pip = images.wheel_installer()
    assert pip[:3] == [sys.executable, "-m", "pip"]
    assert [pip[i + 1] for i, a in enumerate(pip) if a == "--platform"] == list(images.PIP_PLATFORMS)
    have.discard("pip")
    with pytest.raises(ToolMissingError, match=r"neither: put uv on PATH \(pip install uv\)"):
        images.wheel_installer()
