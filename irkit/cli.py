"""The ``irkit`` command: ``run`` the phase notebooks, ``verify`` a run's evidence."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from irkit import evidence, runner
from irkit.errors import IrkitError

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            result = runner.run(args.incident, runner.parse_phases(args.phases), config_path=args.config,
                                params=dict(args.parameter), outputs=args.outputs,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
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
    except IrkitError as exc:
        print(f"irkit: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"irkit: {exc.filename}: no such file; is this a run directory?", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
