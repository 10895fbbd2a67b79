"""Node images are real OCI archives: built here with umoci, named so containerd keeps the name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from seatrial.cluster import images

pytestmark = pytest.mark.skipif(
    not (shutil.which("umoci") and shutil.which("catatonit")), reason="needs Debian's umoci and catatonit"
)


def _index_and_config(archive: Path) -> tuple[dict, dict]:
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{manifest_digest}"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"))  # type: ignore[arg-type]
    return index, config


def test_pause_image_is_named_and_runs_catatonit_in_pause_mode(tmp_path: Path) -> None:
    image = images.pause_image(tmp_path)
    index, config = _index_and_config(image.archive)
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [images.PAUSE]
    assert config["config"]["Entrypoint"] == ["/catatonit", "-P"]
    stamp = image.archive.stat().st_mtime_ns
    assert images.pause_image(tmp_path).archive.stat().st_mtime_ns == stamp  # cached: not rebuilt


def test_binary_image_has_the_binary_as_entrypoint(tmp_path: Path) -> None:
    binary = Path(shutil.which("catatonit") or "")
    image = images.binary_image("seatrial.local/tool:1", binary, tmp_path)
    index, config = _index_and_config(image.archive)
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "seatrial.local/tool:1"
    assert config["config"]["Entrypoint"] == ["/catatonit"]


needs_containerd = pytest.mark.skipif(
    not (shutil.which("containerd") and shutil.which("ctr")) or os.geteuid() != 0,
    reason="needs root and Debian's containerd",
)


@needs_containerd
def test_image_store_is_built_once_and_planted_without_copying_layers(tmp_path: Path) -> None:
    pause = images.pause_image(tmp_path)
    store = images.image_store([pause], tmp_path)
    assert images.image_store([pause], tmp_path) == store  # cached by the image set
    node = tmp_path / "node-root"
    images.plant_store(store, node)
    layers = list((node / images.SNAPSHOTS).iterdir())
    assert layers
    assert all(layer.is_symlink() and layer.resolve().is_relative_to(store) for layer in layers)
    blobs = [p for p in (node / "io.containerd.content.v1.content").rglob("*") if p.is_file()]
    assert blobs
    assert all(b.stat().st_nlink >= 2 for b in blobs)  # hard links into the store
    meta = node / "io.containerd.metadata.v1.bolt" / "meta.db"
    assert meta.stat().st_nlink == 1  # containerd rewrites it: a copy of its own
    assert not images._store_in_use(store)  # nothing runs from it: a rebuild may prune it
    # a real containerd on the planted root knows the image without importing anything
    runtime = tmp_path / "rt"
    runtime.mkdir()
    sock = runtime / "c.sock"
    conf = runtime / "config.toml"
    conf.write_text(
        f'version = 2\nroot = "{node}"\nstate = "{runtime / "state"}"\n'
        f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{sock}"\n'
    )
    daemon = subprocess.Popen(["containerd", f"--config={conf}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        out = subprocess.run(
            ["ctr", f"--address={sock}", "-n", "k8s.io", "images", "ls", "-q"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert images.PAUSE in out.split()
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)


def test_what_an_image_adds_is_open_to_every_user_whatever_the_umask(tmp_path: Path) -> None:
    # the stack runs as user 65532: a checkout or build made under umask 077 gave 0600 code, a
    # 0700 directory and a 0700 etcd binary, none of which that user could read or run
    tree = tmp_path / "app"
    (tree / "stack").mkdir(parents=True, mode=0o700)
    tree.chmod(0o700)
    (tree / "stack" / "gateway.py").write_text("x")
    (tree / "stack" / "gateway.py").chmod(0o600)
    (tree / "stack" / "etcd").write_text("x")
    (tree / "stack" / "etcd").chmod(0o700)
    (tree / "stack" / "link").symlink_to("gateway.py")
    images.open_to_all(tree)
    assert {p.name: p.stat().st_mode & 0o777 for p in [tree, *tree.rglob("*")] if not p.is_symlink()} == {
        "app": 0o755,
        "stack": 0o755,
        "gateway.py": 0o644,
        "etcd": 0o755,
    }
