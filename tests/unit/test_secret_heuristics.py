"""What the SEC checks call a secret, by name, by value and by where it sits — and what they must
leave alone (a false alarm at critical severity fails someone's release)."""

from __future__ import annotations

import pytest

from seatrial.checks.literals import argv_entries, config_entries, looks_secret, semi_public_key


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
        ("REDIS_URL", "redis://:s3cr3t-Pw@redis:6379/0"),  # a password and no user
        ("REPO", "https://Gh7Tk2Lm9Qx4Wp8Rz3Vn6Bc1@github.com/org/repo.git"),  # a token as the user
        ("JAVA_OPTS", "-Xmx2g -Djavax.net.ssl.trustStorePassword=Tr5Pw-9Kx"),
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


def test_dsn_client_keys_are_semi_public_not_secret() -> None:
    dsn = "https://4f9a1c2e8b7d4e6f@o450123.ingest.sentry.io/5500123"
    assert looks_secret("SENTRY_DSN", dsn) is None
    assert semi_public_key("SENTRY_DSN", dsn)
    assert semi_public_key("HUB_URL", "ssh://git@github.com/org/repo") is None


@pytest.mark.parametrize(
    ("argv", "secret"),
    [
        (["--api-key=Zr8Kq2Wx5Vb9"], "Zr8Kq2Wx5Vb9"),
        (["serve", "--api-key", "Zr8Kq2Wx5Vb9"], "Zr8Kq2Wx5Vb9"),
        (["redis-cli", "-a", "Rd5Pw9-Kx2", "ping"], "Rd5Pw9-Kx2"),
        (["/usr/bin/mysql", "-pMy5Pw9-Kx2", "-e", "select 1"], "My5Pw9-Kx2"),
        (["sh", "-c", "redis-cli -a 'Rd5Pw9-Kx2' ping"], "Rd5Pw9-Kx2"),
    ],
)
def test_command_lines_give_up_their_secrets(argv: list[str], secret: str) -> None:
    assert any(v == secret and looks_secret(n, v, loose_name=True) for n, v in argv_entries(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["--auth-mode", "token"],
        ["--api-key", "$(API_KEY)"],
        ["sh", "-c", 'redis-cli -a "$REDIS_PASSWORD" ping'],
        ["--token-file", "/var/run/secrets/token"],
        ["--secret-name", "stack-secrets"],
        ["--model", "NousResearch/Hermes-3-Llama-3.1-70B", "--port", "8000"],
        ["redis-cli", "-p", "6379", "ping"],
    ],
)
def test_command_lines_without_secrets_pass(argv: list[str]) -> None:
    assert not [(n, v) for n, v in argv_entries(argv) if looks_secret(n, v, loose_name=True)]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("agent-inject-secret-db", "database/creds/db-app"),
        ("agent-inject-token", "true"),
        ("checksum/secret", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
        ("kubectl.kubernetes.io/restartedAt", "2026-11-02T10:00:00Z"),
    ],
)
def test_annotations_that_name_or_hash_secrets_pass(name: str, value: str) -> None:
    assert looks_secret(name, value, loose_name=True) is None


@pytest.mark.parametrize(
    ("key", "text", "secret"),
    [
        ("settings.json", '{"database": {"password": "Db7Pw2-Qx9"}}', "Db7Pw2-Qx9"),
        (".netrc", "machine models.example.com login svc password Nt4Pw8-Lx3\n", "Nt4Pw8-Lx3"),
        ("redis.conf", "port 6379\nrequirepass Rq6Pw1-Zx5\n", "Rq6Pw1-Zx5"),
    ],
)
def test_config_files_give_up_their_secrets(key: str, text: str, secret: str) -> None:
    assert any(v == secret and looks_secret(n, v) for n, v in config_entries(key, text))
