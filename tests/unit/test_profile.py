"""Profiles are strict: a typo in a gate's configuration is an error, never a relaxed gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seatrial import profile
from seatrial.errors import ConfigError


def test_default_profile_is_the_reference_stack() -> None:
    p = profile.load(None)
    assert p.deploys_reference
    assert p.roles["StatefulSet/inference"] == "gpu-inference"
    assert p.slos.error_rate == 0.01


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"kind": "Profile", "name": "x", "namespace": ["a"]}, "did you mean 'namespaces'"),
        ({"kind": "Profile"}, "name is required"),
        ({"kind": "Policy", "name": "x"}, "kind must be Profile"),
        ({"name": "x", "workloads": [{"kind": "Deployment", "name": "a", "role": "web"}]}, "role must be one of"),
        ({"name": "x", "slos": {"errorRate": "low"}}, "slos.errorRate must be"),
        ({"name": "x", "slos": {"p99": 3}}, "did you mean 'p99Ms'"),
        ({"name": "x", "namespaces": "prod"}, "namespaces must be a list"),
        (["not", "a", "mapping"], "a profile is a YAML mapping"),
        ({"name": "x", "safety": {"refuseContext": ["*prod*"]}}, "did you mean 'refuseContexts'"),
        ({"name": "x", "safety": {"refuseContexts": "*prod*"}}, "refuseContexts must be a list"),
    ],
)
def test_malformed_profiles_are_config_errors(doc: Any, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        profile.parse(doc, "p.yaml")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read profile"):
        profile.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        profile.load(bad)


@pytest.mark.parametrize(
    ("context", "refused"),
    [("prod", "*prod*"), ("gke_acme_Production_eu", "*prod*"), ("staging", None), ("kind-seatrial", None)],
)
def test_production_contexts_are_refused_by_default(context: str, refused: str | None) -> None:
    assert profile.load(None).safety.refused(context) == refused
    if refused:
        with pytest.raises(ConfigError, match="never runs against production"):
            profile.Safety().check(context)
    assert profile.parse({"name": "x", "safety": {"refuseContexts": []}}, "p.yaml").safety.refused(context) is None
