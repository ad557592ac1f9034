"""The ``irkit`` command: ``run`` the phase notebooks; ``verify``, ``seal`` and ``send`` a run; ``serve`` alerts;
``drill`` scenarios; ``lab`` (JupyterLab on an incident); ``init`` a starter irkit.toml (each command imports what it needs when it runs)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import faulthandler
import json
import os
import shlex
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from irkit import evidence
from irkit.errors import ConfigError, IrkitError, ParameterError
from irkit.evidence.remote import Remote, fetch, is_remote

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, with its complaint on one line (exit 2) instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="irkit", description="Incident-response runbooks as notebooks.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="execute the phase notebooks with papermill and keep the evidence")
    run.add_argument("--incident", required=True, help="incident id, e.g. INC-123")
    run.add_argument("--phases", default="1-5", help="which phases, e.g. 1-5 or 2,4 (default 1-5)")
    run.add_argument("--config", default="", help="irkit.toml to use (default: IRKIT_CONFIG or ./irkit.toml)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a notebook parameter, e.g. -p window_minutes 60 (repeatable)")
    run.add_argument("--outputs", default="outputs",
                     help="where runs are kept: a directory (default outputs/) or s3://BUCKET/PREFIX")
    run.add_argument("--context", default="", metavar="JSON",
                     help="what started the run, kept in run.json (irkit serve passes the alert to its Jobs)")
    run.add_argument("--defaults", action="store_true",
                     help="run on the playbook's built-in names when no configuration is given (irkit refuses to "
                          "otherwise)")
    lab = sub.add_parser("lab", help="JupyterLab on the incident where you work: the phase notebooks, its "
                                     "configuration, its outputs; sealed runs read-only")
    lab.add_argument("--incident", required=True, help="incident id, e.g. INC-123")
    lab.add_argument("--config", default="", help="irkit.toml to use (default: IRKIT_CONFIG or ./irkit.toml)")
    lab.add_argument("--defaults", action="store_true", help="the playbook's built-in names, when no configuration")
    lab.add_argument("--outputs", default="outputs", help="where the incident's runs are (default outputs/)")
    lab.add_argument("--context", default="", metavar="JSON", help="ties the session's run to a drill (irkit prints it)")
    lab.add_argument("--port", type=int, default=0, help="JupyterLab's port on 127.0.0.1 (default: a free one)")
    lab.add_argument("--browser", action="store_true", help="open a browser too")
    init = sub.add_parser("init", help="write a starter irkit.toml: every key at the playbook's default, explained")
    init.add_argument("path", nargs="?", default="irkit.toml", help="where to write it (default ./irkit.toml)")
    verify = sub.add_parser("verify", help="check a run directory (or s3://.../INCIDENT/RUN) against its manifest.json")
    verify.add_argument("run_dir")
    seal = sub.add_parser("seal", help="seal a run whose process died (a directory or s3://.../INCIDENT/RUN): summary, "
                                       "report and manifest of what is there")
    seal.add_argument("run_dir")
    seal.add_argument("--config", default="", help="irkit.toml (for evidence_group; default: IRKIT_CONFIG or ./irkit.toml)")
    send = sub.add_parser("send", help="send a run's outbox messages (those not sent yet, or the ones named)")
    send.add_argument("run_dir")
    send.add_argument("ids", nargs="*", help="message ids (outbox/<id>.json); default: every one not sent")
    send.add_argument("--config", default="", help="irkit.toml to use (default: IRKIT_CONFIG or ./irkit.toml)")
    serve = sub.add_parser("serve", help="receive Alertmanager's webhook and start runs (token: IRKIT_SERVE_TOKEN)")
    serve.add_argument("--listen", default="127.0.0.1:9095", help="HOST:PORT to listen on (default 127.0.0.1:9095)")
    serve.add_argument("--config", default="", help="irkit.toml the runs use (default: IRKIT_CONFIG or ./irkit.toml)")
    serve.add_argument("--outputs", default="outputs",
                       help="where runs are kept: a directory (default outputs/) or s3://BUCKET/PREFIX")
    serve.add_argument("--state", default=".irkit-serve", help="where the job queue is kept (default .irkit-serve/)")
    serve.add_argument("--max-runs", type=int, default=2, help="runs at once (default 2; 0: queue only)")
    serve.add_argument("--max-queued", type=int, default=100,
                       help="jobs that may wait (default 100); beyond it a POST is answered 503 with Retry-After")
    serve.add_argument("--firing-phases", default="1-2", help="phases a firing group runs (default 1-2)")
    serve.add_argument("--resolved-phases", default="4-5",
                       help="phases a resolved group runs (default 4-5: recovery validated, then the resolution)")
    serve.add_argument("--log-format", choices=("plain", "json"), default="plain",
                       help="one line per alert received and per run started, finished or failed: plain text "
                            "(default) or JSON lines")
    serve.add_argument("--job-template", default="", metavar="PATH",
                       help="start each run as a Kubernetes Job made from this template (deploy/job-template.yaml) "
                            "instead of in this process; needs --outputs s3://...")
    drill = sub.add_parser("drill", help="run the five phases on a self-contained drill environment")
    drill.add_argument("scenario", nargs="?", help="a built-in scenario name (see --list) or a scenario file")
    drill.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    drill.add_argument("--all", action="store_true",
                       help="run every built-in scenario and write the accuracy table (outputs/drill-accuracy/)")
    drill.add_argument("--repeat", type=int, default=1, help="with --all: run every scenario this many times (1-10)")
    drill.add_argument("--check", action="store_true",
                       help="compare summary.json with the scenario's ground truth; exit 1 on any difference")
    drill.add_argument("--keep-running", action="store_true",
                       help="leave the environment up after the run (Ctrl-C stops it)")
    drill.add_argument("--execute-mitigations", action="store_true",
                       help="plan (phases 2-3), then confirm and apply every prepared step in the checked run; "
                            "phase 4 waits for the signals: the scenario must end recovered")
    drill.add_argument("--incident", default="", help="incident id (default DRILL-<scenario>)")
    drill.add_argument("--phases", default="", help="which phases to run (default 1-5; --all: 1-4, what is scored)")
    drill.add_argument("--outputs", default="outputs", help="where runs are kept (default outputs/)")
    return parser


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _drill(args: argparse.Namespace) -> int:
    from irkit import runner

    try:
        from irkit import drill  # the lab's imports are only needed here
    except ModuleNotFoundError as exc:
        raise ConfigError(f"irkit drill needs the drill extra ({exc.name} is not installed): "
                          "pip install 'irkit[drill]'") from exc

    if args.list:
        for name in drill.scenarios():
            scenario = drill.load_scenario(name)
            real = scenario.truth.says
            print(f"{name:<28} {real:<16} {scenario.title}")
        return 0
    if args.all:
        if not 1 <= args.repeat <= 10:
            raise ParameterError("--repeat must be from 1 to 10")
        rows, directory = drill.run_all(repeat=args.repeat, outputs=args.outputs, progress=_say,
                                        phases=runner.parse_phases(args.phases) if args.phases else None,
                                        execute_mitigations=args.execute_mitigations)
        print(drill.accuracy_table(rows)[1], end="")
        _say(f"accuracy table: {directory}/accuracy.md and accuracy.csv")
        return 0 if all(r["ok"] for r in rows) else 1
    if not args.scenario:
        raise ParameterError("irkit drill needs a SCENARIO (irkit drill --list shows them)")
    scenario = drill.load_scenario(args.scenario)
    _say(f"drill {scenario.name}: {scenario.title}")
    result = drill.run_drill(scenario, outputs=args.outputs, incident=args.incident, progress=_say,
                             keep_running=_wait_for_ctrl_c if args.keep_running else None,
                             phases=runner.parse_phases(args.phases) if args.phases else None,
                             execute_mitigations=args.execute_mitigations)
    _say(f"drill took {result.timings['total_seconds']:.1f} s; every drill service is stopped")
    from irkit.evidence.incident import incident_view, story
    _say("\n".join(["", *story(incident_view(result.run_dir, result.summary.incident), result.run_dir.name,
                                 f"{result.location or result.run_dir}/{evidence.RunDir(result.run_dir).report.name}")]))
    if result.differences:
        _say("differences from the ground truth:\n" + "\n".join(f"  - {d}" for d in result.differences))
    elif args.check:
        _say("check: the runbook found the ground truth (severity, first finding, first mitigation)")
    print(result.location or result.run_dir)
    return 1 if args.check and result.differences else 0


def _serve(args: argparse.Namespace) -> int:
    from irkit import serve  # papermill and jupyter load only for the commands that run notebooks

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParameterError(f"--listen {args.listen[:40]!r} is not HOST:PORT, like 127.0.0.1:9095")
    if args.config and not Path(args.config).is_file():
        raise ParameterError(f"--config {args.config[:40]!r}: no such file")
    from irkit import config as irconfig
    if irconfig.locate(args.config or None) is None and not irconfig.env_targets():
        raise ParameterError("no configuration: every run irkit serve starts would ask the playbook's built-in "
                             "names; give it --config (irkit init writes one), IRKIT_CONFIG or ./irkit.toml")
    token = serve.read_token()
    serve.configure_logging(args.log_format)
    launcher = None
    if args.job_template:
        launcher = serve.JobLauncher(irconfig.load(args.config or None), args.job_template, outputs=args.outputs)
    server = serve.Serve(token=token, config_path=args.config, outputs=args.outputs,
                         state_dir=args.state, listen=(host, int(port)), max_runs=args.max_runs,
                         firing_phases=args.firing_phases, resolved_phases=args.resolved_phases,
                         start_run=launcher, max_queued=args.max_queued).start()
    if server.queue.damaged:
        _say(f"irkit serve: {server.queue.damaged}")
    _say(f"irkit serve: POST alert groups to {server.url}/alerts (GET /healthz); {len(server.queue.jobs)} job(s) "
         f"in {Path(args.state) / 'queue.json'}; Ctrl-C stops")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        _say("irkit serve: stopping; queued jobs stay in the queue for the next start")
        server.stop()
    return OK


def _wait_for_ctrl_c(env: Any, result: Any) -> None:
    """The drill environment stays up: how to reach it, and the lines of the practice loop, each complete (its
    incident, configuration, outputs and the drill it belongs to) so it works pasted into a fresh shell."""
    from irkit.rules.plan import shell  # every word quoted: a printed line is pasted into a shell

    incident = result.summary.incident
    same = _same_run(result.run_dir)
    _say(f"\nthe drill environment is up:\n"
         f"  database   {shell('psql', env.postgres.dsn)}\n"
         f"  notebooks  {shell(_irkit(), 'lab', '--incident', incident, *same)}\n"
         f"  validate   {shell(_irkit(), 'run', '--incident', incident, '--phases', '4', *same, *_SETTLE)}\n"
         f"  post-mortem {shell(_irkit(), 'run', '--incident', incident, '--phases', '5', *same)}\n"
         "Apply the plan (e.g. its pg_terminate_backend in psql, or the button in phase 3's notebook), then "
         "validate: the error ratio falls under the threshold within the rate window (1 min in drills).\n"
         "Ctrl-C stops it.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        _say("stopping the drill environment")


def _terminate(signum: int, frame: Any) -> None:
    # Ctrl-C and SIGTERM alike: context managers stop what was started. The flag first: Python may swallow the
    # exception (raised inside a weakref callback), and the runner checks the flag between steps.
    from irkit.runner import STOP_REQUESTED  # a command that runs no notebook has nothing to stop
    STOP_REQUESTED.set()
    raise KeyboardInterrupt


# Exit codes (the README's table, and docs/errors.md).
OK, FAILED, BAD_INPUT, INCONCLUSIVE, NOT_RECOVERED, INTERNAL, INTERRUPTED = 0, 1, 2, 3, 4, 70, 130


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # kill -USR1 on an irkit that seems stuck prints where every thread of it is, and irkit goes on.
        if sys.__stderr__ is not None:  # none when embedded: no dump then
            with contextlib.suppress(AttributeError, ValueError, OSError):
                faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
        signal.signal(signal.SIGTERM, _terminate)
        # Also when started in the background, where the shell leaves SIGINT ignored.
        signal.signal(signal.SIGINT, _terminate)
    try:
        if args.command == "run":
            from irkit import runner  # papermill and jupyter load only for the commands that run notebooks

            result = runner.run(args.incident, runner.parse_phases(args.phases), config_path=args.config,
                                params=dict(args.parameter), outputs=args.outputs, progress=_say,
                                context=runner.parse_context(args.context) if args.context else None,
                                defaults=args.defaults)
            _tell(result)
            _next_step(result, args)
            print(result.location or result.run_dir)
            return _run_exit(result)
        if args.command == "verify":
            if is_remote(args.run_dir):  # copied down whole, then checked as on disk
                return _verify(fetch(args.run_dir), shown=args.run_dir.rstrip("/"))
            return _verify(Path(args.run_dir))
        if args.command == "seal":
            from irkit import config as irconfig
            from irkit import runner

            group = irconfig.load(args.config or None).evidence_group
            if is_remote(args.run_dir):  # a Job's pod died mid-run: seal the bucket's copy, and put it back
                url = args.run_dir.rstrip("/")
                local = fetch(url)
                result = runner.seal(local, group)
                Remote(url).push(local, to=url)
                result = dataclasses.replace(result, location=url)
            else:
                result = runner.seal(args.run_dir, group)
            _say("sealed: " + ", ".join(f"phase {p.phase} {p.status}" for p in result.summary.phases))
            _say_in_flight(result)
            odd = evidence.verify(result.run_dir).get("unexpected") or []
            if odd:
                _say("not evidence irkit wrote (left in place; irkit verify will report it): " + ", ".join(odd))
            print(result.location or result.run_dir)
            return OK
        if args.command == "drill":
            return _drill(args)
        if args.command == "init":
            return _init(Path(args.path))
        if args.command == "lab":
            from irkit import jupyter, runner
            from irkit.rules.plan import shell
            session = jupyter.lab(runner.check_incident(args.incident), config_path=args.config,
                                  defaults=args.defaults, outputs=args.outputs, port=args.port, browser=args.browser,
                                  say=_say, context=runner.parse_context(args.context) if args.context else None)
            same = _same_run(session)  # the session's configuration, outputs and drill: pasted lines need them
            _say(f"next:\n  validate     {shell(_irkit(), 'run', '--incident', args.incident, '--phases', '4', *same, *_SETTLE)}"
                 f"\n  post-mortem  {shell(_irkit(), 'run', '--incident', args.incident, '--phases', '5', *same)}")
            return OK
        if args.command == "send":
            return _send(Path(args.run_dir), args.ids, args.config)
        if args.command == "serve":
            return _serve(args)
    except IrkitError as exc:
        _say(f"irkit: {_one_line(str(exc))}")
        return BAD_INPUT
    except KeyboardInterrupt as exc:
        _say(f"irkit: {exc or 'interrupted'}; everything started was stopped")
        return INTERRUPTED
    except OSError as exc:  # a path given on the command line that is not what it should be
        _say(f"irkit: {exc.filename or ''}: {exc.strerror or exc}; check the path".replace(": :", ":"))
        return BAD_INPUT
    except Exception as exc:  # a bug: one line here, the traceback only on request
        if os.environ.get("IRKIT_DEBUG"):
            raise
        _say(f"irkit: internal error ({type(exc).__name__}: {_one_line(str(exc))[:300]}); "
             "this is a bug in irkit: rerun with IRKIT_DEBUG=1 for the traceback and report it")
        return INTERNAL
    return BAD_INPUT


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _next_step(result: Any, args: argparse.Namespace) -> None:
    """After a run that prepared steps and applied none: the line that applies them, quoted to paste. It carries
    everything it needs in a fresh shell: the configuration's absolute path (wherever it came from), the
    outputs, the context that ties the run to its incident's others (a drill)."""
    from irkit.evidence import records as R
    from irkit.rules.plan import shell
    run = R.RunRecords(result.run_dir)
    steps = [s for s in run.get(R.STEPS) if not s.refused]
    if not steps or any(o.status != "dry-run" for o in run.get(R.OUTCOMES)):
        return
    confirm = f"{args.incident}:{','.join(s.id for s in steps)}"
    _say("prepared, not applied: " + "; ".join(f"{s.id} ({s.action} {s.target})" for s in steps))
    _say("to apply after review (re-plans; a changed situation changes the ids and is refused): " + shell(
        _irkit(), "run", "--incident", args.incident, "--phases", "2-4", *_same_run(result.run_dir),
        "-p", "execute_mitigations", "true", "-p", "confirm", confirm, "-p", "settle_seconds", "300"))


# A validation pasted right after a fix waits for the signals (re-checking every 5 s, up to 5 minutes) instead of
# judging the error ratio of the minutes before the fix.
_SETTLE = ("-p", "settle_seconds", "300")


def _irkit() -> str:
    """This irkit as a pasted line finds it in a fresh shell: the script beside this Python (a virtualenv's bin/
    is often not on a fresh shell's PATH), else the one on PATH."""
    beside = Path(sys.executable).parent / "irkit"
    return str(beside) if beside.is_file() else (shutil.which("irkit") or "irkit")


def _same_run(run_dir: Path) -> list[str]:
    """The options that make a pasted ``irkit run`` use what this run used: its configuration (an absolute
    path, or --defaults), its outputs (absolute), and its drill."""
    meta = evidence.read_json(evidence.RunDir(run_dir).run_json) or {}
    words = ["--config", str(meta["config_path"])] if meta.get("config_path") else ["--defaults"]
    outputs = run_dir.parent.parent
    if not outputs.name.startswith("irkit-outputs-"):  # a bucket's staging directory is no place to paste
        words += ["--outputs", str(outputs.absolute())]
    if meta.get("drill"):
        words += ["--context", json.dumps({"drill": meta["drill"]})]
    return words


def _init(path: Path) -> int:
    """A starter irkit.toml, never over an existing file."""
    from irkit import config as irconfig
    if path.exists() or path.is_symlink():
        raise ParameterError(f"{path} exists: irkit init writes a new file only; edit it, or name another path")
    path.write_text(irconfig.starter_toml())
    _say(f"wrote {path}: the playbook's names and thresholds; set yours (namespace, deployments, prom_url, pg_dsn, "
         "health_endpoints), then irkit run --incident ID --config " + shlex.quote(str(path.absolute())))
    return OK


def _send(run_dir: Path, ids: list[str], config_path: str) -> int:
    """Send outbox messages by hand (a failed send, or a run that kept them in the outbox), then re-seal."""
    from irkit import config as irconfig

    state = evidence.run_state(run_dir)  # a directory that is no run: one line, exit 2
    if state.sealed:  # re-sealing signs what is there: never sign what no longer matches what was sealed
        found = [f"{kind}: {name}" for kind, names in evidence.verify(run_dir).items() for name in names]
        if found:
            _say(f"irkit: {run_dir} does not match its manifest ({'; '.join(found[:3])}): nothing sent, nothing "
                 f"re-signed; check it with irkit verify")
            return FAILED
    cfg = irconfig.load(config_path or None)
    with contextlib.ExitStack() as stack:
        if state.sealed:  # read-only on disk: open it for the outbox and the new manifest, then seal it again
            stack.enter_context(evidence.reopened(run_dir, cfg.evidence_group))
        failed = _send_messages(run_dir, ids, cfg)
        if evidence.RunDir(run_dir).manifest.exists():
            evidence.write_manifest(run_dir)  # the outbox changed: the manifest says so, signed again
    return FAILED if failed else OK


def _send_messages(run_dir: Path, ids: list[str], cfg: Any) -> int:
    """Send the chosen messages of the run's outbox; how many failed."""
    from irkit import comms
    outbox = comms.Outbox(run_dir)
    chosen = [outbox.get(i) for i in ids] if ids else [m for m in outbox.all() if m.status in ("outbox", "failed")]
    remote = next((m.remote_id for m in outbox.all() if m.channel == "statuspage" and m.remote_id), "")
    failed = 0
    for message in chosen:
        if message.status == "draft":
            _say(f"{message.id}: a draft (recovery not validated): not sent")
            continue
        sent = outbox.send(message, cfg, remote_id=remote if message.channel == "statuspage" else "")
        failed += sent.status != "sent"
        _say(f"{sent.id}: {sent.status}" + (f" ({sent.attempts[-1].get('error')})" if sent.status != "sent" else ""))
    return failed


def _say_in_flight(result: Any) -> None:
    """Steps a run was applying when it stopped: the change may have been made. A person must look."""
    if result.in_flight:
        _say("applied or in flight when the run stopped (check each target; the change may have been made): "
             + ", ".join(result.in_flight))


def _run_exit(result: Any) -> int:
    """The run's verdict as its exit code: 1 a phase failed; 4 phase 4 found it not recovered; 3 a verdict is
    unknown (not measured); 0 otherwise (recovered, or nothing wrong, or no verdict asked for)."""
    if not result.ok:
        return FAILED
    recovery = result.summary.recovery
    if recovery is not None and recovery.recovered is False:
        return NOT_RECOVERED
    if result.inconclusive:
        _say(f"irkit: inconclusive: {'; '.join(result.inconclusive)}")
        return INCONCLUSIVE
    return OK


def _tell(result: Any) -> None:
    """The incident's story after a run, built from every run of it: severity, cause, done, verdict, evidence."""
    from irkit.evidence.incident import incident_view, story
    files = evidence.RunDir(result.run_dir)
    report = f"{result.location}/{files.report.name}" if result.location else str(files.report)
    view = incident_view(result.run_dir, result.summary.incident)
    _say("\n".join(["", *story(view, result.run_dir.name, report)]))


def _verify(run_dir: Path, shown: str = "") -> int:
    problems = evidence.verify(run_dir)
    shown = shown or str(run_dir)
    for kind, names in problems.items():
        for name in names:
            print(f"{kind} run: {name}" if kind == "unfinished" else f"{kind}: {name}")
    if any(problems.values()):
        return FAILED
    signed = evidence.signed(run_dir)
    if signed and evidence.KEY_ENV not in os.environ and evidence.KEY_FILE_ENV not in os.environ:
        print(f"ok: every file in {shown} matches manifest.json; its signature was not checked "
              f"(set {evidence.KEY_ENV} or {evidence.KEY_FILE_ENV})")
    else:
        print(f"ok: every file in {shown} matches manifest.json" + (", and its signature is valid" if signed else
                                                                      " (unsigned)"))
    return OK


if __name__ == "__main__":
    sys.exit(main())
