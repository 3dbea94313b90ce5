"""Command line: ``python -m benchmarks setup [NAME...]`` / ``run [SUITE...] [--smoke]``."""

from __future__ import annotations

import argparse
import sys

from . import SUITES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    setup = sub.add_parser("setup", help="create the .venv-peers-* environments")
    setup.add_argument("names", nargs="*", help="peer environments (default: all)")
    setup.add_argument("--force", action="store_true", help="reinstall even if up to date")
    run = sub.add_parser("run", help="run benchmark suites side by side")
    run.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITES)}")
    run.add_argument("--smoke", action="store_true", help="tiny sizes (seconds), for tests")
    run.add_argument("--no-peers", action="store_true",
                     help="run only our side (peers reported as skipped)")
    run.add_argument("--rounds", type=int, default=None, help="A/B rounds per comparison")
    run.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "setup":
        from .peers import setup
        return setup(args.names, force=args.force)
    unknown = sorted(set(args.suites) - set(SUITES))
    if unknown:
        print(f"unknown suite(s) {unknown}; valid: {list(SUITES)}", file=sys.stderr)
        return 2
    from .harness import run_suites
    return run_suites(args.suites or list(SUITES), smoke=args.smoke, rounds=args.rounds,
                      out=args.out, peers=not args.no_peers)


if __name__ == "__main__":
    sys.exit(main())
