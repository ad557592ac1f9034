"""Secrets in what irkit reads are removed where they enter, and say what was there; text that only looks like
one (PostgreSQL's own messages, a port, a word after "Bearer") stays as it was."""

from __future__ import annotations

import pandas as pd
import pytest

from irkit import config as irconfig
from irkit import redaction

# (text with a secret, the secret, what the redacted form must say)
SECRETS = [
    ("ALTER ROLE app PASSWORD 'hunter2-sql'", "hunter2-sql", "password"),
    ("CREATE USER x WITH ENCRYPTED PASSWORD 'it''s-hunter2'", "s-hunter2", "password"),
    ("SELECT 1 /* postgresql://app:hunter2-dsn@db:5432/x */", "hunter2-dsn", "password"),
    ("connecting to https://deploy:hunter2-url@git.example/repo.git", "hunter2-url", "password"),
    ("host=db password=hunter2-kv user=app", "hunter2-kv", "password"),
    ("PGPASSWORD=hunter2-env psql -h db", "hunter2-env", "password"),
    ('{"level":"info","password": "hunter2 json","user":"x"}', "hunter2 json", "password"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.hunter2sig", "hunter2sig", "token"),
    ("curl -H 'Authorization: Basic aHVudGVyMjpodW50ZXIy' https://api", "aHVudGVyMjpodW50ZXIy", "token"),
    ("retrying with bearer 4b1d2c3e4f5a6b7c8d9ehunter2", "4b1d2c3e4f5a6b7c8d9ehunter2", "token"),
    ("aws: AKIAHUNTER2EXAMPLE01 loaded", "AKIAHUNTER2EXAMPLE01", "aws key"),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/hunter2", "wJalrXUtnFEMI/K7MDENG/hunter2", "secret"),
    ("git push with ghp_hunter2HUNTER2hunter2HUNTER2hunter2 failed", "ghp_hunter2HUNTER2hunter2HUNTER2hunter2",
     "github token"),
    ("token glpat-hunter2hunter2hunter2xx", "glpat-hunter2hunter2hunter2xx", "gitlab token"),
    ("slack xoxb-1234567890-hunter2hunter2", "xoxb-1234567890-hunter2hunter2", "slack token"),
    ("posted to https://hooks.slack.com/services/T00/B00/hunter2hook", "hunter2hook", "slack webhook"),
    ("charge with sk_live_hunter2hunter2hunter2", "sk_live_hunter2hunter2hunter2", "api key"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEhunter2\n-----END RSA PRIVATE KEY-----\nnext line", "MIIEhunter2",
     "private key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEhunter2 (cut off)", "b3BlbnNzaC1rZXktdjEhunter2",
     "private key"),
    # Cut where PostgreSQL stopped keeping the query (1 KiB): what is there of the password still goes.
    ("UPDATE t SET a = 1 /* postgresql://app:hunter2-cut", "hunter2-cut", "password"),
    ("ALTER ROLE app PASSWORD 'hunter2-unclosed", "hunter2-unclosed", "password"),
]

# Text that must come through unchanged: the log lines and messages the diagnosis reads.
NOT_SECRETS = [
    'FATAL:  password authentication failed for user "app"',
    "ERROR:  canceling statement due to lock timeout",
    "rpc error: code = Unavailable desc = connection refused",
    "Bearer authentication required",
    "missing Bearer token",
    "listening on http://0.0.0.0:8080 and https://api.example.com:443/health",
    "NOAUTH Authentication required.",
    "OOM command not allowed when used memory > 'maxmemory'.",
    "tokens: 5 of 10 used",
    "secret rotation finished",
]


@pytest.mark.parametrize(("text", "secret", "what"), SECRETS, ids=[s[2] + ":" + s[0][:30] for s in SECRETS])
def test_a_secret_is_removed_and_the_text_says_what_was_there(text: str, secret: str, what: str):
    out = redaction.redact(text)
    assert secret not in out and "hunter2" not in out
    assert f"[redacted: {what}]" in out
    assert redaction.redact(out) == out  # redacting twice changes nothing


@pytest.mark.parametrize("text", NOT_SECRETS)
def test_text_that_only_looks_like_a_secret_stays(text: str):
    assert redaction.redact(text) == text


@pytest.mark.timeout(30)  # a bound on a regression to quadratic time, not a measurement
@pytest.mark.parametrize("unit", ["a://", "password=", "Bearer ", "-----BEGIN PRIVATE KEY-----", "PASSWORD '",
                                  "authorization: ", "eyJ", "x:", "'" * 3, "AKIA"])
def test_hostile_text_of_a_mebibyte_is_redacted_in_linear_time(unit: str):
    text = unit * ((1 << 20) // len(unit))
    assert len(redaction.redact(text)) > 0


def test_the_configured_secrets_and_a_teams_patterns_are_removed_by_name():
    cfg = irconfig.load(env={"IRKIT_PG_PASSWORD": "pg-hunter2", "IRKIT_SLACK_WEBHOOK_URL": "https://x/hunter2-hook"},
                        redact_patterns=[r"INT-[0-9]{6}"])
    out = irconfig.redact("pw pg-hunter2, hook https://x/hunter2-hook, ticket INT-123456", cfg)
    assert out == ("pw [redacted: IRKIT_PG_PASSWORD], hook [redacted: IRKIT_SLACK_WEBHOOK_URL], "
                   "ticket [redacted: pattern]")


def test_a_pattern_that_does_not_compile_is_refused_when_the_configuration_loads():
    with pytest.raises(irconfig.ConfigError, match="redact_patterns.*regular expression"):
        irconfig.load(env={}, redact_patterns=["(unclosed"])


def test_a_frame_has_its_text_cells_redacted_whatever_pandas_calls_the_dtype():
    frame = pd.DataFrame([{"query": "ALTER ROLE a PASSWORD 'hunter2'", "pid": 7, "none": None}])
    out = redaction.redact_frame(frame)
    assert out["query"].iloc[0] == "ALTER ROLE a PASSWORD [redacted: password]" and out["pid"].iloc[0] == 7
