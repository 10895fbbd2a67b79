"""Node images are real OCI archives: built here with umoci, named so containerd keeps the name."""

from __future__ import annotations

import json
import shutil
import tarfile
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
