"""Typed, ranged command-line values and a parser whose errors are one line.

Every option of every ``sbcore`` subcommand parses through one of these, so a bad value is
refused before any work starts, with ``sbcore CMD: error: argument --x: ...`` and status 2.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Callable, NoReturn

MAX_SEED = 2**32 - 1
MAX_WORKERS = 64  # data-loader processes
MAX_BATCH = 4_096


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that reports a usage error as one line on stderr (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (no upper bound when ``high`` is None)."""
    expected = f"an integer from {low:,} to {high:,}" if high is not None else f"an integer of at least {low:,}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


positive_int = integer(1)
seed = integer(0, MAX_SEED)


def real(low: float, high: float, *, above_low: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high], or in (low, high] with ``above_low``."""
    expected = f"a number in {'(' if above_low else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
        if not math.isfinite(value) or value < low or value > high or (above_low and value == low):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def device(text: str) -> str:
    """An argparse type: a torch device that exists here (``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    import torch

    try:
        parsed = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r} needs a CUDA GPU and this machine has none; use cpu")
        if parsed.index is not None and parsed.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r} does not exist; this machine has cuda:0 to cuda:{count - 1}")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r} is not available on this machine; use cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r} is not supported; use cpu, cuda or cuda:N")
    return text


NAME_MAX, PATH_MAX = 255, 4096  # bytes, as Linux file systems allow


def _check_lengths(path: Path, text: str) -> None:
    """Refuse a path the file system would refuse for its length, naming the limit (not echoing the whole path)."""
    shown = text if len(text) <= 80 else f"{text[:40]}…{text[-20:]}"
    if len(os.fsencode(text)) > PATH_MAX:
        raise argparse.ArgumentTypeError(f"{shown} is {len(text):,} characters long; paths are limited to {PATH_MAX:,} bytes")
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise argparse.ArgumentTypeError(
                f"a name in {shown} is {len(part):,} characters long; each file or folder name is limited to "
                f"{NAME_MAX} bytes")


def _probe_folder(folder: Path, text: str) -> None:
    """Create ``folder`` as the command would and write a scratch file in it, so an unwritable place fails now."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write to {text} ({error.strerror or error})") from None


def output_folder(text: str) -> str:
    """An argparse type: a folder that exists or can be created (it is created), and can be written to."""
    folder = Path(text)
    _check_lengths(folder, text)
    if folder.exists() and not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    _probe_folder(folder, text)
    return text


def output_file(text: str) -> str:
    """An argparse type: a file path whose folder exists or can be created, and can be written to."""
    path = Path(text)
    _check_lengths(path, text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; name a file")
    _probe_folder(path.parent, text)
    return text

