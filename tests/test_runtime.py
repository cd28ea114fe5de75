"""keep_freed_memory: freed activations stay with the process instead of being unmapped (glibc)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from sbcore.runtime import OPT_OUT

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

CHILD = """
import os, sys, torch
from sbcore.runtime import keep_freed_memory, release_freed_memory
def resident():
    return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
kept = keep_freed_memory() if sys.argv[1] == 'keep' else False
x = torch.ones(8 * 2**20, dtype=torch.uint8)  # 8 MiB, every page touched
before = resident()
del x
released = before - resident()
release_freed_memory()
print(kept, released, before - resident())
"""
MIB = 2**20


def _free_an_activation(mode: str, opt_out: bool = False) -> tuple[bool, int, int]:
    """(whether keep_freed_memory took effect, bytes of resident memory given back on freeing an 8 MiB tensor,
    and after release_freed_memory), from a child process, with SBCORE_GLIBC_MALLOC_DEFAULTS set or not."""
    environment = {name: value for name, value in os.environ.items() if name != OPT_OUT}
    if opt_out:
        environment[OPT_OUT] = "1"
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                          env=environment)
    kept, released, after_release = done.stdout.split()
    return kept == "True", int(released), int(after_release)


def test_by_default_a_freed_activation_goes_back_to_the_system():
    kept, released, _ = _free_an_activation("default")
    assert not kept and released >= 7 * MIB


def test_kept_memory_stays_with_the_process_for_the_next_forward_pass():
    kept, released, _ = _free_an_activation("keep")
    assert kept and released < MIB


def test_release_hands_kept_memory_back_when_asked():
    _, _, after_release = _free_an_activation("keep")
    assert after_release >= 7 * MIB


def test_the_opt_out_leaves_glibc_as_it_is():
    kept, released, _ = _free_an_activation("keep", opt_out=True)
    assert not kept and released >= 7 * MIB
