"""Where spatial bias's cost goes: the branch, or bn2/conv3's planes + 3 channels? Interleaved, same weights.

    python benchmarks/spatial_bias_costs.py                 # CPU: issue 10's settings, one thread
    python benchmarks/spatial_bias_costs.py --cpu-time      # the same, timed by thread CPU time
    python benchmarks/spatial_bias_costs.py --threads 2     # the same with two torch threads (as the app runs here)
    python benchmarks/spatial_bias_costs.py --device cuda   # ResNet-50 224: inference b256 fp16, training b128 bf16
    python benchmarks/spatial_bias_costs.py --quick         # a smoke run on the CPU

Variants of the SB model, each measured against the plain model in the same rounds:
- "SB": the model as shipped, concatenating its maps;
- "SB, padded layout": the model's padded channel layout (``sbcore.layers.padded_layout``: conv2 widened with zero
  filters to a multiple of 8, the maps written into its spare channels, no concatenation; the same function);
- "SB, padded layout + fused branch" (GPU inference): also the branch's reduction, BN, ReLU and pooling as one
  Triton kernel (``sbcore.layers.fused_branch``);
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
from dataclasses import replace
from types import MethodType
from typing import Callable

import numpy as np
import torch
from torch import nn

from sbcore import create_model
from sbcore.analysis.throughput import format_ratio, ratio_interval
from sbcore.cost import count_flops
from sbcore.models import set_channel_layout, set_fused_branch
from sbcore.models.resnet import Bottleneck, _like
from sbcore.runtime import keep_freed_memory
from throughput import Setting, sgd_step, time_warmed_up  # benchmarks/throughput.py, beside this script

VARIANTS = ("SB", "SB, padded layout", "SB, constant maps", "SB, padded to x8", "constant maps, padded to x8", "SB, split")
FUSED = "SB, padded layout + fused branch"  # GPU inference only: the Triton kernel has no backward, no fast CPU form
LAYOUT_VARIANTS = {"SB": "concat", "SB, padded layout": "padded", FUSED: "padded"}  # the model's own forward


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

    if variant not in LAYOUT_VARIANTS:
        block.forward = MethodType(forward, block)


CASES = {  # (setting, rounds); seconds are per variant over all rounds, and no setting has a target
    "cpu": (
        (Setting("resnet38", (3, 32, 32), 8, None, 12.0), 20),
        (Setting("resnet50", (3, 224, 224), 1, None, 16.0), 10),
        (Setting("resnet38", (1, 28, 28), 128, None, 8.0, training=True, channels_last=True), 8),
    ),
    "cuda": (
        (Setting("resnet50", (3, 224, 224), 256, None, 4.0, dtype="fp16", channels_last=True, device="cuda"), 10),
        (Setting("resnet50", (3, 224, 224), 128, None, 4.0, training=True, dtype="bf16", channels_last=True,
                 device="cuda"), 10),
    ),
}


def build(variant: str, setting: Setting) -> nn.Module:
    """The setting's SB model (seed 0) as ``variant``, on its device, in its memory format."""
    torch.manual_seed(0)
    model = create_model("sb_" + setting.family, in_chans=setting.input_size[0]).to(setting.device)
    set_channel_layout(model, LAYOUT_VARIANTS.get(variant, "concat"))
    set_fused_branch(model, variant == FUSED)
    for block in model.modules():
        if isinstance(block, Bottleneck) and block.spatial_bias is not None:
            _patch(block, variant)
    return model.to(memory_format=setting.memory_format)


def deviation(model: nn.Module, reference: nn.Module, setting: Setting) -> float:
    """Largest |model - reference| over the largest |reference| on one random batch, fp32, eval mode."""
    x = setting.random_input(2)
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


def run_case(setting: Setting, rounds: int, quick: bool, clock: Callable[[], float]) -> None:
    """Build plain and every variant for ``setting``, check the exact ones, time them all interleaved, and print
    img/s and each one over plain."""
    plain = create_model(setting.family, in_chans=setting.input_size[0]).to(setting.device)
    fused = (FUSED,) if setting.device == "cuda" and not setting.training else ()
    models = {"plain": plain.to(memory_format=setting.memory_format),
              **{variant: build(variant, setting) for variant in VARIANTS + fused}}
    for variant in ("SB, padded layout", *fused, "SB, padded to x8", "SB, split"):
        print(f"{setting.label}: {variant}: largest deviation from SB "
              f"{deviation(models[variant], models['SB'], setting):.1e} (fp32)")
    flops = count_flops(plain, setting.input_size) / count_flops(models["SB"], setting.input_size)
    timed = replace(setting, batch_size=min(setting.batch_size, 2), seconds=0.05) if quick else setting
    x = timed.random_input()
    make = training if setting.training else inference
    calls = {name: make(model.train(setting.training), x, setting.autocast_dtype) for name, model in models.items()}
    timing = time_warmed_up(calls, timed, 3 if quick else rounds, clock)
    print(f"\n{setting.label}")
    for name, times in timing.per_round.items():
        ratio = ratio_interval(times, timing.per_round["plain"]) if name != "plain" else None
        print(f"  {name:<30} {timed.batch_size / float(np.median(times)):10.1f} img/s"
              f"{'   /plain ' + format_ratio(*ratio) if ratio else ''}")
    if timing.others_cpu_share is not None:
        print(f"  other processes used {timing.others_cpu_share:.0%} of the machine's cores meanwhile")
    print(f"  FLOPs plain/SB {flops:.3f}: the SB/plain a machine bound by arithmetic alone would show")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="batch <= 2, 3 rounds of tiny time slices")
    parser.add_argument("--only", default="", metavar="TEXT", help="only the settings whose label contains TEXT")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by this thread's CPU time (CPU only): leaves out what other processes took")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default: 1)")
    args = parser.parse_args()
    if args.cpu_time and args.device != "cpu":
        parser.error("--cpu-time measures CPU work; it does not apply to --device cuda")
    if args.cpu_time and args.threads != 1:
        parser.error("--cpu-time measures one thread; leave out --threads")
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the app and the CLI run
    machine = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine}, torch {torch.__version__}, "
          f"{'thread CPU time' if args.cpu_time else 'wall time'}")
    for setting, rounds in CASES[args.device]:
        if args.only in setting.label:
            run_case(setting, rounds, args.quick, time.thread_time if args.cpu_time else time.perf_counter)


if __name__ == "__main__":
    main()
