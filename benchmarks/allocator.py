"""How much of a CPU forward pass is the allocator's: glibc's defaults against ``sbcore.runtime.keep_freed_memory()``.

    python benchmarks/allocator.py            # ResNet-38 3x32x32 batch 8, plain and SB, 6 alternations
    python benchmarks/allocator.py --quick    # 2 alternations of short runs

With glibc's defaults, a tensor of 128 KiB or more (a ResNet-38 stage-1 activation at batch 8 is 2 MiB) is
mmap'ed when allocated and unmapped when freed, so every forward pass page-faults its activations in again;
freed heap memory is also trimmed back to the system. ``keep_freed_memory()`` raises both thresholds, so freed
memory is reused. A process cannot go back to the defaults cleanly, so each measurement runs in a child process;
the two settings alternate, and each child times plain and SB forward passes in interleaved rounds. Prints the
medians over children of img/s per model and of the SB/plain ratio, and the speed-up of each alternation.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from sbcore.runtime import OPT_OUT

CHILD = """
import json, sys
import numpy as np, torch
from sbcore import create_model
from sbcore.analysis.throughput import time_interleaved
from sbcore.runtime import keep_freed_memory
if sys.argv[3] == "keep" and not keep_freed_memory():
    sys.exit("keep_freed_memory() needs glibc")
torch.set_num_threads(1)
torch.manual_seed(0)
models = {name: create_model(name, in_chans=3).eval() for name in ("resnet38", "sb_resnet38")}
x = torch.randn(8, 3, 32, 32)
with torch.inference_mode():
    calls = {name: (lambda model=model: model(x)) for name, model in models.items()}
    for call in calls.values():
        call(); call()
    timing = time_interleaved(calls, int(sys.argv[1]), float(sys.argv[2]))
print(json.dumps({name: 8 / float(np.median(times)) for name, times in timing.per_round.items()}
                 | {"ratio": float(np.median(np.log(timing.per_round["resnet38"]) - np.log(timing.per_round["sb_resnet38"])))}))
"""


def measure(allocator: str, rounds: int, seconds: float) -> dict[str, float]:
    """img/s of plain and SB ResNet-38 and their paired SB/plain log ratio, in a child process."""
    env = {name: value for name, value in os.environ.items() if name not in ("GLIBC_TUNABLES", OPT_OUT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(rounds), str(seconds), allocator], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 alternations of short runs")
    args = parser.parse_args()
    alternations, rounds, seconds = (2, 3, 0.1) if args.quick else (6, 10, 0.5)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, ResNet-38 3x32x32 batch 8, fp32, one thread, "
          f"{alternations} children per allocator, {rounds} interleaved rounds each")
    results: dict[str, list[dict[str, float]]] = {"glibc defaults": [], "freed memory kept": []}
    for _ in range(alternations):
        results["glibc defaults"].append(measure("default", rounds, seconds))
        results["freed memory kept"].append(measure("keep", rounds, seconds))
    for label, runs in results.items():
        plain, sb = (float(np.median([run[name] for run in runs])) for name in ("resnet38", "sb_resnet38"))
        ratio = float(np.exp(np.median([run["ratio"] for run in runs])))
        print(f"  {label:<18} plain {plain:7.1f} img/s   SB {sb:7.1f} img/s   SB/plain {ratio:.3f}")
    speedup = [kept["resnet38"] / default["resnet38"]
               for default, kept in zip(results["glibc defaults"], results["freed memory kept"])]
    print(f"  plain img/s, kept over defaults, per alternation: {' '.join(f'{s:.2f}' for s in speedup)}")


if __name__ == "__main__":
    main()
