"""``sbcore`` command line: one subcommand per task, each defined next to the code it runs."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from sbcore.errors import SBCoreError

Configure = Callable[[argparse._SubParsersAction], None]


def _subcommands() -> list[Configure]:
    from sbcore import cost, evaluate, model_card, train
    from sbcore.analysis import cli as analysis_cli

    return [cost.configure_cli, model_card.configure_cli, train.configure_cli, evaluate.configure_cli, *analysis_cli.CONFIGURE]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sbcore", description="Spatial Bias Explorer command line.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for configure in _subcommands():
        configure(subparsers)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run parsed arguments (``args.run``, ``args.command``); user errors print one line on stderr and give status 2."""
    try:
        args.run(args)
        sys.stdout.flush()  # a buffered stdout meets a closed pipe here, not at interpreter exit
    except SBCoreError as error:
        print(f"sbcore {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) closed early; silence the flush at exit too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user errors print one line on stderr and exit with status 2."""
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
