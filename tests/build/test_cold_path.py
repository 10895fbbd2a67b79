"""The cold path, guarded in every run: each binary builds into an empty seatrial cache and runs.

A warm CI cannot see a broken cold build: a binary that ``go build`` named differently (etcd's
``server``) broke every new machine while every machine with a cache stayed green. Go's own
module and build caches stay warm here, so this costs the compile of our wrappers and the links
(about half a minute on 2 cores), not the 25 minutes of a truly cold machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

from seatrial.cluster import build, versions

# what --version prints for each, so a binary from somewhere else (Debian's etcd) cannot pass
EXPECTED = {
    **{b: versions.KUBERNETES for b in (*build.KUBE_BINARIES, *build.NODE_BINARIES)},
    "etcd": versions.ETCD.lstrip("v"),
    "kwok": versions.KWOK,
    "coredns": versions.COREDNS.lstrip("v"),
    build.GPU_PLUGIN: f"k8s.io/kubelet {versions.staging_version()}",
}
ASK = {"kubectl": ["version", "--client"]}


def test_every_binary_builds_into_an_empty_cache_and_runs(tmp_path: Path) -> None:
    bins = build.ensure_binaries(root=tmp_path, node_binaries=True)
    assert sorted(bins.paths) == sorted(EXPECTED)
    for name, path in sorted(bins.paths.items()):
        assert path.is_relative_to(tmp_path), f"{name} is {path}, not a binary built into the empty cache"
        proc = subprocess.run(
            [str(path), *ASK.get(name, ["--version"])], capture_output=True, text=True, timeout=30, check=False
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{name} --version exited {proc.returncode}: {out[-500:]}"
        assert EXPECTED[name] in out, f"{name} --version says {out.strip()[:200]!r}, expected {EXPECTED[name]}"
    assert build.cached_binaries(root=tmp_path) is not None
