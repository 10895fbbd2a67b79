"""A bring-up that breaks ends as one message and exit 3, through pytest and the CLI alike.

The failures are planted where users met them: a build that produces no binary (what a renamed
etcd did), and something seatrial did not foresee (a Go toolchain that answers nonsense, which
makes the JSON reader raise). Before, the first ended in 41 test errors and a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seatrial.cluster import build, versions

from ..unit.test_conformance_cli import conformance

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs_binaries

FAKE_GO = """#!/bin/sh
# answers like Go where seatrial asks its version, says nonsense to `go mod download`, builds nothing
case "$1 $2" in
  "env GOVERSION") echo go1.26.0 ;;
  "mod download") echo nonsense ;;
esac
exit 0
"""


def _planted(tmp_path: Path, *, cached: tuple[str, ...]) -> dict[str, str]:
    """An environment whose cache holds the real binaries of ``cached`` and whose Go is fake."""
    real = build.cached_binaries()
    assert real is not None
    cache = tmp_path / "cache"
    for component in cached:
        version = {"kubernetes": versions.KUBERNETES, "etcd": versions.ETCD, "coredns": versions.COREDNS}[component]
        link = cache / "bin" / f"{component}-{version}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(real[{"kubernetes": "kubectl"}.get(component, component)].parent)
    go = tmp_path / "go"
    go.write_text(FAKE_GO)
    go.chmod(0o755)
    pools = tmp_path / "pools"
    pools.mkdir()
    (pools / "cpu.yaml").write_text((ROOT / "manifests" / "cluster" / "cpu.yaml").read_text())
    return {
        "SEATRIAL_CACHE": str(cache),
        "SEATRIAL_GO": str(go),
        "SEATRIAL_POOLS": str(pools),
        "SEATRIAL_CLUSTER_DIR": str(tmp_path / "cluster"),
        "SEATRIAL_PORT_OFFSET": "700",  # never in the way of a cluster the other tests run
    }


CASES = [
    # id, components already in the cache, what the one message says
    ("a build that produces no binary", ("kubernetes", "etcd", "coredns"), f"building kwok {versions.KWOK} produced"),
    ("an error seatrial did not foresee", (), "starting the local cluster failed unexpectedly: JSONDecodeError"),
]


@pytest.mark.parametrize(("cached", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_conformance_bringup_failure_is_one_message_and_exit_3(
    tmp_path: Path, cached: tuple[str, ...], says: str
) -> None:
    env = _planted(tmp_path, cached=cached)
    proc = conformance("--report-dir", str(tmp_path / "reports"), env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-2500:]
    assert says in out, out[-2500:]
    assert out.count("seatrial: error:") == 1, out[-2500:]
    assert "Traceback" not in out
    assert "errors" not in out and "failed" not in out.replace("failed unexpectedly", ""), out[-2500:]
    if "unexpectedly" in says:
        [kept] = (tmp_path / "reports" / "crashes").iterdir()
        assert "Traceback" in kept.read_text()
        assert str(kept) in out


@pytest.mark.parametrize(("cached", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cluster_up_failure_is_one_message_and_exit_3(tmp_path: Path, cached: tuple[str, ...], says: str) -> None:
    env = os.environ | _planted(tmp_path, cached=cached)
    proc = subprocess.run(
        [sys.executable, "-m", "seatrial", "cluster", "up"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out[-2500:]
    assert says.replace("starting the local cluster", "cluster up") in out, out[-2500:]
    assert out.count("seatrial: error:") == 1
    assert "Traceback" not in out
    if "unexpectedly" in says:  # the CLI keeps the traceback under the checkout's reports/: tidy up
        kept = Path(out.split("the traceback is in ", 1)[1].split(";", 1)[0])
        assert "Traceback" in kept.read_text()
        kept.unlink()
