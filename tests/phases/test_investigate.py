"""Phase 2's cells on plain data: folded logs, and "no finding" said in a sentence."""

from __future__ import annotations

import pandas as pd


def test_identical_logs_of_several_pods_are_shown_once_with_their_pods():
    from irkit.display.views import LogView
    from irkit.phases.investigate import fold_logs
    panic = "INFO starting\npanic: assignment to entry in nil map\n"
    frame = pd.DataFrame([
        {"pod": "api-1", "container": "api", "previous": True, "text": panic, "deployment": "api"},
        {"pod": "api-2", "container": "api", "previous": True, "text": panic, "deployment": "api"},
        {"pod": "api-3", "container": "api", "previous": True, "text": "OOM\n", "deployment": "api"},
    ])
    folded = fold_logs(frame)
    assert folded["pods"].tolist() == [["api-1", "api-2"], ["api-3"]]
    shown = LogView(folded, "previous logs")._repr_mimebundle_()
    assert shown["text/plain"].count("panic: assignment") == 1  # whole, once
    assert "2 pod(s) api-1, api-2" in shown["text/plain"]
    assert "<pre>INFO starting\npanic: assignment" in shown["text/html"]
    assert fold_logs(frame.iloc[:0]).empty



def test_no_finding_says_so_in_a_sentence(tmp_path):
    from irkit.config import Config
    from irkit.phases import investigate
    from irkit.phases.incident import Incident, Note
    shown = investigate.findings(Incident("INC-9", 2, tmp_path, Config()))
    assert isinstance(shown, Note) and shown.text.startswith("no finding")



def test_the_revised_severity_is_the_incidents_from_phase_2_on(tmp_path):
    """Phase 1 says SEV-3 by the error ratio; phase 2 finds the blockchain provider failing (SEV-2 by the playbook):
    the incident's severity, and what the summary says, is phase 2's from then on."""
    from datetime import UTC, datetime

    from irkit import evidence
    from irkit.config import Config
    from irkit.evidence import records as R
    from irkit.evidence.incident import incident_view
    from irkit.phases import investigate
    from irkit.phases.incident import Incident
    from irkit.rules.severity import Signals, classify
    run_dir = tmp_path / "INC-9" / "20261130T000000Z"
    first = Incident("INC-9", 1, run_dir, Config())
    evidence.write_json(run_dir / "run.json", {"incident": "INC-9", "run_id": run_dir.name})
    first.record(R.SEVERITY, classify(Signals(error_ratio=0.07), detected_at=datetime.now(UTC)).as_dict())
    first.record(R.REAL, True)
    first.finish()
    second = Incident("INC-9", 2, run_dir, Config())
    second.record(R.FINDINGS, [{"kind": "provider-failing", "subject": "wallet-api",
                                "detail": "6 log line(s) report the blockchain provider failing, e.g. eth_getBalance "
                                          "failed: 503"},
                               {"kind": "error-spike", "subject": "wallet-api", "detail": "7% fail"}])
    revised = investigate.severity(second)
    second.finish()
    assert revised.name == "SEV-2"
    assert revised.reasons[0] == "blockchain connectivity issues: provider-failing wallet-api"
    view = incident_view(run_dir, "INC-9")
    assert view.severity is not None and view.severity.value.name == "SEV-2" and view.severity.phase == 2
    assert view.assessed is not None and view.assessed.value.name == "SEV-3"


def test_a_service_with_less_history_than_the_window_still_has_a_traffic_baseline(tmp_path):
    """A service whose metrics began 40 minutes ago (new, or its exporter added late) in a two-hour window: its
    baseline is its own early traffic, so a surge on it is seen."""
    from irkit import config as irconfig
    from irkit.evidence import records as R
    from irkit.lab.prometheus import PrometheusLab, Segment, ServiceHistory
    from irkit.phases import investigate
    from irkit.phases.incident import Incident
    history = [ServiceHistory("new-api", (Segment(-2400, -600, 20, 0.0, 0.2), Segment(-600, 1, 70, 0.0, 0.2))),
               ServiceHistory("old-api", (Segment(-7200, 1, 30, 0.0, 0.2),))]
    with PrometheusLab(history, history_start=-7200, ahead=300) as lab:
        cfg = irconfig.load(env={}, prom_url=lab.url, prom_rate_window="1m")
        inc = Incident("INC-9", 2, tmp_path, cfg)
        investigate.traffic(inc, window_minutes=120)
        inc.close()
    rates = {r["service"]: r for r in inc.rows(R.REQUEST_RATE)}
    assert rates["new-api"]["rps_baseline"] is not None and abs(rates["new-api"]["rps_baseline"] - 20) < 3
    assert abs(rates["new-api"]["rps_now"] - 70) < 8
    assert abs(rates["old-api"]["rps_baseline"] - 30) < 3
