"""`irkit serve` end to end: a real Prometheus rule fires, a real Alertmanager posts its webhook, the run starts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import psycopg
import pytest

from irkit import drill, serve
from irkit.evidence import records as R
from irkit.evidence.timeline import incident_events
from irkit.sources import prom
from tests.serve.conftest import TOKEN, _wait
from tests.support.alertmanager import AlertmanagerLab


@pytest.mark.timeout(480)
def test_a_prometheus_rule_fires_alertmanager_starts_the_run_and_its_resolution_validates_recovery(tmp_path: Path):
    """End to end with real parts: the lock-contention drill, a Prometheus alerting rule on the error ratio, a real
    Alertmanager posting its webhook to irkit serve, which runs phases 1-2; the cause removed, the alert resolves and
    phases 4-5 run: recovered, and the resolution written. irkit serve says each step in one JSON line."""
    said = io.StringIO()
    serve.configure_logging("json", said)
    with drill.DrillEnvironment(drill.load_scenario("lock-contention")) as env:
        # Rates over 20 s instead of the drill's minute (the rule and the runs alike): the alert resolves within
        # seconds of the fix, as it would within minutes over a team's 5m window.
        config_path = tmp_path / "irkit.toml"
        config_path.write_text(env.config_path.read_text().replace('prom_rate_window = "1m"',
                                                                   'prom_rate_window = "20s"'))
        server = serve.Serve(token=TOKEN, config_path=str(config_path), outputs=tmp_path / "outputs",
                             state_dir=tmp_path / "state", listen=("127.0.0.1", 0), max_runs=1).start()
        try:
            with AlertmanagerLab(f"{server.url}/alerts", TOKEN) as alertmanager:
                from irkit import config as irconfig
                cfg = irconfig.load(config_path)
                assert cfg.prom_rate_window == "20s"
                env.prometheus.route_alerts(
                    "groups:\n- name: irkit\n  rules:\n  - alert: HighErrorRatio\n"
                    f"    expr: '{prom.error_ratio_query(cfg, by_service=True)} > {cfg.error_ratio_moderate}'\n"
                    "    annotations:\n      irkit_phases: '1-2'\n      irkit_parameters: 'window_minutes=60'\n",
                    alertmanager.address)
                fired = _wait(lambda: [j for j in server.queue.jobs if j.status == "firing" and j.state == "done"],
                              120, "the firing alert did not become a finished run")
                run_dir = Path(fired[0].run_dir)
                meta = json.loads((run_dir / "run.json").read_text())
                assert meta["phases"] == [1, 2] and meta["alert"]["name"] == "HighErrorRatio"
                assert meta["incident"] == serve.incident_id(fired[0].group_key)
                findings = R.RunRecords(run_dir).get(R.FINDINGS)
                assert findings[0].kind.value == "lock-root"
                assert len([j for j in server.queue.jobs if j.status == "firing"]) == 1  # one run per firing group
                with psycopg.connect(env.postgres.dsn, autocommit=True) as admin:  # the responder's fix, in psql
                    admin.execute("SELECT pg_terminate_backend(%s)", (env.pids["holder"],))
                resolved = _wait(lambda: [j for j in server.queue.jobs if j.status == "resolved"
                                          and j.state == "done"], 240, "the resolution did not run phase 4")
                second = Path(resolved[0].run_dir)
                assert second.parent == run_dir.parent  # the same incident
                verdict = R.RunRecords(second).get(R.VERDICT)
                assert verdict is not None and verdict.recovered is True, verdict
                timeline = [e.text for e in incident_events(second)]
                assert any("alert HighErrorRatio fired" in t for t in timeline)
                # The resolved alert's run writes the resolution (validated: not a draft) and the post-mortem, and
                # both tell the incident its firing run found.
                [resolution] = [m for m in (second / "outbox").glob("*-resolution-email.json")]
                message = json.loads(resolution.read_text())
                assert message["subject"].startswith("[RESOLVED]") and message["status"] == "outbox"
                assert "lock-root" in message["body"]  # the cause, from the firing run
                assert "Severity**: SEV-" in (second / "postmortem.md").read_text()
                lines = [json.loads(line) for line in said.getvalue().splitlines()]
                events = [(x["event"], x.get("status")) for x in lines if x["event"].startswith("alert received")]
                assert ("alert received", "firing") in events and ("alert received", "resolved") in events
                done = [x for x in lines if x["event"] == "run done"]
                assert [x["recovered"] for x in done] == [None, True]  # the firing run asked no verdict
                assert done[-1]["evidence"] == str(second) and done[-1]["incident"] == fired[0].incident
        finally:
            server.stop()

