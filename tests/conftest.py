"""Project tests: unit tests need nothing; tests marked ``cluster`` get the local cluster.

Tests marked ``needs_binaries`` render with the built kubectl. Where the binaries are missing
they are skipped, except in CI (``CI`` set), where a skipped proof of the catalogue would be a
green run that proved nothing: there they fail, saying to build first."""

from __future__ import annotations

import os

import pytest

from seatrial.cluster import build


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_binaries") is None or build.cached_binaries() is not None:
        return
    why = f"the cluster's binaries are not built in {build.cache_root()} (this test renders with the built kubectl)"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must build them first (`nox -s tests` runs `seatrial cluster build`)", pytrace=False)
    pytest.skip(f"{why}; run `nox -s cluster -- build`")
