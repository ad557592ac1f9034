"""``irkit run``: execute the phase notebooks with papermill and keep the evidence.

Layout: ``outputs/<incident>/<UTC run timestamp>/NN-<phase>.ipynb`` beside
``phase-N.json`` (what each phase recorded), ``report.html``, ``postmortem.md``,
``summary.json`` and ``manifest.json``. A failing phase keeps its partial notebook
(papermill saves it), is recorded as failed, and the phases that do not depend on it
still run.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.manager import AsyncKernelManager
from traitlets import CaselessStrEnum

from irkit import evidence
from irkit.config import redact
from irkit.errors import ParameterError, RunError

__all__ = ["PHASES", "RunResult", "check_parameters", "declared_parameters", "parse_phases", "run"]

NOTEBOOK_DIR = Path(__file__).parent / "notebooks"
PHASES: dict[int, str] = {1: "01-detect-and-assess", 2: "02-investigate", 3: "03-mitigate",
                          4: "04-recover-and-validate", 5: "05-post-incident"}
# Phase 3 plans from phase 2's findings; the others stand on their own (5 uses whatever exists).
DEPENDS: dict[int, tuple[int, ...]] = {1: (), 2: (), 3: (2,), 4: (), 5: ()}
RESERVED = {"incident_id", "run_dir", "config_path"}
_SECRET = re.compile(r"pass(word|wd)?|token|secret|webhook|api_?key|credential|dsn", re.IGNORECASE)
_SECRET_ENV = {"password": "IRKIT_PG_PASSWORD", "dsn": "IRKIT_PG_DSN", "token": "IRKIT_PROM_TOKEN"}


class _IpcKernelManager(AsyncKernelManager):
    """Kernels talk over Unix sockets: nothing listens on TCP (it matters in a shared pod or Job)."""

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)


def parse_phases(text: str) -> list[int]:
    """``"1-5"``, ``"2"``, ``"1,3-4"`` into phase numbers."""
    phases: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            phases.update(range(int(lo), int(hi or lo) + 1))
    except ValueError as exc:
        raise ParameterError(f"--phases {text!r} is not like 1-5 or 1,3") from exc
    unknown = sorted(phases - set(PHASES))
    if unknown or not phases:
        raise ParameterError(f"--phases {text!r}: phases are 1 to 5")
    return sorted(phases)


def declared_parameters(phase: int) -> dict[str, dict[str, Any]]:
    return dict(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{PHASES[phase]}.ipynb")))


def _convert(name: str, raw: Any, type_name: str) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        if type_name == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
    except ValueError as exc:
        raise ParameterError(f"parameter {name}={raw!r} must be {type_name}") from exc
    return raw


def check_parameters(params: Mapping[str, Any], phases: list[int]) -> dict[int, dict[str, Any]]:
    """Each phase's parameters, checked against what its notebook declares, before anything runs."""
    declared = {phase: declared_parameters(phase) for phase in phases}
    valid = sorted({name for d in declared.values() for name in d} - RESERVED)
    for name, value in params.items():
        if _SECRET.search(name) or (isinstance(value, str) and redact(value) != value):
            key = next((k for k in _SECRET_ENV if k in name.lower()), "password")
            raise ParameterError(
                f"parameter {name!r} looks like a secret: papermill writes parameters into the executed notebook "
                f"in plain text. Set it in the environment instead (e.g. {_SECRET_ENV[key]}) or in a file named "
                "by pg_password_file / prom_token_file")
        if name in RESERVED:
            raise ParameterError(f"parameter {name!r} is set by irkit run itself; use --incident / --config")
        if name not in valid:
            raise ParameterError(f"unknown parameter {name!r}; the selected notebooks take: {', '.join(valid)}")
    return {phase: {name: _convert(name, params[name], _type_of(d[name])) for name in params if name in d}
            for phase, d in declared.items()}


def _type_of(declared: Mapping[str, Any]) -> str:
    """The parameter's type: papermill's annotation if any, else the type of its default literal."""
    if declared.get("inferred_type_name") not in (None, "None"):
        return str(declared["inferred_type_name"])
    try:
        return type(ast.literal_eval(declared.get("default") or "None")).__name__
    except (ValueError, SyntaxError):
        return "str"


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        return all(p["status"] == "ok" for p in self.summary["phases"])


def _error_text(exc: BaseException) -> str:
    name = getattr(exc, "ename", type(exc).__name__)
    value = getattr(exc, "evalue", str(exc))
    return f"{name}: {value}".strip()[:500]


def run(incident: str, phases: list[int] | None = None, *, config_path: str = "",
        params: Mapping[str, Any] | None = None, outputs: str | Path = "outputs",
        progress: Callable[[str], None] | None = None, cell_timeout: int = 300) -> RunResult:
    """Execute the phases into ``outputs/<incident>/<run id>/``; never raises for a failing phase.

    On Ctrl-C (or SIGTERM through the CLI) the running phase is marked interrupted, the
    rest skipped, the evidence collected so far written and sealed, then
    KeyboardInterrupt goes on up.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", incident):
        raise ParameterError(f"--incident {incident!r}: use letters, digits, '.', '_' or '-', like INC-123")
    phases = phases or list(PHASES)
    per_phase = check_parameters(params or {}, phases)
    if config_path and not Path(config_path).exists():
        raise ParameterError(f"--config {config_path}: no such file")
    say = progress or (lambda _: None)
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = (Path(outputs) / incident / run_id).resolve()
    if run_dir.exists():
        run_id += f"-{time.monotonic_ns() % 10000}"
        run_dir = run_dir.with_name(run_id)
    run_dir.mkdir(parents=True)
    status: dict[int, dict[str, Any]] = {}
    interrupted = False
    try:
        for phase in phases:
            status[phase] = _run_phase(phase, status, incident, run_dir, config_path, per_phase[phase],
                                       cell_timeout, say)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, wherever it lands: keep what was collected, then stop
        interrupted = True
    for phase in phases:
        if phase not in status:
            first = all(p in status for p in phases if p < phase)  # the phase that was running
            status[phase] = _record(phase, "interrupted" if first else "skipped",
                                    "interrupted (Ctrl-C or SIGTERM)" if first else "the run was interrupted")
            say(f"phase {phase} {PHASES[phase]}: {status[phase]['status']}")
    summary = _summary(incident, run_id, run_dir, started, [status[p] for p in phases])
    try:
        evidence.write_report(run_dir, summary, [run_dir / f"{PHASES[p]}.ipynb" for p in phases])
        summary["artifacts"] = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()) + [
            "summary.json", "manifest.json"]
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        evidence.write_manifest(run_dir)
    except OSError as exc:
        raise RunError(f"could not write the evidence in {run_dir}: {exc}") from exc
    say(f"evidence: {run_dir}")
    if interrupted:
        raise KeyboardInterrupt(f"interrupted; the evidence collected so far is in {run_dir}")
    return RunResult(run_dir, summary)


def _record(phase: int, status: str, error: str | None = None) -> dict[str, Any]:
    """One phase's line in summary.json."""
    name = PHASES[phase]
    return {"phase": phase, "name": name, "notebook": f"{name}.ipynb", "duration_seconds": 0.0,
            "status": status, "error": error}


def _run_phase(phase: int, status: Mapping[int, Mapping[str, Any]], incident: str, run_dir: Path,
               config_path: str, params: Mapping[str, Any], cell_timeout: int,
               say: Callable[[str], None]) -> dict[str, Any]:
    """Execute one phase notebook; a failure is recorded, never raised."""
    name = PHASES[phase]
    blocked = [d for d in DEPENDS[phase] if status.get(d, {}).get("status") not in (None, "ok")]
    if blocked:
        record = _record(phase, "skipped", f"depends on phase {blocked[0]}, which did not succeed")
        say(f"phase {phase} {name}: skipped ({record['error']})")
        return record
    record = _record(phase, "running")
    say(f"phase {phase} {name}: running")
    t0 = time.monotonic()
    try:
        papermill.execute_notebook(
            str(NOTEBOOK_DIR / f"{name}.ipynb"), str(run_dir / f"{name}.ipynb"),
            parameters={"incident_id": incident, "run_dir": str(run_dir), "config_path": config_path, **params},
            kernel_name="python3", progress_bar=False, cwd=str(Path.cwd()), execution_timeout=cell_timeout,
            log_output=False, kernel_manager_class=_IpcKernelManager,
        )
        record["status"] = "ok"
    except Exception as exc:  # papermill has saved the partial notebook; keep going
        record.update(status="failed", error=redact(_error_text(exc)))
    record["duration_seconds"] = round(time.monotonic() - t0, 2)
    say(f"phase {phase} {name}: {record['status']} ({record['duration_seconds']:.1f} s)"
        + (f": {record['error']}" if record["error"] else ""))
    return record


def _records(run_dir: Path, phase: int) -> dict[str, Any]:
    path = run_dir / f"phase-{phase}.json"
    return json.loads(path.read_text()).get("records", {}) if path.exists() else {}


def _summary(incident: str, run_id: str, run_dir: Path, started: datetime,
             phases: list[dict[str, Any]]) -> dict[str, Any]:
    p1, p2, p3, p4 = (_records(run_dir, n) for n in (1, 2, 3, 4))
    return {
        "incident": incident, "run_id": run_id, "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(), "phases": phases,
        "ok": all(p["status"] == "ok" for p in phases),
        "severity": p1.get("severity"), "real": p1.get("real"), "affected": p1.get("affected", []),
        "incident_start": p1.get("incident_start"),
        "findings": [{k: f[k] for k in ("kind", "subject", "detail")} for f in p2.get("findings", [])],
        "mitigations": p3.get("mitigations", []),
        "recovery": p4.get("verdict"),
    }
