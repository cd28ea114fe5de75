"""Running a parsed command the way every ``sbcore`` entry point does: user errors print one line
on stderr and give exit status 2; a reader that closes the pipe early ends the command quietly."""
from __future__ import annotations

import argparse
import os
import sys

from sbcore.errors import SBCoreError


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.run(args)``; returns the exit status (0 ok, 2 user error, 1 closed pipe)."""
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
