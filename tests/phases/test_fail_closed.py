"""A blind run never looks healthy, and a run cut short keeps usable evidence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from irkit import config
from irkit.config import Config
from irkit.lab.kube import KubeLab, build_cluster
from irkit.phases import assess
from irkit.phases.incident import Incident
from irkit.sources import prom

IRKIT = str(Path(sys.executable).parent / "irkit")
HEALTHY = {"workloads": [
    {"name": "backend-deployment", "container": "backend", "replicas": 2},
    {"name": "frontend-deployment", "container": "frontend", "replicas": 2},
    {"name": "postgres-primary", "kind": "StatefulSet", "container": "postgres", "replicas": 1},
]}


@pytest.fixture(scope="module")
def healthy_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with KubeLab() as lab:
        lab.load(build_cluster(HEALTHY, "shop"))
        yield lab.write_kubeconfig(tmp_path_factory.mktemp("kube") / "config", "shop")


def _phase_one(inc: Incident) -> dict:
    for step in (assess.error_ratio_now, assess.latency_now, assess.pod_health, assess.endpoint_health,
                 assess.assessment, assess.checklist):
        step(inc)
    return inc.finish()["records"]


def test_a_metric_that_matches_no_series_makes_the_severity_unknown_and_says_which_key(
        cfg: Config, healthy_kubeconfig: Path, tmp_path: Path):
    blind = cfg.replace(namespace="shop", kubeconfig=str(healthy_kubeconfig), health_endpoints=[],
                        prom_requests_metric="http_requests_totl", prom_latency_metric="request_seconds")
    records = _phase_one(Incident("INC-BLIND", 1, tmp_path, blind))
    severity = records["severity"]
    assert severity["name"] == "unknown" and severity["real"] is None and records["real"] is None
    unmeasured = " ".join(severity["unmeasured"])
    assert "`http_requests_totl` has no series; check prom_requests_metric" in unmeasured
    assert "`request_seconds_bucket` has no series; check prom_latency_metric" in unmeasured
    assert "health endpoints: none configured" in unmeasured
    answers = {row["check"]: row["answer"] for row in records.get("checklist", [])} or None
    assert answers is None or "not an incident" not in json.dumps(answers)


def test_a_wrong_service_label_is_named(cfg: Config):
    client = prom.connect(cfg.replace(prom_service_label="svc"))
    error = prom.explain_no_data(client, "error ratio now", "prom_requests_metric")
    assert "`http_requests_total` has no series with `svc`; check prom_service_label" in str(error)
    assert not error.down  # Prometheus answered: it is the configuration that is wrong


def test_the_same_situation_measured_is_sev4(cfg: Config, healthy_kubeconfig: Path, tmp_path: Path):
    # The lab's "search" service is healthy but slow; keep only the quiet frontend's share in view by raising
    # the thresholds: everything measured and under them is the one way to say "not an incident".
    quiet = cfg.replace(namespace="shop", kubeconfig=str(healthy_kubeconfig), error_ratio_high=0.5,
                        error_ratio_moderate=0.4, latency_p95_slow_seconds=60.0,
                        health_endpoints=[f"{cfg.prom_url}/-/ready"])
    records = _phase_one(Incident("INC-QUIET", 1, tmp_path, quiet))
    assert records["severity"]["name"] == "SEV-4" and records["real"] is False, records["severity"]


def test_every_source_down_exits_inconclusive(closed_port: str, tmp_path: Path):
    toml = tmp_path / "irkit.toml"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://{closed_port}"}}],
        "users": [{"name": "c", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "c"}}]}))
    toml.write_text(f'[kubernetes]\nkubeconfig = "{kubeconfig}"\n'
                    f'[postgres]\npg_dsn = "postgresql://irkit@{closed_port}/db"\n'
                    f'[prometheus]\nprom_url = "http://{closed_port}"\n[http]\nhealth_endpoints = []\n'
                    "[timeouts]\nconnect_timeout = 1.0\nrequest_timeout = 1.0\n")
    result = subprocess.run([IRKIT, "run", "--incident", "INC-DARK", "--phases", "1", "--config", str(toml),
                             "--outputs", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "inconclusive: severity unknown" in result.stderr
    summary = json.loads(next((tmp_path / "out").glob("INC-DARK/*/summary.json")).read_text())
    assert summary["severity"]["name"] == "unknown" and summary["real"] is None
    assert any("connection refused" in u for u in summary["severity"]["unmeasured"]), summary["severity"]


def test_a_bad_config_stops_the_run_before_any_phase(tmp_path: Path):
    toml = tmp_path / "irkit.toml"
    toml.write_text('[thresholds]\nerror_ratio_high = 0.01\n')
    result = subprocess.run([IRKIT, "run", "--incident", "INC-1", "--config", str(toml), "--outputs",
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "error_ratio_moderate=0.05 is above error_ratio_high=0.01" in result.stderr
    assert "phase 1" not in result.stderr and not (tmp_path / "out").exists()


def _kernel_dirs(pid: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"irkit-kernels-{pid}-*"))


def test_kill_9_leaves_evidence_that_seal_makes_verifiable_and_the_next_run_cleans_kernel_files(
        cfg: Config, tmp_path: Path):
    toml = tmp_path / "irkit.toml"
    toml.write_text(config.to_toml({"kubeconfig": cfg.kubeconfig, "pg_dsn": cfg.pg_dsn, "prom_url": cfg.prom_url,
                                    "health_endpoints": []}))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    argv = [IRKIT, "run", "--incident", "INC-KILL", "--config", str(toml), "--outputs", str(tmp_path / "out")]
    proc = subprocess.Popen(argv, cwd=workdir, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    assert proc.stderr is not None
    seen, deadline = "", time.monotonic() + 90
    while "phase 2 02-investigate: running" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.readline()
    assert "phase 2 02-investigate: running" in seen, seen
    assert _kernel_dirs(proc.pid), "kernel files go to a private directory of the run"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    run_dir = next((tmp_path / "out" / "INC-KILL").iterdir())
    verify = subprocess.run([IRKIT, "verify", str(run_dir)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 1
    assert "unfinished run: phase 1 complete, phase 2 partial, phases 3-5 skipped" in verify.stdout, verify.stdout
    seal = subprocess.run([IRKIT, "seal", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert seal.returncode == 0, seal.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [p["status"] for p in summary["phases"]] == ["ok", "partial", "skipped", "skipped", "skipped"]
    assert summary["severity"]["name"] == "SEV-1"  # phase 1's assessment is kept
    assert subprocess.run([IRKIT, "verify", str(run_dir)], capture_output=True).returncode == 0
    assert _kernel_dirs(proc.pid), "the killed run could not clean up after itself"
    again = subprocess.run([*argv[:4], "--phases", "3", *argv[4:]], cwd=workdir, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert not _kernel_dirs(proc.pid), "the next run removes what a killed run left"
    assert list(workdir.iterdir()) == [], "nothing is written to the working directory"
