"""The ``irkit`` command: ``run`` the phase notebooks, ``verify`` a run's evidence, ``drill``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from irkit import evidence, runner
from irkit.errors import IrkitError, ParameterError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irkit", description="Incident-response runbooks as notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the phase notebooks with papermill and keep the evidence")
    run.add_argument("--incident", required=True, help="incident id, e.g. INC-123")
    run.add_argument("--phases", default="1-5", help="which phases, e.g. 1-5 or 2,4 (default 1-5)")
    run.add_argument("--config", default="", help="irkit.toml to use (default: IRKIT_CONFIG or ./irkit.toml)")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a notebook parameter, e.g. -p window_minutes 60 (repeatable)")
    run.add_argument("--outputs", default="outputs", help="where runs are kept (default outputs/)")
    verify = sub.add_parser("verify", help="check a run directory against its manifest.json")
    verify.add_argument("run_dir")
    drill = sub.add_parser("drill", help="run the five phases on a self-contained drill environment")
    drill.add_argument("scenario", nargs="?", help="a built-in scenario name (see --list) or a scenario file")
    drill.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    drill.add_argument("--check", action="store_true",
                       help="compare summary.json with the scenario's ground truth; exit 1 on any difference")
    drill.add_argument("--keep-running", action="store_true",
                       help="leave the environment up after the run (Ctrl-C stops it)")
    drill.add_argument("--incident", default="", help="incident id (default DRILL-<scenario>)")
    drill.add_argument("--outputs", default="outputs", help="where runs are kept (default outputs/)")
    return parser


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _drill(args: argparse.Namespace) -> int:
    from irkit import drill  # the lab's imports are only needed here

    if args.list:
        for name in drill.scenarios():
            scenario = drill.load_scenario(name)
            real = scenario.truth.severity if scenario.truth.real else "not an incident"
            print(f"{name:<24} {real:<16} {scenario.title}")
        return 0
    if not args.scenario:
        raise ParameterError("irkit drill needs a SCENARIO (irkit drill --list shows them)")
    scenario = drill.load_scenario(args.scenario)
    _say(f"drill {scenario.name}: {scenario.title}")
    result = drill.run_drill(scenario, outputs=args.outputs, incident=args.incident, progress=_say,
                             keep_running=_wait_for_ctrl_c if args.keep_running else None)
    _say(f"drill took {result.timings['total_seconds']:.1f} s; every drill service is stopped")
    if result.differences:
        _say("differences from the ground truth:\n" + "\n".join(f"  - {d}" for d in result.differences))
    elif args.check:
        _say("check: the runbook found the ground truth (severity, first finding, first mitigation)")
    print(result.run_dir)
    return 1 if args.check and result.differences else 0


def _wait_for_ctrl_c(env: Any) -> None:
    bin_dir = Path(sys.executable).parent
    config = f"IRKIT_CONFIG={env.config_path}"
    _say(f"\nthe drill environment is up:\n"
         f"  database   psql {env.postgres.dsn}\n"
         f"  notebooks  {config} KUBECONFIG={env.kubeconfig} {bin_dir / 'jupyter'} lab {runner.NOTEBOOK_DIR}\n"
         f"  validate   {config} {bin_dir / 'irkit'} run --incident DRILL-{env.scenario.name} --phases 4\n"
         "Apply the plan (e.g. its pg_terminate_backend in psql), then validate: the error ratio falls under "
         "the threshold within the rate window (1 min in drills).\n"
         "Ctrl-C stops it.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        _say("stopping the drill environment")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: context managers stop what was started


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
        # Also when started in the background, where the shell leaves SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if args.command == "run":
            result = runner.run(args.incident, runner.parse_phases(args.phases), config_path=args.config,
                                params=dict(args.parameter), outputs=args.outputs,
                                progress=_say)
            print(result.run_dir)
            return 0 if result.ok else 1
        if args.command == "verify":
            problems = evidence.verify(Path(args.run_dir))
            for kind, names in problems.items():
                for name in names:
                    print(f"{kind}: {name}")
            if any(problems.values()):
                return 1
            print(f"ok: every file in {args.run_dir} matches manifest.json")
            return 0
        if args.command == "drill":
            return _drill(args)
    except IrkitError as exc:
        print(f"irkit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        _say(f"irkit: {exc or 'interrupted'}; everything started was stopped")
        return 130
    except FileNotFoundError as exc:
        print(f"irkit: {exc.filename}: no such file; is this a run directory?", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
