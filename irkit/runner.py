"""``irkit run``: execute the phase notebooks with papermill and keep the evidence.

Layout: ``outputs/<incident>/<UTC run timestamp>/NN-<phase>.ipynb`` beside
``phase-N.json`` (what each phase recorded), ``report.html``, ``postmortem.md``,
``summary.json`` and ``manifest.json``. A failing phase keeps its partial notebook
(papermill saves it), is recorded as failed, and the phases that do not depend on it
still run.
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import papermill
from jupyter_client.manager import AsyncKernelManager
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from traitlets import CaselessStrEnum, default

from irkit import config as irconfig
from irkit import evidence, limits
from irkit import phases as phases_table
from irkit.config import redact
from irkit.errors import STOP_REQUESTED, ConfigError, ConfirmationError, ParameterError, RunError
from irkit.evidence.lockhistory import LockSampler
from irkit.evidence.remote import Remote, is_remote
from irkit.evidence.report import Section, new_nonce, render_section
from irkit.evidence.rundir import harden, make_dir, regular

__all__ = ["PHASES", "RunResult", "check_parameters", "declared_parameters", "parse_context", "parse_phases", "run",
           "seal"]

# Phase number -> notebook name, from the one phase table.
PHASES: dict[int, str] = {p.number: p.notebook for p in phases_table.PHASES}
RESERVED = {"incident_id", "run_dir", "config_path"}
_SECRET = re.compile(r"pass(word|wd)?|token|secret|webhook|api_?key|credential|dsn", re.IGNORECASE)
_SECRET_ENV = {"password": "IRKIT_PG_PASSWORD", "dsn": "IRKIT_PG_DSN", "token": "IRKIT_PROM_TOKEN"}


class _IpcKernelManager(AsyncKernelManager):
    """Kernels talk over Unix sockets: nothing listens on TCP (it matters in a shared pod or Job).

    The connection file (it holds the kernel's signing key) and the sockets go into ``kernel_dir``,
    never the working directory, which may be unwritable or shared.
    """

    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
    kernel_dir: ClassVar[str] = ""

    @default("connection_file")
    def _private_connection_file(self) -> str:
        return os.path.join(self.kernel_dir or tempfile.gettempdir(), f"kernel-{uuid.uuid4()}.json")


_STARTED: set[_WarmKernel] = set()  # kernels started ahead and not yet stopped, for the exit handler


def _kill(warm: _WarmKernel) -> None:
    """SIGKILL a kernel started ahead, with its process group (its own session, never irkit's)."""
    process = getattr(getattr(warm.km, "provisioner", None), "process", None)
    with contextlib.suppress(Exception):
        if process is not None and process.poll() is None and os.getpgid(process.pid) != os.getpgrp():
            os.killpg(os.getpgid(process.pid), signal.SIGKILL)


@atexit.register
def _kill_leftovers() -> None:
    """At exit, no kernel started ahead outlives the run (it would hold the caller's pipes open)."""
    for warm in list(_STARTED):
        _kill(warm)


class _WarmKernel:
    """The next phase's kernel, started and its libraries imported while the current phase runs.

    Starting a kernel and importing pandas, plotly, the Kubernetes client and psycopg costs a second or
    two per phase; done one phase ahead on the other core it costs the run nothing. The notebook still
    imports them itself (they are already loaded), so the executed notebook is the same as without it. If
    anything goes wrong here the phase starts its own kernel, as papermill does by default.
    """

    def __init__(self, manager: type[AsyncKernelManager], phase: int) -> None:
        self.km = manager(kernel_name="python3")
        self.error: BaseException | None = None
        module = f"irkit.phases.{phases_table.phase(phase).module}"
        # Imported without binding a name (the notebook's namespace stays as papermill would leave it), then the
        # phase's own preparation if it has one (phase 5 starts the browser that draws its images).
        self._code = (f"[__import__(m) for m in ({module!r}, 'irkit.phases.incident', 'irkit.phases.history', "
                      "'pandas', 'plotly.graph_objects', 'kubernetes.client', 'psycopg')]\n"
                      f"getattr(__import__({module!r}, fromlist=['prepare']), 'prepare', lambda: None)()")
        self._thread = threading.Thread(target=self._start, name=f"irkit-kernel-phase-{phase}", daemon=True)
        self._abort = threading.Event()
        _STARTED.add(self)
        self._thread.start()

    def _start(self) -> None:
        try:
            asyncio.run(self._warm())
        except BaseException as exc:  # any failure: the phase starts its own kernel
            self.error = exc

    async def _warm(self) -> None:
        if self._abort.is_set():
            return
        await self.km.start_kernel(cwd=str(Path.cwd()), extra_arguments=["--HistoryManager.hist_file=:memory:"])
        if self._abort.is_set():
            _kill(self)
            return
        client = self.km.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            wanted = client.execute(self._code, silent=True, store_history=False)
            while True:  # the reply to that execution; anything else on the shell channel is not ours
                reply = await client.get_shell_msg(timeout=60)
                if reply["parent_header"].get("msg_id") == wanted:
                    break
        finally:
            client.stop_channels()

    def take(self) -> AsyncKernelManager | None:
        """The started kernel's manager, or None (then papermill starts one): waits for the start to finish."""
        self._thread.join(90)
        if self._thread.is_alive() or self.error is not None or not self.km.has_kernel:
            self.discard()
            return None
        return self.km

    def discard(self) -> None:
        """Stop the kernel (a phase skipped, the run interrupted, or its phase done with it). A start still under
        way gets two seconds, then its kernel is killed: Ctrl-C must not wait for imports on a loaded machine."""
        self._abort.set()
        self._thread.join(2)
        with contextlib.suppress(Exception):
            if self._thread.is_alive():
                _kill(self)
            elif self.km.has_kernel:
                asyncio.run(self._shutdown())
        if not self._thread.is_alive():
            _STARTED.discard(self)

    async def _shutdown(self) -> None:
        await self.km.shutdown_kernel(now=True)


class _Saving(NotebookExecutionManager):
    """papermill's bookkeeping, writing the executed notebook at most once a second instead of twice per cell.

    papermill rewrites the whole notebook when each cell starts and when it ends: fifty writes of a
    notebook of a few hundred KB for phase 2, seconds of a run. Once a second still shows a person
    watching the file what runs now; papermill writes the complete notebook when the phase ends, failed
    or not, and the phase's records are on disk as each step finishes whatever happens to the notebook.
    """

    def save(self, **kwargs: Any) -> None:
        if (self.now() - self.last_save_time).total_seconds() >= 1.0:
            super().save(**kwargs)


class _Engine(NBClientEngine):
    """papermill's nbclient engine with :class:`_Saving` (registered as ``irkit``)."""

    @classmethod
    def execute_notebook(cls, nb: Any, kernel_name: str, output_path: str | None = None, progress_bar: bool = True,
                         log_output: bool = False, autosave_cell_every: int = 30, **kwargs: Any) -> Any:
        manager = _Saving(nb, output_path=output_path, progress_bar=progress_bar, log_output=log_output,
                          autosave_cell_every=autosave_cell_every)
        manager.notebook_start()
        try:
            cls.execute_managed_notebook(manager, kernel_name, log_output=log_output, **kwargs)
        finally:
            manager.cleanup_pbar()
            manager.notebook_complete()
        return manager.nb


papermill_engines.register("irkit", _Engine)

_PHASE_PART = re.compile(r"\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?")


def parse_phases(text: str) -> list[int]:
    """``"1-5"``, ``"2"``, ``"1,3-4"`` into phase numbers; anything else is refused before a range is built."""
    phases: set[int] = set()
    parts = text.split(",") if len(text) <= 64 else []
    for part in parts:
        match = _PHASE_PART.fullmatch(part)
        if match is None:
            parts = []
            break
        lo, hi = int(match.group(1)), int(match.group(2) or match.group(1))
        if not (lo in PHASES and hi in PHASES and lo <= hi):
            raise ParameterError(f"--phases {_echo(text)}: phases are 1 to 5, like 1-5 or 2,4")
        phases.update(range(lo, hi + 1))
    if not parts or not phases:
        raise ParameterError(f"--phases {_echo(text)} is not like 1-5 or 1,3; phases are 1 to 5")
    return sorted(phases)


CONTEXT_KEYS = ("alert", "alert_group", "serve_job")  # what irkit serve passes a run it starts as a Job


def parse_context(text: str) -> dict[str, Any]:
    """``--context``: a JSON object of :data:`CONTEXT_KEYS` (the alert that started the run), at most 8 KiB."""
    try:
        value = json.loads(text) if len(text) <= 8192 else None
    except ValueError:
        value = None
    if not isinstance(value, dict) or set(value) - set(CONTEXT_KEYS) or not all(
            isinstance(v, (str, dict)) for v in value.values()):
        raise ParameterError(f"--context {_echo(text)} is not a JSON object of {', '.join(CONTEXT_KEYS)} (at most "
                             "8 KiB); irkit serve writes it: leave it out when running by hand")
    return value


def _echo(text: str) -> str:
    """An input as it goes into a one-line error: its repr, cut short."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


@functools.lru_cache(maxsize=8)
def declared_parameters(phase: int) -> dict[str, dict[str, Any]]:
    return dict(papermill.inspect_notebook(str(phases_table.phase(phase).path)))


def _convert(name: str, raw: Any, type_name: str) -> Any:
    """A -p value (text) as the type the notebook declares. The value is never echoed: it may be a
    secret typed into the wrong parameter."""
    value = raw
    if isinstance(raw, str):
        try:
            if type_name == "int":
                value = int(raw)
            elif type_name == "float":
                value = float(raw)
            elif type_name == "bool":
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(name)
                value = raw.lower() in ("true", "1", "yes")
        except ValueError as exc:
            raise ParameterError(f"parameter {name} must be {type_name} (a {len(raw)}-character value was "
                                 "given); fix the -p value") from exc
    if name in limits.PARAMETERS:
        limits.bounded(name, value)
    return value


def check_parameters(params: Mapping[str, Any], phases: list[int]) -> dict[int, dict[str, Any]]:
    """Each phase's parameters, checked against what its notebook declares, before anything runs.

    Errors name the parameter and never its value (see :func:`_convert`).
    """
    if len(params) > limits.MAX_PARAMETERS:
        raise ParameterError(f"{len(params)} parameters given; at most {limits.MAX_PARAMETERS}")
    declared = {phase: declared_parameters(phase) for phase in phases}
    valid = sorted({name for d in declared.values() for name in d} - RESERVED)
    for name, value in params.items():
        text = value if isinstance(value, str) else ""
        if len(name) > limits.MAX_PARAMETER_TEXT or len(text) > limits.MAX_PARAMETER_TEXT:
            raise ParameterError(f"a parameter name or value is longer than {limits.MAX_PARAMETER_TEXT} "
                                 "characters; notebook parameters are short settings")
        if redact(name) != name or (text and redact(text) != text) or _SECRET.search(name):
            shown = "a parameter" if redact(name) != name else f"parameter {name!r}"
            key = next((k for k in _SECRET_ENV if k in name.lower()), "password")
            raise ParameterError(
                f"{shown} looks like a secret: papermill writes parameters into the executed notebook "
                f"in plain text. Set it in the environment instead (e.g. {_SECRET_ENV[key]}) or in a file named "
                "by pg_password_file / prom_token_file")
        if name in RESERVED:
            raise ParameterError(f"parameter {name!r} is set by irkit run itself; use --incident / --config")
        if name not in valid:
            raise ParameterError(f"unknown parameter {_echo(name)}; the selected notebooks take: {', '.join(valid)}")
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
    location: str = ""  # s3://... when the run was kept in object storage (run_dir is then the staging copy)

    @property
    def ok(self) -> bool:
        return all(p["status"] == "ok" for p in self.summary["phases"])

    @property
    def in_flight(self) -> list[str]:
        """Steps that were being applied when the run stopped: each may or may not have changed its target."""
        return [f"{a['id']} ({a['action']})" for a in self.summary.get("actions") or [] if a.get("status") == "applying"]

    @property
    def inconclusive(self) -> list[str]:
        """The verdicts this run could not support with data (exit code 3), each with why."""
        return list(self.summary.get("inconclusive") or [])


def _error_text(exc: BaseException) -> str:
    name = getattr(exc, "ename", type(exc).__name__)
    value = getattr(exc, "evalue", str(exc))
    return f"{name}: {value}".strip()[:500]


def run(incident: str, phases: list[int] | None = None, *, config_path: str = "",
        params: Mapping[str, Any] | None = None, outputs: str | Path = "outputs",
        progress: Callable[[str], None] | None = None, cell_timeout: int = 300,
        context: Mapping[str, Any] | None = None) -> RunResult:
    """Execute the phases into ``outputs/<incident>/<run id>/``; never raises for a failing phase.

    Everything that comes from outside (the incident id, the phases, the parameters, the
    configuration, the outputs directory) is checked before the first phase starts: bad
    input raises a ConfigError naming the fix and leaves nothing behind.

    On Ctrl-C (or SIGTERM through the CLI) the running phase is marked interrupted, the
    phases that never started skipped, the evidence collected so far written and sealed,
    then KeyboardInterrupt goes on up.

    ``context`` goes into ``run.json`` as is: ``drill`` (the drill session the run belongs to: runs of an
    earlier drill of the same scenario are another incident), ``alert`` (``{name, startsAt}``, the alert
    that started it).
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", incident):
        raise ParameterError(f"--incident {_echo(incident)}: use letters, digits, '.', '_' or '-', like INC-123")
    phases = phases or list(PHASES)
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
        raise ParameterError(f"--config {_echo(config_path)}: no such file")
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
    begun: list[int] = []
    meta = {"schema_version": evidence.SCHEMA_VERSION, "incident": incident, "run_id": run_dir.name,
            "phases": phases, "started_at": started.isoformat(), "config_path": config_path, "started": begun, **(context or {})}
    evidence.write_json(run_dir / evidence.RUN, meta)
    status: dict[int, dict[str, Any]] = {}
    interrupted = False
    # While the phases run, the lock graph is sampled in the background (lock-history.json): phases 2 and 4
    # see moments, the sampler the film between them. Phase 5 alone reads history; it samples nothing.
    sampler = LockSampler(cfg, run_dir, cfg.lock_sample_seconds if set(phases) - {5} else 0)
    # Each finished phase is rendered for the report while the next one runs: sealing only assembles the page.
    rendering = ThreadPoolExecutor(max_workers=1, thread_name_prefix="irkit-report")
    nonce = new_nonce()  # the report's scripts carry it; made before this run reads any data
    rendered: dict[Path, Future[Section | None]] = {}
    with _kernel_dir() as kernel_manager, sampler, rendering:
        warm: dict[int, _WarmKernel] = {phases[0]: _WarmKernel(kernel_manager, phases[0])}
        try:
            for index, phase in enumerate(phases):
                if STOP_REQUESTED.is_set():  # a Ctrl-C whose KeyboardInterrupt Python lost
                    raise KeyboardInterrupt
                if index + 1 < len(phases):  # the next phase's kernel starts while this one runs
                    warm[phases[index + 1]] = _WarmKernel(kernel_manager, phases[index + 1])
                begun.append(phase)  # a run killed now still shows this phase was under way
                evidence.write_json(run_dir / evidence.RUN, meta)
                status[phase] = _run_phase(phase, status, incident, run_dir, config_path, per_phase[phase],
                                           cell_timeout, say, kernel_manager, warm.pop(phase))
                notebook = run_dir / f"{PHASES[phase]}.ipynb"
                rendered[notebook] = rendering.submit(render_section, notebook, nonce)
                if remote is not None:
                    _push(remote, run_dir, say, final=False)
                if status[phase]["status"] == "interrupted":
                    raise KeyboardInterrupt
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM, wherever it lands: keep what was collected, then stop
            interrupted = True
        finally:
            for unused in warm.values():
                unused.discard()
    running = next((p for p in phases if p not in status), None) if interrupted else None
    for phase in phases:
        if phase not in status:
            # Only the phase that was running when the signal came is interrupted; the rest never started.
            status[phase] = (_record(phase, "interrupted", "interrupted (Ctrl-C or SIGTERM)") if phase == running
                             else _record(phase, "skipped", "the run was interrupted before this phase"))
            say(f"phase {phase} {PHASES[phase]}: {status[phase]['status']}")
    summary = _seal(run_dir, incident, started, [status[p] for p in phases],
                    {path: future.result() for path, future in rendered.items() if not future.exception()},
                    cfg.evidence_group, nonce)
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
        raise ParameterError(f"--outputs {_echo(str(outputs))} is a file; name a directory (default outputs/)")
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
        raise ParameterError(f"--outputs {_echo(str(outputs))}: cannot create {run_dir.name} there "
                             f"({exc.strerror}); name a writable directory") from exc
    return run_dir


def _seal(run_dir: Path, incident: str, started: datetime, phases: list[dict[str, Any]],
          rendered: Mapping[Path, Section | None] | None = None, group: str = "", nonce: str = "") -> dict[str, Any]:
    """Write the summary, the report and the manifest of a run: the last step of every run, also an
    interrupted one, and of ``irkit seal`` on a run whose process died. The files are made private (0600 in
    0700 directories, or readable by ``evidence_group``)."""
    summary = evidence.summarize(run_dir, incident, started, phases)
    try:
        evidence.write_report(run_dir, summary, [run_dir / f"{PHASES[p['phase']]}.ipynb" for p in phases], rendered,
                              nonce)
        summary["artifacts"] = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if regular(p)) + [
            "summary.json", "manifest.json"]
        evidence.write_json(run_dir / "summary.json", summary)
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
        raise ParameterError(f"{run_dir} is sealed already (it has {evidence.MANIFEST}); check it with irkit verify")
    notes = {"partial": "the run stopped during this phase (its process died); sealed afterwards by irkit seal",
             "skipped": "the run stopped before this phase; sealed afterwards by irkit seal"}
    phases = []
    for phase in state.phases:
        found = state.found[phase]
        record = _record(phase, "ok" if found == "complete" else found, notes.get(found))
        phases.append(record)
    return RunResult(run_dir, _seal(run_dir, state.incident, state.started_at, phases, group=group))


@contextlib.contextmanager
def _kernel_dir() -> Iterator[type[AsyncKernelManager]]:
    """A kernel manager class whose connection files and IPC sockets live in a private (0700) directory
    of this run, removed afterwards; directories left by a run that was killed are removed first."""
    base = Path(tempfile.gettempdir())
    for stale in base.glob("irkit-kernels-*"):
        owner = stale.name.split("-")[2]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"irkit-kernels-{os.getpid()}-")  # mkdtemp makes it 0700
    try:
        yield type("_RunKernelManager", (_IpcKernelManager,), {"kernel_dir": path})
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _record(phase: int, status: str, error: str | None = None) -> dict[str, Any]:
    """One phase's line in summary.json."""
    name = PHASES[phase]
    return {"phase": phase, "name": name, "notebook": f"{name}.ipynb", "duration_seconds": 0.0,
            "status": status, "error": error}


def _run_phase(phase: int, status: Mapping[int, Mapping[str, Any]], incident: str, run_dir: Path,
               config_path: str, params: Mapping[str, Any], cell_timeout: int,
               say: Callable[[str], None], kernel_manager: type[AsyncKernelManager],
               warm: _WarmKernel | None = None) -> dict[str, Any]:
    """Execute one phase notebook; a failure is recorded, never raised."""
    name = PHASES[phase]
    blocked = [d for d in phases_table.phase(phase).requires if status.get(d, {}).get("status") not in (None, "ok")]
    if blocked:
        if warm is not None:
            warm.discard()
        record = _record(phase, "skipped", f"depends on phase {blocked[0]}, which did not succeed")
        say(f"phase {phase} {name}: skipped ({record['error']})")
        return record
    record = _record(phase, "running")
    say(f"phase {phase} {name}: running")
    t0 = time.monotonic()
    try:
        km = warm.take() if warm is not None else None  # inside the try: Ctrl-C while waiting still stops it
        if STOP_REQUESTED.is_set():
            raise KeyboardInterrupt
        papermill.execute_notebook(
            str(phases_table.phase(phase).path), str(run_dir / f"{name}.ipynb"),
            parameters={"incident_id": incident, "run_dir": str(run_dir), "config_path": config_path, **params},
            kernel_name="python3", engine_name="irkit", progress_bar=False, cwd=str(Path.cwd()),
            execution_timeout=cell_timeout, log_output=False, kernel_manager_class=kernel_manager, **({"km": km} if km is not None else {}),
        )
        record["status"] = "ok"
    except Exception as exc:  # papermill has saved the partial notebook; keep going
        # Ctrl-C reaches the kernel too (the whole process group): its cell dies of KeyboardInterrupt.
        interrupted = getattr(exc, "ename", "") == "KeyboardInterrupt"
        record.update(status="interrupted" if interrupted else "failed", error=redact(_error_text(exc)))
    finally:
        if warm is not None:
            warm.discard()  # a kernel papermill did not start is not papermill's to stop
    record["duration_seconds"] = round(time.monotonic() - t0, 2)
    say(f"phase {phase} {name}: {record['status']} ({record['duration_seconds']:.1f} s)"
        + (f": {record['error']}" if record["error"] else ""))
    return record
