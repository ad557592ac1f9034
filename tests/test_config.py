"""Configuration: precedence, validation, and secrets that never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from irkit import config
from irkit.errors import ConfigError


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "irkit.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_playbooks_system():
    cfg = config.load(env={})
    assert cfg.namespace == "web3-marketplace-prod"
    assert cfg.deployments == ("backend-deployment", "frontend-deployment")
    assert cfg.postgres_statefulset == "postgres-primary" and cfg.redis_statefulset == "redis-master"
    assert cfg.pg_database == "web3marketplace"
    assert (cfg.error_ratio_moderate, cfg.error_ratio_high, cfg.latency_p95_slow_seconds) == (0.05, 0.10, 5.0)


def test_precedence_argument_over_env_over_toml_over_default(tmp_path: Path):
    path = _toml(tmp_path, '[kubernetes]\nnamespace = "from-toml"\nbackend_deployment = "api"\n'
                           '[timeouts]\nrequest_timeout = 3\n')
    env = {"IRKIT_CONFIG": str(path), "IRKIT_NAMESPACE": "from-env"}
    assert config.load(env=env).namespace == "from-env"
    assert config.load(env=env, namespace="from-arg").namespace == "from-arg"
    cfg = config.load(env=env)
    assert cfg.backend_deployment == "api" and cfg.request_timeout == 3.0
    assert cfg.frontend_deployment == "frontend-deployment"


def test_example_toml_documents_every_key_and_loads():
    example = Path(__file__).parent.parent / "irkit.example.toml"
    text = example.read_text()
    for _section, name, _doc, _default in config.keys():
        assert f"\n{name} = " in text or f"\n# {name} = " in text, name
    cfg = config.load(example, env={})
    assert cfg == config.load(env={})  # the example spells out the defaults
    assert text == config.starter_toml()  # what irkit init writes (scripts/make_doc_tables.py rewrites it)


def test_unknown_key_names_the_valid_ones(tmp_path: Path):
    path = _toml(tmp_path, "[kubernetes]\nnamspace = \"typo\"\n")
    with pytest.raises(ConfigError, match="namspace.*valid keys in \\[kubernetes\\]: .*namespace"):
        config.load(path, env={})
    with pytest.raises(ConfigError, match="unknown configuration key"):
        config.load(env={}, namspace="x")


def test_bad_values_name_the_key_and_origin(tmp_path: Path):
    with pytest.raises(ConfigError, match="IRKIT_STATEMENT_TIMEOUT.*statement_timeout='soon'"):
        config.load(env={"IRKIT_STATEMENT_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(_toml(tmp_path, "[kubernetes\n"), env={})
    with pytest.raises(ConfigError, match="IRKIT_CONFIG"):
        config.load(env={"IRKIT_CONFIG": str(tmp_path / "missing.toml")})


def test_a_password_in_the_toml_is_refused(tmp_path: Path):
    path = _toml(tmp_path, '[postgres]\npg_dsn = "postgresql://irkit:hunter2@db/web3marketplace"\n')
    with pytest.raises(ConfigError, match="IRKIT_PG_PASSWORD") as info:
        config.load(path, env={})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="secret"):
        config.load(_toml(tmp_path, '[postgres]\npg_password = "hunter2"\n'), env={})


def test_secrets_from_env_or_file_never_show(tmp_path: Path):
    env_cfg = config.load(env={"IRKIT_PG_DSN": "postgresql://irkit:hunter2@db:5432/web3marketplace",
                               "IRKIT_PROM_TOKEN": "tok-123"})
    assert "hunter2" not in env_cfg.pg_dsn and "hunter2" in env_cfg.pg_conninfo()
    for text in (repr(env_cfg), str(env_cfg), repr(env_cfg.pg_password), str(env_cfg.prom_token)):
        assert "hunter2" not in text and "tok-123" not in text
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\n")
    file_cfg = config.load(env={}, pg_password_file=str(secret_file))
    assert file_cfg.pg_password is not None and file_cfg.pg_password.reveal() == "s3cret"
    assert "s3cret" not in repr(file_cfg)
    with pytest.raises(ConfigError, match="pg_password_file"):
        config.load(env={}, pg_password_file=str(tmp_path / "nope"))


def test_replace_keeps_secrets_and_checks_values():
    cfg = config.load(env={"IRKIT_PG_PASSWORD": "pw"})
    changed = cfg.replace(namespace="other")
    assert changed.namespace == "other" and changed.pg_password == cfg.pg_password
    with pytest.raises(ConfigError):
        cfg.replace(lock_timeout=-1)


def test_redact_masks_url_passwords_and_known_secrets():
    cfg = config.load(env={"IRKIT_PROM_TOKEN": "tok-123"})
    text = "calling https://hooks:abc@hooks.example/x with tok-123 and postgresql://u:pw@h/db"
    redacted = config.redact(text, cfg)
    assert "abc" not in redacted and "tok-123" not in redacted and ":pw@" not in redacted
    assert "hooks.example" in redacted
