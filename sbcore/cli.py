"""``sbcore`` command line: one subcommand per task, each defined next to the code it runs."""
from __future__ import annotations

import argparse
import sys

from sbcore import cost, evaluate, model_card, train
from sbcore.analysis import ablation_cli, cli as analysis_cli, faithfulness_cli
from sbcore.cli_types import OneLineParser
from sbcore.console import run_command
from sbcore.runtime import keep_freed_memory

SUBCOMMANDS = (
    cost.configure_cli,
    model_card.configure_cli,
    train.configure_cli,
    evaluate.configure_cli,
    *analysis_cli.CONFIGURE,
    ablation_cli.configure_ablate,
    faithfulness_cli.configure_faithfulness,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``sbcore`` parser with every subcommand."""
    parser = OneLineParser(prog="sbcore", description="Spatial Bias Explorer command line.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for configure in SUBCOMMANDS:
        configure(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user errors print one line on stderr and exit with status 2."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # CPU forward and backward passes reuse freed activations (sbcore.runtime)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
