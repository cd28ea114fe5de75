"""Where spatial bias's cost goes: the branch, or bn2/conv3's planes + 3 channels? Interleaved, same weights.

    python benchmarks/spatial_bias_costs.py                 # CPU: issue 10's settings, one thread
    python benchmarks/spatial_bias_costs.py --cpu-time      # the same, timed by thread CPU time
    python benchmarks/spatial_bias_costs.py --device cuda   # ResNet-50 224: inference b256 fp16, training b128 bf16
    python benchmarks/spatial_bias_costs.py --quick         # a smoke run on the CPU

Variants of the SB model, each measured against the plain model in the same rounds:
- "SB": the model as shipped;
- "SB, constant maps": the branch replaced by fixed maps, so what is left is the concatenation and bn2/conv3
  over planes + 3 channels (a count that is no multiple of 8, which tensor-core kernels want): the most any
  faster branch could reach;
- "SB, padded to x8": the maps plus zero channels up to a multiple of 8, bn2/conv3 widened with zero weights
  (the same function); "constant maps, padded to x8" likewise without the branch;
- "SB, split": bn2/conv3 split into the planes part and the maps part, summed (the same function, no concatenation).
Settings on the CPU: inference in fp32 of ResNet-38 at 3x32x32, batch 8, and of ResNet-50 at 224, batch 1;
training steps of ResNet-38 on 1x28x28, batch 128, fp32, channels_last. Prints img/s, each variant over plain
with a 95% bootstrap interval over rounds, the FLOPs ratio plain/SB (the ratio a machine bound by arithmetic
alone would show), and each exact variant's largest relative deviation from SB in fp32 eval mode.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from types import MethodType
from typing import Callable

import numpy as np
import torch
from torch import nn

from sbcore import create_model
from sbcore.analysis.throughput import format_ratio, ratio_interval, time_interleaved
from sbcore.cost import count_flops
from sbcore.models.resnet import Bottleneck, _like
from sbcore.runtime import keep_freed_memory
from throughput import sgd_step  # benchmarks/throughput.py, beside this script

VARIANTS = ("SB", "SB, constant maps", "SB, padded to x8", "constant maps, padded to x8", "SB, split")


def _copy_bn(source: nn.BatchNorm2d, channels: slice, target: nn.BatchNorm2d, into: slice) -> None:
    """``target``'s affine parameters and statistics at ``into`` := ``source``'s at ``channels``."""
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(target, name)[into] = getattr(source, name)[channels]


def _widened(block: Bottleneck, extra: int) -> tuple[nn.BatchNorm2d, nn.Conv2d]:
    """bn2 and conv3 with ``extra`` more input channels that compute nothing (zero input, zero weights)."""
    used = slice(0, block.bn2.num_features)
    bn2 = nn.BatchNorm2d(block.bn2.num_features + extra).to(block.bn2.weight.device)
    conv3 = nn.Conv2d(bn2.num_features, block.conv3.out_channels, 1, bias=False).to(block.conv3.weight.device)
    _copy_bn(block.bn2, used, bn2, used)
    with torch.no_grad():
        conv3.weight.zero_()[:, used] = block.conv3.weight
    return bn2, conv3


def _split(block: Bottleneck) -> tuple[nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.Conv2d]:
    """(bn2, conv3) over the planes channels and over the maps, whose sum is bn2/conv3 over their concatenation."""
    planes = block.conv2.out_channels
    device = block.conv3.weight.device
    parts = []
    for channels in (slice(0, planes), slice(planes, block.bn2.num_features)):
        count = channels.stop - channels.start
        bn, conv = nn.BatchNorm2d(count).to(device), nn.Conv2d(count, block.conv3.out_channels, 1, bias=False).to(device)
        _copy_bn(block.bn2, channels, bn, slice(None))
        with torch.no_grad():
            conv.weight.copy_(block.conv3.weight[:, channels])
        parts += [bn, conv]
    return tuple(parts)


def _patch(block: Bottleneck, variant: str) -> None:
    """Give ``block`` the forward of ``variant`` (the shipped forward for "SB"); SB blocks without non-local only."""
    assert block.non_local is None, "the variants' forward leaves out the non-local block"
    constant, padded = "constant" in variant, "padded" in variant
    extra = -block.bn2.num_features % 8 if padded else 0
    if padded:
        block.bn2, block.conv3 = _widened(block, extra)
    if variant == "SB, split":
        block.bn2a, block.conv3a, block.bn2b, block.conv3b = _split(block)
    cache: dict[tuple, torch.Tensor] = {}

    def fixed(shape: tuple[int, ...], like: torch.Tensor, random: bool) -> torch.Tensor:
        key = (shape, like.dtype, random)
        if key not in cache:
            make = torch.randn if random else torch.zeros
            cache[key] = _like(make(shape, device=like.device), like)
        return cache[key]

    def forward(self: Bottleneck, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        reduced = self.spatial_bias_input(x)
        out = self.conv2(reduced)
        batch, _, height, width = out.shape
        maps_shape = (batch, self.spatial_bias.num_maps, height, width)
        if constant:
            maps = fixed(maps_shape, out, random=True)
        else:
            maps = _like(self.spatial_bias.upsampled_maps(reduced, (height, width)), out)
        if variant == "SB, split":
            mixed = self.conv3a(self.relu(self.bn2a(out))) + self.conv3b(self.relu(self.bn2b(maps)))
            return self.relu(self.bn3(mixed) + identity)
        parts = [out, maps] + ([fixed((batch, extra, height, width), out, random=False)] if extra else [])
        return self._residual(torch.cat(parts, dim=1), identity)

    if variant != "SB":
        block.forward = MethodType(forward, block)


@dataclass(frozen=True)
class Case:
    """One setting: a model family, inference or training, an input and its batch, autocast dtype (None: fp32)."""

    family: str
    mode: str  # "inference" or "training"
    input_size: tuple[int, int, int]
    batch_size: int
    dtype: torch.dtype | None
    channels_last: bool
    rounds: int
    seconds: float  # per variant over all rounds

    def label(self, device: torch.device) -> str:
        size = "x".join(map(str, self.input_size))
        precision = f"{str(self.dtype)[6:]} autocast" if self.dtype else "fp32"
        layout = ", channels_last" if self.channels_last else ""
        return f"{self.mode} {self.family} {size} batch {self.batch_size}, {precision}{layout}, {device}"


CASES = {
    "cpu": (
        Case("resnet38", "inference", (3, 32, 32), 8, None, False, 20, 12.0),
        Case("resnet50", "inference", (3, 224, 224), 1, None, False, 10, 16.0),
        Case("resnet38", "training", (1, 28, 28), 128, None, True, 8, 8.0),
    ),
    "cuda": (
        Case("resnet50", "inference", (3, 224, 224), 256, torch.float16, True, 10, 4.0),
        Case("resnet50", "training", (3, 224, 224), 128, torch.bfloat16, True, 10, 4.0),
    ),
}


def build(variant: str, case: Case, device: torch.device) -> nn.Module:
    """The case's SB model (seed 0) as ``variant``, on ``device``, in the case's memory format."""
    torch.manual_seed(0)
    model = create_model("sb_" + case.family, in_chans=case.input_size[0]).to(device)
    for block in model.modules():
        if isinstance(block, Bottleneck) and block.spatial_bias is not None:
            _patch(block, variant)
    return model.to(memory_format=_layout(case))


def _layout(case: Case) -> torch.memory_format:
    return torch.channels_last if case.channels_last else torch.contiguous_format


def deviation(model: nn.Module, reference: nn.Module, case: Case, device: torch.device) -> float:
    """Largest |model - reference| over the largest |reference| on one random batch, fp32, eval mode."""
    x = torch.randn(2, *case.input_size, device=device).contiguous(memory_format=_layout(case))
    with torch.no_grad():
        expected = reference.eval()(x)
        return float((model.eval()(x) - expected).abs().max() / expected.abs().max())


def inference(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], None]:
    """One forward pass on ``x`` under inference mode and autocast to ``dtype`` (None: fp32)."""

    def run() -> None:
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            model(x)

    return run


def training(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], None]:
    """One SGD step of ``model`` on ``x`` (random labels) under autocast to ``dtype`` (None: fp32)."""
    labels = torch.randint(0, model.fc.out_features, (x.shape[0],), device=x.device)
    return sgd_step(model, x, labels, dtype)


def measure(label: str, calls: dict[str, Callable[[], None]], case: Case, rounds: int, seconds: float,
            device: torch.device, clock: Callable[[], float]) -> None:
    """Warm every call up, time them in interleaved rounds and print img/s and each one over "plain"."""
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    for call in calls.values():
        for _ in range(3 if device.type == "cuda" else 1):
            call()  # warm-up: cuDNN's algorithm search, allocator, folded weights
    timing = time_interleaved(calls, rounds, seconds / rounds, synchronize=synchronize, clock=clock)
    if timing.errors:
        raise RuntimeError(f"{label}: {timing.errors}")
    print(f"\n{label}")
    for name, times in timing.per_round.items():
        ratio = ratio_interval(times, timing.per_round["plain"]) if name != "plain" else None
        print(f"  {name:<30} {case.batch_size / float(np.median(times)):10.1f} img/s"
              f"{'   /plain ' + format_ratio(*ratio) if ratio else ''}")
    if timing.others_cpu_share is not None:
        print(f"  other processes used {timing.others_cpu_share:.0%} of the machine's cores meanwhile")


def run_case(case: Case, device: torch.device, quick: bool, clock: Callable[[], float]) -> None:
    """Build plain and every variant for ``case``, check the exact ones, and time them all interleaved."""
    layout = _layout(case)
    plain = create_model(case.family, in_chans=case.input_size[0]).to(device).to(memory_format=layout)
    models = {"plain": plain, **{variant: build(variant, case, device) for variant in VARIANTS}}
    label = case.label(device)
    for variant in ("SB, padded to x8", "SB, split"):
        print(f"{label}: {variant}: largest deviation from SB "
              f"{deviation(models[variant], models['SB'], case, device):.1e} (fp32)")
    flops = count_flops(plain, case.input_size) / count_flops(models["SB"], case.input_size)
    batch_size = min(case.batch_size, 2) if quick else case.batch_size
    case = replace(case, batch_size=batch_size)
    x = torch.randn(batch_size, *case.input_size, device=device).contiguous(memory_format=layout)
    make = inference if case.mode == "inference" else training
    calls = {name: make(model.train(case.mode == "training"), x, case.dtype) for name, model in models.items()}
    rounds, seconds = (3, 0.05) if quick else (case.rounds, case.seconds)
    measure(label, calls, case, rounds, seconds, device, clock)
    print(f"  FLOPs plain/SB {flops:.3f}: the SB/plain a machine bound by arithmetic alone would show")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="batch <= 2, 3 rounds of tiny time slices")
    parser.add_argument("--only", default="", metavar="TEXT", help="only the settings whose label contains TEXT")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by this thread's CPU time (CPU only): leaves out what other processes took")
    args = parser.parse_args()
    if args.cpu_time and args.device != "cpu":
        parser.error("--cpu-time measures CPU work; it does not apply to --device cuda")
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    if device.type == "cpu":
        torch.set_num_threads(1)  # as throughput.py measures
    keep_freed_memory()  # as the app and the CLI run
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU, 1 thread'}, torch {torch.__version__}, "
          f"{'thread CPU time' if args.cpu_time else 'wall time'}")
    for case in CASES[args.device]:
        if args.only in case.label(device):
            run_case(case, device, args.quick, time.thread_time if args.cpu_time else time.perf_counter)


if __name__ == "__main__":
    main()
