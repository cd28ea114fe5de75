"""The compute scheduler's thread policies side by side: the Compare page's default (Integrated Gradients for the
four shipped Fashion-MNIST models, one job per model) as one user and as several users with different images,
on a quiet machine and beside one busy process, under each policy:

- ``1x2``: one worker, two torch threads (what one session did before the scheduler);
- ``2x1``: two workers, one thread each;
- ``adaptive``: a job alone gets every free core, a queue one core per job, other processes' busy cores left free.

    python benchmarks/scheduler_policies.py [--users 1 4] [--repeats 3] [--out benchmarks/scheduler_policies.json]

Prints, per policy, the median wall time of one user's request and its ratio to the quiet ``1x2`` time.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sbcore import create_model  # noqa: E402
from sbcore.analysis import attribute  # noqa: E402
from sbcore.images import load_image, preprocess  # noqa: E402
from sbcore.runtime import keep_freed_memory  # noqa: E402
from sbcore.scheduler import Scheduler  # noqa: E402

MODELS = ("resnet38.fmnist", "sb_resnet38.fmnist", "nl_resnet38.fmnist", "sbnl_resnet38.fmnist")
SAMPLES = sorted((ROOT / "assets" / "samples").glob("fmnist_*.png"))
POLICIES = {"1x2": {"policy": "fixed", "workers": 1, "threads": 2}, "2x1": {"policy": "fixed", "workers": 2, "threads": 1},
            "adaptive": {"policy": "adaptive"}}


def busy_loop(stop: multiprocessing.Event) -> None:
    """One competing process: a core kept busy until ``stop``."""
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def one_user(scheduler: Scheduler, models: dict, user: int, round_: int) -> float:
    """Seconds for one user's Compare request: four IG jobs submitted at once, then collected."""
    image = load_image(SAMPLES[(user * 7 + round_) % len(SAMPLES)].read_bytes())
    started = time.perf_counter()
    tickets = []
    for name, model in models.items():
        x = preprocess(image, model.metadata.preprocessing, False)
        tickets.append(scheduler.submit((name, user, round_, time.monotonic_ns()), lambda report, m=model, x=x: attribute(
            m, x, "integrated_gradients", baseline="black"), cache=False))
    for ticket in tickets:
        ticket.result()
    return time.perf_counter() - started


def measure(policy: str, users: int, repeats: int, models: dict) -> float:
    """Median seconds of one user's request with ``users`` users asking at once."""
    scheduler = Scheduler(2, cache_bytes=2**20, **POLICIES[policy])
    one_user(scheduler, models, 0, -1)  # warm-up
    times: list[float] = []
    for round_ in range(repeats):
        threads = [threading.Thread(target=lambda u=u: times.append(one_user(scheduler, models, u, round_)))
                   for u in range(users)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    keep_freed_memory()
    models = {name: create_model(name, pretrained=True).eval() for name in MODELS}
    rows = []
    for load in ("quiet", "one busy process"):
        stop = multiprocessing.Event()
        competitor = multiprocessing.Process(target=busy_loop, args=(stop,)) if load != "quiet" else None
        if competitor:
            competitor.start()
            time.sleep(2)  # the scheduler's load probe sees it
        try:
            for users in args.users:
                for policy in POLICIES:
                    seconds = measure(policy, users, args.repeats, models)
                    rows.append({"load": load, "users": users, "policy": policy, "seconds": round(seconds, 2)})
                    print(f"{load:<17} users={users:<2} {policy:<9} {seconds:6.2f} s", flush=True)
        finally:
            if competitor:
                stop.set()
                competitor.join()
    quiet = {(r["users"], r["policy"]): r["seconds"] for r in rows if r["load"] == "quiet"}
    print("\nratio to the quiet 1x2 time (one user: what one session took before the scheduler)")
    for row in rows:
        row["vs_quiet_1x2"] = round(row["seconds"] / quiet[(row["users"], "1x2")], 2)
        print(f"{row['load']:<17} users={row['users']:<2} {row['policy']:<9} {row['vs_quiet_1x2']:5.2f}x")
    if args.out:
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "unknown")
        args.out.write_text(json.dumps({"cpu": cpu, "cores": os.cpu_count(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
