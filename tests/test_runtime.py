"""keep_freed_memory: freed activations stay with the process instead of being unmapped (glibc)."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

CHILD = """
import sys, torch
from sbcore.runtime import keep_freed_memory
def resident():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
if sys.argv[1] == 'keep':
    assert keep_freed_memory()
x = torch.ones(8 * 2**20, dtype=torch.uint8)  # 8 MiB, every page touched
before = resident()
del x
print(before - resident())
"""


def _released_on_free(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_by_default_a_freed_activation_goes_back_to_the_system():
    assert _released_on_free("default") >= 7 * 2**20


def test_kept_memory_stays_with_the_process_for_the_next_forward_pass():
    assert _released_on_free("keep") < 2**20
