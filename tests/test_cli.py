"""Hostile input: what a careless user or an attacker types, refused in one line or accepted harmlessly.

Every case runs the real CLI (``irkit.cli.main``) in one child process held under a
memory limit (``resource.setrlimit``), so a regression that allocates without bound
fails this test instead of taking the machine down. A case passes when the CLI exits
with the expected code, prints no traceback, says why in one line that names the fix,
and never echoes a secret it was given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MEMORY_LIMIT = 3 << 30  # bytes of address space for the child: irkit needs well under 1.5 GiB
SECRET = "hunter2-s3cr3t"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    match: str  # a regex the one-line answer must contain (what is wrong, or the fix)
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # written into the case's directory first
    links: dict[str, str] = field(default_factory=dict)  # symlinks planted there: name -> target
    fifos: tuple[str, ...] = ()  # FIFOs planted there (a reader that opens one blocks forever)


def _toml(section: str, line: str) -> dict[str, bytes]:
    return {"irkit.toml": f"[{section}]\n{line}\n".encode()}


def _scenario(body: str) -> dict[str, bytes]:
    base = Path(__file__).parent.parent / "irkit" / "drill" / "scenarios" / "false-alarm.toml"
    return {"s.toml": (base.read_text() + "\n" + body).encode()}


def _replace_in_scenario(old: str, new: str) -> dict[str, bytes]:
    base = Path(__file__).parent.parent / "irkit" / "drill" / "scenarios" / "false-alarm.toml"
    text = base.read_text()
    assert old in text, old
    return {"s.toml": text.replace(old, new, 1).encode()}


RUN = ("run", "--incident", "INC-1")
CFG = (*RUN, "--config", "irkit.toml")
MANIFEST_RUN = {"run/run.json": b'{"incident": "INC-1", "phases": [1]}'}

CASES = [
    # --- the command line
    Case("phases-huge-range", (*RUN, "--phases", "1-99999999999"), r"phases are 1 to 5"),
    Case("phases-zero", (*RUN, "--phases", "0"), r"phases are 1 to 5"),
    Case("phases-six", (*RUN, "--phases", "6"), r"phases are 1 to 5"),
    Case("phases-reversed", (*RUN, "--phases", "5-1"), r"phases are 1 to 5"),
    Case("phases-empty", (*RUN, "--phases", ""), r"not like 1-5"),
    Case("phases-shell", (*RUN, "--phases", "1;reboot"), r"not like 1-5"),
    Case("phases-long", (*RUN, "--phases", "1," * 50000), r"not like 1-5"),
    Case("incident-traversal", ("run", "--incident", "../../etc"), r"--incident .*like INC-123"),
    Case("incident-empty", ("run", "--incident", ""), r"--incident .*like INC-123"),
    Case("incident-shell", ("run", "--incident", "INC-1; rm -rf /"), r"--incident .*like INC-123"),
    Case("incident-long", ("run", "--incident", "I" * 100000), r"--incident .*like INC-123"),
    Case("incident-missing", ("run",), r"required: --incident"),
    Case("command-unknown", ("explode",), r"invalid choice"),
    Case("option-value-missing", ("run", "--incident"), r"expected one argument"),
    Case("window-huge", (*RUN, "-p", "window_minutes", "99999999999"), r"window_minutes must be .*1 to 10080"),
    Case("window-negative", (*RUN, "-p", "window_minutes", "-5"), r"window_minutes must be"),
    Case("window-nan", (*RUN, "-p", "window_minutes", "nan"), r"window_minutes must be int"),
    Case("window-overflow", (*RUN, "-p", "window_minutes", "9" * 5000), r"longer than 1024"),
    Case("log-tail-huge", (*RUN, "--phases", "2", "-p", "log_tail", "100000000"), r"log_tail must be .*10000"),
    Case("older-than-negative", (*RUN, "--phases", "2", "-p", "older_than_seconds", "-1"), r"older_than_seconds"),
    Case("param-unknown", (*RUN, "-p", "nope", "1"), r"unknown parameter 'nope'.*take: .*window_minutes"),
    Case("param-reserved", (*RUN, "-p", "run_dir", "/etc"), r"set by irkit run itself"),
    Case("confirm-other-incident", (*RUN, "-p", "confirm", "INC-2:rollout-undo-3f9a2c"),
         r"confirm is for incident INC-2, this run is INC-1"),
    Case("confirm-malformed", (*RUN, "-p", "confirm", "rollout-undo-3f9a2c; rm -rf /"),
         r"confirm must be INCIDENT:STEP-ID"),
    Case("settle-absurd", (*RUN, "-p", "settle_seconds", "99999999"), r"settle_seconds must be a number from 0"),
    Case("param-secret-name", (*RUN, "-p", "password", SECRET), r"'password' looks like a secret.*IRKIT_PG_PASSWORD"),
    Case("param-secret-value", (*RUN, "-p", "window_minutes", f"postgres://u:{SECRET}@db/x"), r"looks like a secret"),
    Case("param-secret-in-name", (*RUN, "-p", f"postgres://u:{SECRET}@db/x", "1"), r"a parameter looks like a secret"),
    Case("param-long-name", (*RUN, "-p", "x" * 5000, "1"), r"longer than 1024"),
    Case("param-too-many", (*RUN, *[w for i in range(40) for w in ("-p", f"p{i}", "1")]), r"at most 32"),
    Case("config-missing", (*RUN, "--config", "nope.toml"), r"--config 'nope.toml': no such file"),
    Case("config-directory", (*RUN, "--config", "."), r"no such file"),
    Case("config-binary", CFG, r"not a text file", files={"irkit.toml": bytes(range(256)) * 4}),
    Case("config-huge", CFG, r"larger than 1024 KiB", files={"irkit.toml": b"# x\n" * 300000}),
    Case("config-not-toml", CFG, r"not valid TOML", files={"irkit.toml": b"[kubernetes\n"}),
    Case("outputs-is-file", (*RUN, "--defaults", "--outputs", "afile"), r"--outputs 'afile' is a file", files={"afile": b"x"}),
    Case("outputs-under-file", (*RUN, "--defaults", "--outputs", "afile/sub"), r"--outputs .*cannot create", files={"afile": b"x"}),
    # --- configuration keys (irkit.toml)
    Case("ns-injection", CFG, r"namespace=.*RFC 1123", files=_toml("kubernetes", 'namespace = "prod; touch /tmp/x #"')),
    Case("ns-dotdot", CFG, r"namespace='\.\.'.*RFC 1123", files=_toml("kubernetes", 'namespace = ".."')),
    Case("ns-empty", CFG, r"namespace is empty", files=_toml("kubernetes", 'namespace = ""')),
    Case("ns-number", CFG, r"expected a string", files=_toml("kubernetes", "namespace = 5")),
    Case("deployment-slash", CFG, r"backend_deployment=.*DNS subdomain",
         files=_toml("kubernetes", 'backend_deployment = "a/b"')),
    Case("deployment-subshell", CFG, r"frontend_deployment=.*DNS subdomain",
         files=_toml("kubernetes", 'frontend_deployment = "$(reboot)"')),
    Case("container-upper", CFG, r"backend_container=.*RFC 1123",
         files=_toml("kubernetes", 'backend_container = "Backend_1"')),
    Case("statefulset-long", CFG, r"postgres_statefulset=.*at most 253",
         files=_toml("kubernetes", f'postgres_statefulset = "{"a" * 300}"')),
    Case("ratio-nan", CFG, r"error_ratio_high=nan.*above 0 and at most 1", files=_toml("thresholds", "error_ratio_high = nan")),
    Case("ratio-inf", CFG, r"error_ratio_high=inf", files=_toml("thresholds", "error_ratio_high = inf")),
    Case("ratio-above-one", CFG, r"error_ratio_moderate=", files=_toml("thresholds", "error_ratio_moderate = 5")),
    Case("thresholds-inverted", CFG, r"error_ratio_moderate=0.2 is above error_ratio_high=0.1",
         files=_toml("thresholds", "error_ratio_moderate = 0.2")),
    Case("latency-negative", CFG, r"latency_p95_slow_seconds", files=_toml("thresholds", "latency_p95_slow_seconds = -1")),
    Case("timeout-negative", CFG, r"connect_timeout=-1", files=_toml("timeouts", "connect_timeout = -1")),
    Case("timeout-absurd", CFG, r"request_timeout=.*at most 600", files=_toml("timeouts", "request_timeout = 1e9")),
    Case("timeout-bool", CFG, r"expected a number", files=_toml("timeouts", "http_timeout = true")),
    Case("prom-url-file", CFG, r"prom_url=.*http:// or https://", files=_toml("prometheus", 'prom_url = "file:///etc/passwd"')),
    Case("prom-url-no-host", CFG, r"prom_url=", files=_toml("prometheus", 'prom_url = "http://"')),
    Case("prom-url-bad-port", CFG, r"prom_url=", files=_toml("prometheus", 'prom_url = "http://h:99999"')),
    Case("metric-injection", CFG, r"prom_requests_metric=.*Prometheus metric",
         files=_toml("prometheus", 'prom_requests_metric = "up) or vector(1"')),
    Case("rate-window-injection", CFG, r"prom_rate_window=.*PromQL duration",
         files=_toml("prometheus", 'prom_rate_window = "5m]) or vector(1"')),
    Case("endpoint-scheme", CFG, r"health_endpoints=.*http:// or https://",
         files=_toml("http", 'health_endpoints = ["gopher://x"]')),
    Case("endpoints-too-many", CFG, r"at most 50 entries",
         files=_toml("http", "health_endpoints = [" + ",".join(['"http://x"'] * 100) + "]")),
    Case("dsn-with-password", CFG, r"pg_dsn contains a password",
         files=_toml("postgres", f'pg_dsn = "postgresql://u:{SECRET}@db/x"')),
    Case("dsn-garbage", CFG, r"pg_dsn is not a valid libpq DSN", files=_toml("postgres", "pg_dsn = \"host='\"")),
    Case("table-control-char", CFG, r"pg_orders_table=.*PostgreSQL name",
         files=_toml("postgres", 'pg_orders_table = "orders\\u0000"')),
    Case("secret-in-toml", CFG, r"is a secret; set IRKIT_PG_PASSWORD", files=_toml("postgres", f'pg_password = "{SECRET}"')),
    Case("section-not-table", CFG, r"must be a \[section\]", files={"irkit.toml": b"kubernetes = 1\n"}),
    Case("key-unknown", CFG, r"namspace is not a key irkit knows", files=_toml("kubernetes", 'namspace = "x"')),
    # --- IRKIT_* variables
    Case("env-namespace", RUN, r"IRKIT_NAMESPACE: namespace=", env={"IRKIT_NAMESPACE": "a b"}),
    Case("env-timeout-inf", RUN, r"IRKIT_CONNECT_TIMEOUT", env={"IRKIT_CONNECT_TIMEOUT": "inf"}),
    Case("env-ratio-zero", RUN, r"IRKIT_ERROR_RATIO_HIGH", env={"IRKIT_ERROR_RATIO_HIGH": "0"}),
    Case("env-endpoint", RUN, r"IRKIT_HEALTH_ENDPOINTS", env={"IRKIT_HEALTH_ENDPOINTS": "javascript:alert(1)"}),
    Case("env-config-missing", RUN, r"cannot be read.*IRKIT_CONFIG", env={"IRKIT_CONFIG": "/nonexistent/irkit.toml"}),
    Case("env-config-dir", RUN, r"cannot be read", env={"IRKIT_CONFIG": "/"}),
    Case("env-password-file", RUN, r"pg_password_file=.*cannot be read", env={"IRKIT_PG_PASSWORD_FILE": "/nonexistent"}),
    Case("env-token-file-dir", RUN, r"prom_token_file=.*cannot be read", env={"IRKIT_PROM_TOKEN_FILE": "/"}),
    Case("env-evidence-key-file", ("verify", "run"), r"IRKIT_EVIDENCE_KEY_FILE=.*cannot be read",
         env={"IRKIT_EVIDENCE_KEY_FILE": "/nonexistent"},
         files={**MANIFEST_RUN, "run/manifest.json": b'{"files": {}}'}),
    # --- scenario files (refused before any drill service starts)
    Case("scenario-unknown", ("drill", "no-such-scenario"), r"no scenario 'no-such-scenario'.*--list"),
    Case("scenario-none", ("drill",), r"needs a SCENARIO"),
    Case("scenario-binary", ("drill", "s.toml"), r"not a text file", files={"s.toml": b"\xff\xfe\x00" * 100}),
    Case("scenario-huge", ("drill", "s.toml"), r"larger than 1024 KiB", files={"s.toml": b"# x\n" * 300000}),
    Case("scenario-sessions", ("drill", "s.toml"), r"at most 50 tables",
         files=_scenario("".join(f'[[sessions]]\nname = "s{i}"\nstatements = ["SELECT 1"]\n' for i in range(60)))),
    Case("scenario-pods", ("drill", "s.toml"), r"pods count|pods in all; at most 10000",
         files=_replace_in_scenario('replicas = 3', 'replicas = 3\npods = [{ count = 1000000000000, state = "running" }]')),
    Case("scenario-history", ("drill", "s.toml"), r"at most 7 days back",
         files=_replace_in_scenario('start = "-3h"', 'start = "-99999d"')),
    Case("scenario-namespace", ("drill", "s.toml"), r"namespace must be",
         files={"s.toml": b'namespace = "x; rm -rf /"\n' + _scenario("")["s.toml"]}),
    Case("scenario-rps", ("drill", "s.toml"), r"rps must be", files=_replace_in_scenario("rps = 40", "rps = -5")),
    Case("scenario-config", ("drill", "s.toml"), r"namespace=.*RFC 1123",
         files=_scenario('[config]\nnamespace = "$(reboot)"\n')),
    Case("scenario-parameters", ("drill", "s.toml"), r"window_minutes must be",
         files=_scenario("[parameters]\nwindow_minutes = 99999999999\n")),
    Case("scenario-severity", ("drill", "s.toml"), r"severity 'SEV-9'",
         files=_replace_in_scenario('severity = "SEV-4"', 'severity = "SEV-9"')),
    # --- run directories and manifests
    Case("verify-file", ("verify", "afile"), r"not a directory", files={"afile": b"x"}),
    Case("verify-missing", ("verify", "nowhere"), r"not a directory"),
    Case("verify-not-a-run", ("verify", "."), r"not a run directory"),
    Case("verify-manifest-binary", ("verify", "run"), r"not an irkit manifest",
         files={**MANIFEST_RUN, "run/manifest.json": b"\x00\xff"}),
    Case("verify-manifest-list", ("verify", "run"), r"not an irkit manifest",
         files={**MANIFEST_RUN, "run/manifest.json": b'{"files": []}'}),
    Case("seal-not-a-run", ("seal", "."), r"not a run directory"),
    # --- what others planted in outputs/ (read without blocking, never written through)
    Case("outputs-incident-link", (*RUN, "--defaults", "--outputs", "out"), r"out/INC-1 is a symlink", links={"out/INC-1": "/"}),
    Case("verify-manifest-fifo", ("verify", "run"), r"not an irkit manifest", files=MANIFEST_RUN,
         fifos=("run/manifest.json",)),
    Case("verify-manifest-dev-zero", ("verify", "run"), r"not an irkit manifest", files=MANIFEST_RUN,
         links={"run/manifest.json": "/dev/zero"}),
    Case("seal-record-fifo", ("seal", "run"), r"phase 1 skipped\n.*not evidence irkit wrote.*phase-1.json \(FIFO\)",
         code=0, files=MANIFEST_RUN,
         fifos=("run/phase-1.json",)),
    Case("send-outbox-fifo", ("send", "run"), r"^$", code=0, files=MANIFEST_RUN, fifos=("run/outbox/001-a-slack.json",)),
    Case("serve-queue-zero", ("serve", "--max-queued", "0"), r"--max-queued must be 1 to 10000",
         env={"IRKIT_SERVE_TOKEN": "t", "IRKIT_NAMESPACE": "shop"}),
    Case("serve-no-configuration", ("serve",), r"no configuration: .*irkit init", env={"IRKIT_SERVE_TOKEN": "t"}),
    Case("redact-pattern-bad", CFG, r"redact_patterns=.*regular expression", files=_toml("evidence", 'redact_patterns = ["("]')),
    Case("evidence-group-bad", CFG, r"evidence_group=.*group name", files=_toml("evidence", 'evidence_group = "a b; rm"')),
    # --- no configuration at all: never the built-in names by accident
    Case("no-configuration", RUN, r"no configuration: .*irkit init.*--defaults"),
    Case("init-over-a-file", ("init",), r"irkit.toml exists", files={"irkit.toml": b"[kubernetes]\n"}),
    Case("init-through-a-link", ("init", "cfg.toml"), r"cfg.toml exists", links={"cfg.toml": "/etc/passwd"}),
    # --- accepted harmlessly
    Case("init-writes-a-starter", ("init", "mine.toml"), r"wrote mine.toml: .*--config .*mine.toml", code=0),
    Case("drill-list", ("drill", "--list"), r"lock-contention", code=0),
    Case("verify-unfinished", ("verify", "run"), r"unfinished run: phase 1 skipped", code=1, files=MANIFEST_RUN),
    Case("verify-reports-symlink", ("verify", "run"), r"added: |unexpected: ", code=1,
         files={**MANIFEST_RUN, "run/manifest.json": b'{"files": {}}', "run/x": b"x"}),
]

_DRIVER = r"""
import contextlib, io, json, os, resource, signal, sys, traceback
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
from irkit import cli
cases = json.load(sys.stdin)
results = {}
base_env = {k: v for k, v in os.environ.items() if not k.startswith("IRKIT_")}
for case in cases:
    os.chdir(case["dir"])
    os.environ.clear()
    os.environ.update(base_env)
    os.environ.update(case["env"])
    out, err = io.StringIO(), io.StringIO()
    crash = ""
    signal.alarm(60)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(case["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:
        code, crash = -1, traceback.format_exc()
    finally:
        signal.alarm(0)
    results[case["id"]] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "crash": crash}
json.dump(results, sys.__stdout__)
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    specs = []
    for case in CASES:
        directory = tmp_path_factory.mktemp(case.id)
        for name, content in case.files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(content)
        for name, target in case.links.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).symlink_to(target)
        for name in case.fifos:
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(directory / name)
        specs.append({"id": case.id, "argv": list(case.argv), "env": case.env, "dir": str(directory)})
    proc = subprocess.run([sys.executable, "-c", _DRIVER, str(MEMORY_LIMIT)], input=json.dumps(specs),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_the_suite_is_large_enough():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_input_is_refused_in_one_line_or_accepted_harmlessly(case: Case, outcomes: dict[str, dict]):
    got = outcomes[case.id]
    assert not got["crash"], got["crash"]
    said = got["stderr"] if case.code == 2 else got["stdout"] + got["stderr"]
    assert "Traceback" not in said
    assert got["code"] == case.code, said
    if case.code == 2:
        assert len(said.strip().splitlines()) == 1, said
    assert __import__("re").search(case.match, said), said
    assert SECRET not in got["stdout"] + got["stderr"]
