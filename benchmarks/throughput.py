"""Throughput of plain, spatial-bias (SB), non-local (NL) and SB+NL ResNets, in one interleaved run.

    python benchmarks/throughput.py            # the issue's settings, one thread, about 10 minutes on 2 cores
    python benchmarks/throughput.py --quick    # 3 rounds, tiny time slices, batches <= 8 (a smoke run)
    python benchmarks/throughput.py --cpu-time # time by thread CPU time: leaves out what other processes took
    python benchmarks/throughput.py --device cuda  # the GPU settings: fp16 and bf16 autocast, channels_last
    python benchmarks/throughput.py --device cuda --compile --only "batch 256, fp16"  # one setting, torch.compile
    python benchmarks/throughput.py --device cuda --channel-layout concat  # SB blocks concatenating their maps

Settings: inference in fp32 of the ResNet-38 family at 3x32x32, batch 8, and of the ResNet-50 family at
224x224, batch 1 and 8; training steps (forward, backward, SGD) of the ResNet-38 family on 1x28x28,
batch 128, channels_last, under bf16 autocast (the issue's setting) and in fp32 (what the trainer runs
on a CPU without native bf16, such as this project's machine). Within each setting the four models take turns round after
round, so a busy spell of a shared machine slows them alike. Prints img/s per model and the img/s ratios
SB/plain, SB/NL and SB+NL/NL with 95% bootstrap intervals over rounds, each SB/plain ratio against its
target, and the share of the machine other processes used meanwhile.

On a GPU (``--device cuda``) the settings follow the paper's: the ResNet-50 family at 224x224, batch 256,
under fp16 and bf16 autocast, channels_last, and at batch 1 (launch-bound); the ResNet-38 family at
3x32x32, batch 1024; training steps under bf16 autocast of both families. The issue sets no GPU targets,
so these rows report ratios without a verdict.
"""
from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sbcore import create_model
from sbcore.models import CHANNEL_LAYOUTS, set_channel_layout
from sbcore.analysis.throughput import (
    DTYPES, InterleavedTimes, format_ratio, measure_throughput, ratio_interval, time_interleaved,
)
from sbcore.runtime import keep_freed_memory

VARIANTS = ("", "sb_", "nl_", "sbnl_")
RATIOS = (("SB/plain", "sb_", ""), ("SB/NL", "sb_", "nl_"), ("SB+NL/NL", "sbnl_", "nl_"))  # img/s of one over the other


@dataclass(frozen=True)
class Setting:
    family: str
    input_size: tuple[int, int, int]
    batch_size: int
    target: float | None  # SB/plain img/s the issue asks for (None: no target, as on a GPU)
    seconds: float  # timing per model over all rounds
    training: bool = False
    dtype: str = "fp32"  # fp16 / bf16: under autocast
    channels_last: bool = False
    device: str = "cpu"

    @property
    def label(self) -> str:
        size = "x".join(map(str, self.input_size)) if self.input_size[1] < 100 else str(self.input_size[1])
        extra = "" if self.dtype == "fp32" else " autocast"
        layout = ", channels_last" if self.channels_last else ""
        return (f"{'training' if self.training else 'inference'} {self.family} {size} batch {self.batch_size}, "
                f"{self.dtype}{extra}{layout}, {self.device}")

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype to autocast to; None for fp32, which runs without autocast."""
        return None if self.dtype == "fp32" else DTYPES[self.dtype]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def random_input(self, batch_size: int | None = None) -> torch.Tensor:
        """A random batch of the setting's input size (``batch_size`` images, by default its own) on its device,
        in its memory format."""
        shape = (batch_size or self.batch_size, *self.input_size)
        return torch.randn(shape, device=self.device).contiguous(memory_format=self.memory_format)


SETTINGS = (
    Setting("resnet38", (3, 32, 32), 8, 0.95, 12.0),
    Setting("resnet50", (3, 224, 224), 1, 0.97, 16.0),
    Setting("resnet50", (3, 224, 224), 8, 0.97, 40.0),
    # a step takes seconds: one per turn
    Setting("resnet38", (1, 28, 28), 128, 0.90, 4.0, training=True, dtype="bf16", channels_last=True),
    # what the trainer runs on a CPU without native bf16, such as this one
    Setting("resnet38", (1, 28, 28), 128, 0.90, 4.0, training=True, channels_last=True),
)

GPU_SETTINGS = tuple(
    Setting(family, size, batch, None, seconds, training, dtype, channels_last=True, device="cuda")
    for family, size, batch, seconds, training, dtype in (
        ("resnet50", (3, 224, 224), 256, 6.0, False, "fp16"),
        ("resnet50", (3, 224, 224), 256, 6.0, False, "bf16"),
        ("resnet50", (3, 224, 224), 1, 3.0, False, "fp16"),
        ("resnet38", (3, 32, 32), 1024, 3.0, False, "fp16"),
        ("resnet38", (1, 28, 28), 128, 3.0, True, "bf16"),
        ("resnet50", (3, 224, 224), 128, 6.0, True, "bf16"),
    )
)


def sgd_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None, compile: bool = False
) -> Callable[[], None]:
    """One SGD step (lr 0.01, momentum 0.9) of ``model`` on the fixed batch (x, y), under autocast to ``dtype``
    (None: no autocast), through ``torch.compile`` if asked."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    forward = torch.compile(model) if compile else model
    autocast = partial(torch.autocast, x.device.type, dtype=dtype, enabled=dtype is not None)

    def step() -> None:
        with autocast():
            loss = F.cross_entropy(forward(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def build(name: str, setting: Setting, layout: str = "auto") -> nn.Module:
    """A fresh model (seed 0) for ``setting``, its SB blocks in channel ``layout``."""
    torch.manual_seed(0)
    return set_channel_layout(create_model(name, in_chans=setting.input_size[0]), layout)


def training_step(name: str, setting: Setting, compile: bool = False, layout: str = "auto") -> Callable[[], None]:
    """One SGD step of a fresh model on a fixed random batch, under autocast unless the setting is fp32."""
    device = torch.device(setting.device)
    model = build(name, setting, layout).train().to(device, memory_format=setting.memory_format)
    x = setting.random_input()
    y = torch.randint(0, 10, (setting.batch_size,), device=device)
    return sgd_step(model, x, y, setting.autocast_dtype, compile)


def time_warmed_up(
    calls: dict[str, Callable[[], None]], setting: Setting, rounds: int, clock: Callable[[], float]
) -> InterleavedTimes:
    """Warm each call up (once on a CPU; three times on a GPU, for cuDNN's algorithm search), then time them in
    interleaved rounds that share ``setting.seconds``; a failed call raises."""
    synchronize = torch.cuda.synchronize if setting.device == "cuda" else None
    for call in calls.values():
        for _ in range(1 if setting.device == "cpu" else 3):
            call()  # warm-up: allocator, autograd graph, optimizer state, folded weights
    timing = time_interleaved(calls, rounds, setting.seconds / rounds, synchronize=synchronize, clock=clock)
    if timing.errors:
        raise RuntimeError(f"{setting.label} failed: {timing.errors}")
    return timing


Ratios = dict[str, tuple[float | None, tuple[float, float] | None]]


def measure_training(
    setting: Setting, rounds: int, cpu_time: bool, compile: bool, layout: str
) -> tuple[dict[str, float], Ratios, float | None]:
    """(img/s by model, ratios with intervals, others' CPU share) of the family's training steps, interleaved."""
    steps = {prefix + setting.family: training_step(prefix + setting.family, setting, compile, layout)
             for prefix in VARIANTS}
    timing = time_warmed_up(steps, setting, rounds, time.thread_time if cpu_time else time.perf_counter)
    speeds = {name: setting.batch_size / float(np.median(t)) for name, t in timing.per_round.items()}
    ratios = {}
    for label, mine, theirs in RATIOS:
        paired = ratio_interval(timing.per_round[mine + setting.family], timing.per_round[theirs + setting.family])
        ratios[label] = paired if paired else (None, None)
    return speeds, ratios, timing.others_cpu_share


def measure_inference(
    setting: Setting, rounds: int, cpu_time: bool, compile: bool, layout: str
) -> tuple[dict[str, float], Ratios, float | None]:
    """(img/s by model, ratios with intervals, others' CPU share) of the family's inference, interleaved."""
    builders = {prefix + setting.family: partial(build, prefix + setting.family, setting, layout) for prefix in VARIANTS}
    rows = {r.model: r for r in measure_throughput(builders, [setting.batch_size], setting.input_size,
                                                   device=setting.device, dtype=setting.dtype,
                                                   channels_last=setting.channels_last, compile=compile,
                                                   min_run_time=setting.seconds,
                                                   rounds=rounds, cpu_time=cpu_time)}
    errors = [f"{r.model}: {r.error}" for r in rows.values() if r.error]
    if errors:
        raise RuntimeError(f"inference failed: {errors}")
    sb, sbnl = rows["sb_" + setting.family], rows["sbnl_" + setting.family]
    ratios = {"SB/plain": (sb.vs_baseline, sb.vs_baseline_ci), "SB/NL": (sb.vs_non_local, sb.vs_non_local_ci),
              "SB+NL/NL": (sbnl.vs_non_local, sbnl.vs_non_local_ci)}
    return {name: row.img_per_s for name, row in rows.items()}, ratios, sb.others_cpu_share


def _verdict(value: float | None, interval: tuple[float, float] | None, target: float | None) -> str:
    """'met' or 'NOT met' only when the whole interval says so; otherwise the point estimate, flagged."""
    if target is None:
        return ""
    if value is None:
        return "not measured"
    if interval and interval[0] >= target:
        return "met"
    if interval and interval[1] < target:
        return "NOT met"
    return f"{'met' if value >= target else 'NOT met'} by the estimate ({value:.3f}), but the interval spans the target"


def report(setting: Setting, speeds: dict[str, float], ratios: Ratios, busy: float | None) -> None:
    print(f"\n{setting.label}")
    for name, speed in speeds.items():
        print(f"  {name:<16} {speed:9.2f} img/s")
    for label, (value, interval) in ratios.items():
        verdict = _verdict(value, interval, setting.target) if label == "SB/plain" else ""
        target = f"   target >= {setting.target:.2f}: {verdict}" if verdict else ""
        print(f"  {label:<9} {format_ratio(value, interval)}{target}")
    if busy is not None:
        print(f"  other processes used {busy:.0%} of the machine's cores meanwhile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds, tiny time slices, batches of at most 8: checks the script runs")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per setting (default: 10, training 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu: the issue's settings (default); cuda: the GPU settings")
    parser.add_argument("--compile", action="store_true", help="run every model through torch.compile")
    parser.add_argument("--only", default="", metavar="TEXT",
                        help='only the settings whose printed label contains TEXT, e.g. "training" or "batch 8,"')
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by this thread's CPU time instead of wall time (needs --threads 1): on a shared "
                             "machine it leaves out the time other processes had the core")
    parser.add_argument("--channel-layout", choices=list(CHANNEL_LAYOUTS), default="auto",
                        help="how SB blocks join their maps to the 3x3 conv output: " + "; ".join(
                            f"{k}: {v}" for k, v in CHANNEL_LAYOUTS.items()) + " (default: auto)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA GPU, and torch sees none")
    if args.device == "cuda" and args.cpu_time:
        parser.error("--cpu-time measures the CPU; leave it out with --device cuda")
    settings = SETTINGS if args.device == "cpu" else GPU_SETTINGS
    if args.quick:
        settings = [replace(s, seconds=0.01, batch_size=min(s.batch_size, 8)) for s in settings]
    settings = [s for s in settings if args.only in s.label]
    if not settings:
        parser.error(f"no setting's label contains {args.only!r}")
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    kept = keep_freed_memory()  # as the app and the CLI run
    machine = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine}, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}, interleaved rounds, "
          f"{'thread CPU time' if args.cpu_time else 'wall time'}{', torch.compile' if args.compile else ''}"
          f"{', freed memory kept' if kept else ''}, SB channel layout {args.channel_layout}")
    for setting in settings:
        rounds = 3 if args.quick else args.rounds or (4 if setting.training else 10)
        measure = measure_training if setting.training else measure_inference
        report(setting, *measure(setting, rounds, args.cpu_time, args.compile, args.channel_layout))


if __name__ == "__main__":
    main()
