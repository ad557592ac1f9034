"""Print the figures the issues budget, measured on this machine (nothing is asserted).

    .venv/bin/python bench/budgets.py          # or: make bench

- drill services up (budget 5 s), the whole `irkit drill lock-contention` (60 s) and whether
  any process or port is left afterwards (none);
- a full five-phase `irkit run` once services are up (20 s);
- each executed notebook (2 MB) and report.html (8 MB), at the test scale (2 h window) and for a
  24 h incident (downsampling keeps notebooks from growing with the incident's length);
- `irkit drill --all` over every built-in scenario (10 min), with its accuracy totals
  (`--all-only` measures just that, `--skip-all` everything else).
"""

from __future__ import annotations

import dataclasses
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from irkit import drill, runner
from irkit.lab.prometheus import ServiceHistory

MB = 1024 * 1024
IRKIT = str(Path(sys.executable).parent / "irkit")


def row(what: str, value: float, unit: str, budget: float) -> None:
    verdict = "ok" if value <= budget else "OVER BUDGET"
    print(f"{what:<48} {value:>9.2f} {unit:<3} budget {budget:>6g} {unit:<3} {verdict}", flush=True)


def sizes(run_dir: Path, label: str) -> None:
    for notebook in sorted(run_dir.glob("*.ipynb")):
        row(f"{label}: {notebook.name}", notebook.stat().st_size / MB, "MB", 2)
    row(f"{label}: report.html", (run_dir / "report.html").stat().st_size / MB, "MB", 8)


def run_in(scenario: drill.Scenario, outputs: Path, params: dict[str, str]) -> Path:
    with drill.DrillEnvironment(scenario) as env:
        row(f"drill services up ({scenario.name})", env.timings["services_up_seconds"], "s", 5)
        t0 = time.monotonic()
        result = runner.run("BENCH", config_path=str(env.config_path), outputs=outputs,
                            params={**scenario.parameters, **params})
        row(f"irkit run, five phases ({scenario.name})", time.monotonic() - t0, "s", 20)
        for phase in result.summary["phases"]:
            print(f"    phase {phase['phase']} {phase['name']:<26} {phase['duration_seconds']:>6.2f} s {phase['status']}")
    return result.run_dir


def whole_drill(outputs: Path) -> None:
    t0 = time.monotonic()
    done = subprocess.run([IRKIT, "drill", "lock-contention", "--check", "--outputs", str(outputs)],
                          capture_output=True, text=True, timeout=600)
    row("irkit drill lock-contention --check, end to end", time.monotonic() - t0, "s", 60)
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", done.stderr)]
    listening = []
    for port in set(ports):
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                listening.append(port)
    print(f"{'drill exit code / ports still listening after it':<48} {done.returncode} / {listening or 'none'}")


def every_scenario(outputs: Path) -> None:
    t0 = time.monotonic()
    done = subprocess.run([IRKIT, "drill", "--all", "--outputs", str(outputs)], capture_output=True, text=True,
                          timeout=3600)
    row(f"irkit drill --all ({len(drill.scenarios())} scenarios)", (time.monotonic() - t0) / 60, "min", 10)
    print(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:])


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="irkit-bench-") as tmp:
        outputs = Path(tmp)
        if "--skip-all" not in sys.argv:
            every_scenario(outputs / "all")
        if "--all-only" in sys.argv:
            return
        whole_drill(outputs / "drill")
        base = drill.load_scenario("lock-contention")
        sizes(run_in(base, outputs / "2h", {"window_minutes": "120"}), "2 h window")
        # The same incident with a day of history, looked at over 24 h: 5760 points per series.
        long = dataclasses.replace(base, traffic=tuple(
            ServiceHistory(h.service, (dataclasses.replace(h.segments[0], start=-24 * 3600.0), *h.segments[1:]),
                           h.noise) for h in base.traffic))
        sizes(run_in(long, outputs / "24h", {"window_minutes": "1440"}), "24 h window")


if __name__ == "__main__":
    main()
