"""Helpers for the bad-input suite: run cases in fresh processes, grouped through child.py or one real ``python -m sbcore`` each."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("child.py")
MEMORY_LIMIT_KB = 1536 * 1024  # 1.5 GB: no process may grow past this on any bad input
SHIRT = ROOT / "assets" / "samples" / "fmnist_0004_shirt.png"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run_group(cases: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """One fresh child process runs every ``(kind, argument)`` case; returns one report per case (see child.py)."""
    done = subprocess.run([sys.executable, str(CHILD)], input=json.dumps(cases), capture_output=True,
                          text=True, cwd=ROOT, env=ENV, timeout=900)
    reports = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and len(reports) == len(cases), done.stderr[-3000:]
    return reports


# A small Python process starts sbcore and reads its peak from RUSAGE_CHILDREN: a process forked
# straight from pytest would report pytest's own size, which Linux carries over into the child's maxrss.
_LAUNCHER = (
    "import resource, subprocess, sys; status = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(status)"
)


@dataclass
class Finished:
    status: int
    stdout: str
    stderr: str
    peak_kb: int  # the sbcore process's maximum resident set size


def run_sbcore(*argv: str) -> Finished:
    """``python -m sbcore ARGV`` as a real process, with its own peak memory."""
    with tempfile.TemporaryDirectory() as folder:
        peak = Path(folder) / "peak_kb"
        done = subprocess.run([sys.executable, "-c", _LAUNCHER, str(peak), sys.executable, "-m", "sbcore", *argv],
                              capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=600)
        return Finished(done.returncode, done.stdout, done.stderr, int(peak.read_text()))
