"""Print the figures the issues budget, measured on this machine (nothing is asserted).

    .venv/bin/python bench/budgets.py          # or: make bench

- drill services up (budget 2 s), the whole `irkit drill lock-contention` (60 s) and whether
  any process or port is left afterwards (none);
- a full five-phase `irkit run` once services are up (20 s), and its ratio to the floor (1.0x): papermill running
  five one-cell notebooks, each in a fresh kernel importing pandas, plotly, the Kubernetes client and psycopg,
  measured in turn with the run, five pairs, each pair's ratio and the medians;
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


FLOOR_CODE = "import pandas, plotly.graph_objects, kubernetes.client, psycopg"


def floor_seconds(work: Path) -> float:
    """The floor of a five-phase run: papermill executing five one-cell notebooks one after another, each in a
    fresh kernel that imports what the phases import (pandas, plotly, the Kubernetes client, psycopg)."""
    import nbformat
    import papermill
    from nbformat.v4 import new_code_cell, new_notebook
    work.mkdir(parents=True, exist_ok=True)
    notebook = work / "floor.ipynb"
    nb = new_notebook(cells=[new_code_cell(FLOOR_CODE)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, notebook)
    t0 = time.monotonic()
    for phase in range(1, 6):
        papermill.execute_notebook(str(notebook), str(work / f"floor-{phase}.ipynb"), kernel_name="python3",
                                   progress_bar=False, log_output=False)
    return time.monotonic() - t0


def run_in(scenario: drill.Scenario, outputs: Path, params: dict[str, str], rounds: int = 1) -> Path:
    """A five-phase run against the scenario's drill, and (``rounds`` times, in turn with the run, at the same
    moment on the same machine) the floor: their ratio is the budget (1.0x: the run shares one kernel)."""
    with drill.DrillEnvironment(scenario) as env:
        row(f"drill services up ({scenario.name})", env.timings["services_up_seconds"], "s", 2)
        floors, runs = [], []
        for turn in range(rounds):
            floors.append(floor_seconds(outputs / f"floor-{turn}"))
            t0 = time.monotonic()
            result = runner.run("BENCH", config_path=str(env.config_path), outputs=outputs,
                                params={**scenario.parameters, **params})
            runs.append(time.monotonic() - t0)
        floor, run = sorted(floors)[len(floors) // 2], sorted(runs)[len(runs) // 2]
        row(f"floor: five kernels importing the libraries ({rounds}x, median)", floor, "s", float("inf"))
        row(f"irkit run, five phases ({scenario.name}, {rounds}x, median)", run, "s", 20)
        ratios = sorted(r / f for r, f in zip(runs, floors, strict=True))
        row("irkit run / floor (median of the pairs)", ratios[len(ratios) // 2], "x", 1.0)
        print("    pairs (run / floor): " + ", ".join(f"{r:.1f}/{f:.1f} s" for r, f in zip(runs, floors, strict=True)))
        for phase in (p.as_dict() for p in result.summary.phases):
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
        sizes(run_in(base, outputs / "2h", {"window_minutes": "120"}, rounds=5), "2 h window")
        # The same incident with a day of history, looked at over 24 h: 5760 points per series.
        long = dataclasses.replace(base, traffic=tuple(
            ServiceHistory(h.service, (dataclasses.replace(h.segments[0], start=-24 * 3600.0), *h.segments[1:]),
                           h.noise) for h in base.traffic))
        sizes(run_in(long, outputs / "24h", {"window_minutes": "1440"}), "24 h window")


if __name__ == "__main__":
    main()
