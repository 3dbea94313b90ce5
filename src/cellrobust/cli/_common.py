"""Small helpers shared by the CLI stage modules."""

from __future__ import annotations

import argparse


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    """Add ``--seed`` (the root of every random stream of the command)."""
    parser.add_argument("--seed", type=int, default=default, help=f"random seed (default {default})")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` (no progress bars)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
