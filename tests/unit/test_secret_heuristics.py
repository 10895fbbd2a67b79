"""What SEC-001/SEC-002 call a secret, by name and by value — and what they must leave alone."""

from __future__ import annotations

import pytest

from seatrial.checks.secrets import looks_secret


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASSWORD", "hunter2hunter2"),
        ("API_KEY", "abc123"),
        ("OPENAI_API_KEY", "sk-proj-4f9Qz8LmT2vXw7RkP1sN6yHb"),
        ("SOMETHING", "AKIAIOSFODNN7EXAMPLE"),
        ("GH", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
        ("HF", "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ012345"),
        ("BLOB", "Zx8v2Kq9Lm4Tr7Wp1Ys6Hb3Nc5Fd0Ga"),  # high entropy, no telling name
        ("DATABASE_URL", "postgres://app:s3cr3t@db:5432/app"),
    ],
)
def test_flags_secret_literals(name: str, value: str) -> None:
    assert looks_secret(name, value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_KEY_FILE", "/var/run/secrets/stack/api-key"),
        ("TOKEN_LATENCY_MS", "20"),
        ("PASSWORD", "$(REDIS_PASSWORD)"),
        ("SECRET_NAME", "stack-secrets"),
        ("REDIS_HOST", "redis"),
        ("HUB_URL", "http://hub:8080"),
        ("MODEL_NAME", "meta-llama/Llama-3.1-8B-Instruct"),
        ("AUTH_ENABLED", "true"),
        ("LOG_LEVEL", "info"),
    ],
)
def test_leaves_references_and_settings_alone(name: str, value: str) -> None:
    assert looks_secret(name, value) is None
