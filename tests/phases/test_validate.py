"""Phase 4's verdict: decided from the checks it recorded, unknown (never recovered) when nothing could be measured,
and a settle time beyond its bound refused before anything is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from irkit import config
from irkit.config import Config
from irkit.errors import ParameterError
from irkit.evidence import records as R
from irkit.phases import validate
from irkit.phases.incident import Incident
from tests.support.kube import kubeconfig_for


def test_the_verdict_is_decided_from_the_checks_this_phase_recorded(tmp_path: Path):
    inc = Incident("INC-1", 4, tmp_path, Config())
    inc.record(R.CHECKS, [{"check": "error ratio backend", "ok": True, "detail": "1.0% (threshold 5%)"},
                          {"check": "no lock waits", "ok": False, "detail": "1 waiting session(s)"}])
    verdict = validate.verdict(inc)
    assert verdict.recovered is False and verdict.failed == ("no lock waits: 1 waiting session(s)",)
    assert R.RunRecords(tmp_path).get(R.VERDICT) == verdict  # on disk, read back typed


def test_with_every_source_down_nothing_is_measured_and_the_verdict_is_unknown_not_recovered(closed_port: str,
                                                                                            tmp_path: Path):
    kubeconfig = kubeconfig_for(closed_port, tmp_path / "kubeconfig", "c")
    cfg = config.load(env={}, kubeconfig=str(kubeconfig), pg_dsn=f"postgresql://irkit@{closed_port}/shop",
                      prom_url=f"http://{closed_port}", health_endpoints=[], connect_timeout=1.0, request_timeout=1.0)
    inc = Incident("INC-1", 4, tmp_path / "run", cfg)
    frame = validate.checks(inc, settle_seconds=600)  # nothing failed: waiting would not bring a source back
    assert list(frame["check"]) == ["health endpoints", "error ratio", "p95 latency", "pods ready", "orders flowing",
                                    "no lock waits"]
    assert frame["ok"].isna().all()
    verdict = validate.verdict(inc)
    assert verdict.recovered is None and len(verdict.unmeasured) == 6
    assert {p["kind"] for p in inc.problems} == {"PostgresUnavailable", "PrometheusUnavailable",
                                                 "KubernetesUnavailable"}


def test_a_settle_time_beyond_its_bound_is_refused_before_anything_is_asked(tmp_path: Path):
    inc = Incident("INC-1", 4, tmp_path, Config())
    with pytest.raises(ParameterError, match="settle_seconds must be a number from 0 to 3600 seconds"):
        validate.checks(inc, settle_seconds=3601)
    assert not inc.has(R.CHECKS) and inc.problems == []
