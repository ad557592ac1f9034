"""``irkit run``: execute the phase notebooks with papermill and keep the evidence.

Layout: ``outputs/<incident>/<UTC run timestamp>/`` (:class:`~irkit.evidence.rundir.RunDir` names its files): the
executed notebooks beside ``phase-N.json`` (what each phase recorded), ``report.html``, ``postmortem.md``,
``summary.json`` and ``manifest.json``. A failing phase keeps its partial notebook (papermill saves it), is
recorded as failed, and the phases that do not depend on it still run. The kernels are
:mod:`irkit.runner.kernels`'s, what comes from outside is checked by :mod:`irkit.runner.inputs` first.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.manager import AsyncKernelManager

from irkit import config as irconfig
from irkit import evidence, playbook
from irkit.config import redact
from irkit.errors import ConfigError, ConfirmationError, ParameterError, RunError
from irkit.evidence.lockhistory import LockSampler
from irkit.evidence.remote import Remote, is_remote
from irkit.evidence.report import Section, new_nonce, render_section
from irkit.evidence.rundir import RunDir, harden, make_dir
from irkit.evidence.summary import PhaseStatus, Summary, summarize
from irkit.runner.inputs import check_incident, check_parameters, echo
from irkit.runner.kernels import STOP_REQUESTED, WarmKernel, kernel_dir

__all__ = ["STOP_REQUESTED", "RunResult", "run", "seal"]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    summary: Summary
    location: str = ""  # s3://... when the run was kept in object storage (run_dir is then the staging copy)

    @property
    def ok(self) -> bool:
        return self.summary.ok

    @property
    def in_flight(self) -> list[str]:
        """Steps that were being applied when the run stopped: each may or may not have changed its target."""
        return self.summary.in_flight

    @property
    def inconclusive(self) -> list[str]:
        """The verdicts this run could not support with data (exit code 3), each with why."""
        return list(self.summary.inconclusive)


def run(incident: str, phases: list[int] | None = None, *, config_path: str = "",
        params: Mapping[str, Any] | None = None, outputs: str | Path = "outputs",
        progress: Callable[[str], None] | None = None, cell_timeout: int = 300,
        context: Mapping[str, Any] | None = None, defaults: bool = False) -> RunResult:
    """Execute the phases into ``outputs/<incident>/<run id>/``; never raises for a failing phase.

    Everything that comes from outside (the incident id, the phases, the parameters, the
    configuration, the outputs directory) is checked before the first phase starts: bad
    input raises a ConfigError naming the fix and leaves nothing behind.

    On Ctrl-C (or SIGTERM through the CLI) the running phase is marked interrupted, the
    phases that never started skipped, the evidence collected so far written and sealed,
    then KeyboardInterrupt goes on up.

    irkit never runs on silent defaults: with no ``config_path``, no ``IRKIT_CONFIG``, no ``./irkit.toml`` and no
    ``IRKIT_<KEY>`` variable it refuses, unless ``defaults`` says the playbook's built-in names are meant.

    ``context`` goes into ``run.json`` as is: ``drill`` (the drill session the run belongs to: runs of an
    earlier drill of the same scenario are another incident), ``alert`` (``{name, startsAt}``, the alert
    that started it).
    """
    check_incident(incident)
    phases = phases or list(playbook.NUMBERS)
    STOP_REQUESTED.clear()  # a Ctrl-C of an earlier run in this process is not this run's
    per_phase = check_parameters(params or {}, phases)
    confirm = str((params or {}).get("confirm") or "").strip()
    if confirm:  # checked before anything runs: a confirmation of another incident is refused outright
        from irkit.actions.model import Confirmation
        try:
            given = Confirmation.parse(confirm, by="")
        except ConfirmationError as exc:
            raise ParameterError(f"parameter confirm: {exc}") from exc
        if given.incident != incident:
            raise ParameterError(f"parameter confirm is for incident {given.incident}, this run is {incident}: "
                                 "confirm the steps of this incident's plan")
    if config_path and not Path(config_path).is_file():
        raise ParameterError(f"--config {echo(config_path)}: no such file")
    source = irconfig.locate(config_path or None)
    if source is None and not defaults and not irconfig.env_targets():
        raise ParameterError("no configuration: without --config, IRKIT_CONFIG, ./irkit.toml or an IRKIT_<KEY> "
                             "variable irkit would ask the playbook's built-in names (prometheus-service:9090, "
                             "localhost:5432); write one with irkit init, or pass --defaults to mean them")
    cfg = irconfig.load(config_path or None)  # a bad key stops the run here, once, not in every phase
    say = progress or (lambda _: None)
    remote = None
    if is_remote(outputs):  # written locally as always, each finished file copied to the bucket
        remote = Remote(str(outputs), timeout=cfg.request_timeout)
        staging = Path(tempfile.mkdtemp(prefix="irkit-outputs-"))
        remote.pull(incident, staging)  # the incident's earlier runs: the timeline and histories read them
        outputs = staging
    started = datetime.now(UTC)
    run_dir = _new_run_dir(Path(outputs), incident, started)
    files = RunDir(run_dir)
    begun: list[int] = []
    meta = {"schema_version": evidence.SCHEMA_VERSION, "incident": incident, "run_id": run_dir.name,
            "phases": phases, "started_at": started.isoformat(), "config_path": str(source or ""), "started": begun,
            **(context or {})}
    evidence.write_json(files.run_json, meta)
    status: dict[int, PhaseStatus] = {}
    interrupted = False
    # While the phases run, the lock graph is sampled in the background (lock-history.json): phases 2 and 4
    # see moments, the sampler the film between them. Phase 5 alone reads history; it samples nothing.
    sampler = LockSampler(cfg, run_dir, cfg.lock_sample_seconds if set(phases) - {5} else 0)
    nonce = new_nonce()  # the report's scripts carry it; made before this run reads any data
    rendering = _Renderer(nonce)  # each finished phase rendered for the report while the next one runs
    with kernel_dir() as kernel_manager, sampler:
        # One kernel for the run: started now, readied for each phase while the run writes its records, and
        # started afresh only after a phase that did not succeed (its kernel may be busy, dead or half-way).
        ready: WarmKernel | None = WarmKernel(kernel_manager, phases[0])
        warm: WarmKernel | None = None
        try:
            for phase in phases:
                if STOP_REQUESTED.is_set():  # a Ctrl-C whose KeyboardInterrupt Python lost
                    raise KeyboardInterrupt
                begun.append(phase)  # a run killed now still shows this phase was under way
                evidence.write_json(files.run_json, meta)
                warm, ready = ready or WarmKernel(kernel_manager, phase), None
                status[phase], reusable = _run_phase(phase, status, incident, run_dir, str(source or ""),
                                                     per_phase[phase], cell_timeout, say, kernel_manager, warm)
                stopping = status[phase].status == "interrupted" or STOP_REQUESTED.is_set()
                following = [] if stopping else phases[phases.index(phase) + 1:]
                if following and status[phase].status == "skipped":  # its kernel was never used: pass it on
                    ready, warm = warm, None
                    continue
                if following:  # the next phase's kernel is readied while this one's evidence is rendered
                    ready = WarmKernel(kernel_manager, following[0], reuse=reusable)
                if reusable is None or not following:
                    warm.discard()
                else:
                    warm.hand_over()  # the next phase's WarmKernel stops it now
                rendering.submit(files.notebook(phase))
                if remote is not None:
                    _push(remote, run_dir, say, final=False)
                if status[phase].status == "interrupted":
                    raise KeyboardInterrupt
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM, wherever it lands: keep what was collected, then stop
            interrupted = True
        finally:
            for unused in (ready, warm):
                if unused is not None:
                    unused.discard()
    running = next((p for p in phases if p not in status), None) if interrupted else None
    for phase in phases:
        if phase not in status:
            # Only the phase that was running when the signal came is interrupted; the rest never started.
            status[phase] = (_record(phase, "interrupted", "interrupted (Ctrl-C or SIGTERM)") if phase == running
                             else _record(phase, "skipped", "the run was interrupted before this phase"))
            say(f"phase {phase} {playbook.phase(phase).notebook}: {status[phase].status}")
    summary = _seal(run_dir, incident, started, [status[p] for p in phases],
                    rendering.finished(wait=5 if interrupted else 60), cfg.evidence_group, nonce)
    location = str(run_dir)
    if remote is not None:
        location = remote.location(run_dir)
        if not _push(remote, run_dir, say, final=not interrupted):
            location = str(run_dir)  # interrupted and the upload failed: what there is stays here
    say(f"evidence: {location}")
    if interrupted:
        flying = RunResult(run_dir, summary).in_flight
        raise KeyboardInterrupt(f"interrupted; the evidence collected so far is in {location}" + (
            f"; applied or in flight when it stopped (check each target): {', '.join(flying)}" if flying else ""))
    return RunResult(run_dir, summary, "" if remote is None else location)


class _Renderer:
    """Each finished phase's notebook rendered for the report in a daemon thread while the next phase runs, so
    sealing only assembles the page. A render not finished when the run seals is done again by the sealing
    thread: a render thread left waiting (on an import lock a Ctrl-C broke in the main thread, as seen) holds up
    neither the run nor the process's exit."""

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce
        self._threads: list[threading.Thread] = []
        self._done: dict[Path, Section | None] = {}

    def submit(self, notebook: Path) -> None:
        def render() -> None:
            try:
                self._done[notebook] = render_section(notebook, self.nonce)
            except Exception:  # the sealing thread renders it again, and says what failed
                pass
        thread = threading.Thread(target=render, name=f"irkit-report-{notebook.stem}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def finished(self, wait: float) -> dict[Path, Section | None]:
        """The sections rendered so far, after waiting up to ``wait`` seconds for the rest."""
        deadline = time.monotonic() + wait
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return dict(self._done)


def _push(remote: Remote, run_dir: Path, say: Callable[[str], None], *, final: bool) -> bool:
    """Copy the run's finished files to the bucket. During the run a failure is said and the run goes on (the
    next push sends everything not sent); at the end it is a RunError naming the staging directory."""
    try:
        remote.push(run_dir)
        return True
    except RunError as exc:
        if final:
            raise
        say(f"upload: {exc}")
        return False


def _new_run_dir(outputs: Path, incident: str, started: datetime) -> Path:
    """``outputs/<incident>/<UTC timestamp>``, created private (0700); an unusable ``--outputs`` is a
    ParameterError, and so is an ``outputs/<incident>`` that is a symlink (evidence is never written through one)."""
    if outputs.exists() and not outputs.is_dir():
        raise ParameterError(f"--outputs {echo(str(outputs))} is a file; name a directory (default outputs/)")
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = outputs.resolve() / incident / run_id  # the incident's directory is not resolved: a link is refused
    if run_dir.exists() or run_dir.is_symlink():
        run_id += f"-{time.monotonic_ns() % 10000}"
        run_dir = run_dir.with_name(run_id)
    try:
        make_dir(run_dir.parent)
        run_dir.mkdir(mode=0o700)
    except ConfigError as exc:
        raise ParameterError(str(exc)) from exc
    except OSError as exc:
        raise ParameterError(f"--outputs {echo(str(outputs))}: cannot create {run_dir.name} there "
                             f"({exc.strerror}); name a writable directory") from exc
    return run_dir


def _seal(run_dir: Path, incident: str, started: datetime, phases: list[PhaseStatus],
          rendered: Mapping[Path, Section | None] | None = None, group: str = "", nonce: str = "") -> Summary:
    """Write the summary, the report and the manifest of a run: the last step of every run, also an
    interrupted one, and of ``irkit seal`` on a run whose process died. The files are made private (0600 in
    0700 directories, or readable by ``evidence_group``)."""
    summary = summarize(run_dir, incident, started, phases)
    files = RunDir(run_dir)
    try:
        evidence.write_report(run_dir, summary, [files.notebook(p.phase) for p in phases], rendered, nonce)
        summary = summary.with_artifacts(sorted(str(p.relative_to(run_dir)) for p in files.files()) + [
            files.summary.name, files.manifest.name])
        evidence.write_json(files.summary, summary.as_dict())
        evidence.write_manifest(run_dir)
        harden(run_dir, group)
    except OSError as exc:
        raise RunError(f"could not write the evidence in {run_dir}: {exc}") from exc
    return summary


def seal(run_dir: str | Path, group: str = "") -> RunResult:
    """Seal a run whose process died (``kill -9``, a lost node): summary, report and manifest of what is
    there, each phase marked as it was found (``ok``, ``partial`` or ``skipped``). A step that was being applied
    when the process died is in the summary as ``applying`` (:attr:`RunResult.in_flight`)."""
    run_dir = Path(run_dir)
    state = evidence.run_state(run_dir)
    if state.sealed:
        raise ParameterError(f"{run_dir} is sealed already (it has {RunDir(run_dir).manifest.name}); check it with irkit verify")
    notes = {"partial": "the run stopped during this phase (its process died); sealed afterwards by irkit seal",
             "skipped": "the run stopped before this phase; sealed afterwards by irkit seal"}
    phases = [_record(phase, "ok" if state.found[phase] == "complete" else state.found[phase],
                      notes.get(state.found[phase])) for phase in state.phases]
    return RunResult(run_dir, _seal(run_dir, state.incident, state.started_at, phases, group=group))


def _record(phase: int, status: str, error: str | None = None, seconds: float = 0.0) -> PhaseStatus:
    """One phase's line in summary.json."""
    name = playbook.phase(phase).notebook
    return PhaseStatus(phase, name, f"{name}.ipynb", status, seconds, error)


def _error_text(exc: BaseException) -> str:
    name = getattr(exc, "ename", type(exc).__name__)
    value = getattr(exc, "evalue", str(exc))
    return f"{name}: {value}".strip()[:500]


def _run_phase(phase: int, status: Mapping[int, PhaseStatus], incident: str, run_dir: Path,
               config_path: str, params: Mapping[str, Any], cell_timeout: int,
               say: Callable[[str], None], kernel_manager: type[AsyncKernelManager],
               warm: WarmKernel) -> tuple[PhaseStatus, AsyncKernelManager | None]:
    """Execute one phase notebook; a failure is recorded, never raised. Also the kernel it ran in when the next
    phase may reuse it (the phase succeeded in the kernel readied for it), else None."""
    name = playbook.phase(phase).notebook
    blocked = [d for d in playbook.phase(phase).requires if d in status and status[d].status != "ok"]
    if blocked:
        record = _record(phase, "skipped", f"depends on phase {blocked[0]}, which did not succeed")
        say(f"phase {phase} {name}: skipped ({record.error})")
        return record, None
    say(f"phase {phase} {name}: running")
    t0 = time.monotonic()
    outcome, error, km = "ok", None, None
    try:
        km = warm.take()  # inside the try: Ctrl-C while waiting still stops it
        if STOP_REQUESTED.is_set():
            raise KeyboardInterrupt
        papermill.execute_notebook(
            str(playbook.phase(phase).path), str(RunDir(run_dir).notebook(phase)),
            parameters={"incident_id": incident, "run_dir": str(run_dir), "config_path": config_path, **params},
            kernel_name="python3", engine_name="irkit", progress_bar=False, cwd=str(Path.cwd()),
            execution_timeout=cell_timeout, log_output=False, kernel_manager_class=kernel_manager,
            **({"km": km} if km is not None else {}),
        )
    except Exception as exc:  # papermill has saved the partial notebook; keep going
        # Ctrl-C reaches the kernel too (the whole process group): its cell dies of KeyboardInterrupt.
        interrupted = getattr(exc, "ename", "") == "KeyboardInterrupt"
        outcome, error = ("interrupted" if interrupted else "failed"), redact(_error_text(exc))
    record = _record(phase, outcome, error, round(time.monotonic() - t0, 2))
    say(f"phase {phase} {name}: {record.status} ({record.duration_seconds:.1f} s)"
        + (f": {record.error}" if record.error else ""))
    return record, (km if outcome == "ok" and km is not None and km.has_kernel else None)
