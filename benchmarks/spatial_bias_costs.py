"""Where spatial bias's cost goes: the branch, or bn2/conv3's planes + 3 channels? Interleaved, same weights.

    python benchmarks/spatial_bias_costs.py --device cuda   # ResNet-50 224: inference b256 fp16, training b128 bf16
    python benchmarks/spatial_bias_costs.py --quick         # a smoke run on the CPU

Variants of SB-ResNet-50, each measured against the plain ResNet-50 in the same rounds:
- "SB": the model as shipped;
- "SB, constant maps": the branch replaced by fixed maps, so what is left is the concatenation and bn2/conv3
  over planes + 3 channels (a count that is no multiple of 8, which tensor-core kernels want);
- "SB, padded to x8": the maps plus zero channels up to a multiple of 8, bn2/conv3 widened with zero weights
  (the same function); "constant maps, padded to x8" likewise without the branch;
- "SB, split": bn2/conv3 split into the planes part and the maps part, summed (the same function, no concatenation).
Prints img/s, each variant over plain with a 95% bootstrap interval over rounds, and each exact variant's
largest relative deviation from SB in fp32 eval mode.
"""
from __future__ import annotations

import argparse
import time
from types import MethodType
from typing import Callable

import numpy as np
import torch
from torch import nn

from sbcore import create_model
from sbcore.analysis.throughput import format_ratio, ratio_interval, time_interleaved
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


def build(variant: str, device: torch.device) -> nn.Module:
    """SB-ResNet-50 (seed 0) as ``variant``, on ``device``, channels_last."""
    torch.manual_seed(0)
    model = create_model("sb_resnet50").to(device)
    for block in model.modules():
        if isinstance(block, Bottleneck) and block.spatial_bias is not None:
            _patch(block, variant)
    return model.to(memory_format=torch.channels_last)


def deviation(model: nn.Module, reference: nn.Module, device: torch.device) -> float:
    """Largest |model - reference| over the largest |reference| on one random batch, fp32, eval mode."""
    x = torch.randn(2, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = reference.eval()(x)
        return float((model.eval()(x) - expected).abs().max() / expected.abs().max())


def inference(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> Callable[[], None]:
    """One forward pass on ``x`` under inference mode and autocast to ``dtype``."""

    def run() -> None:
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=dtype):
            model(x)

    return run


def training(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> Callable[[], None]:
    """One SGD step of ``model`` on ``x`` (random ImageNet labels) under autocast to ``dtype``."""
    return sgd_step(model, x, torch.randint(0, 1000, (x.shape[0],), device=x.device), dtype)


def measure(label: str, calls: dict[str, Callable[[], None]], batch_size: int, rounds: int, seconds: float,
            device: torch.device) -> None:
    """Warm every call up, time them in interleaved rounds and print img/s and each one over "plain"."""
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    for call in calls.values():
        for _ in range(3):
            call()  # warm-up: cuDNN's algorithm search, allocator, folded weights
    timing = time_interleaved(calls, rounds, seconds / rounds, synchronize=synchronize)
    if timing.errors:
        raise RuntimeError(f"{label}: {timing.errors}")
    print(f"\n{label}")
    for name, times in timing.per_round.items():
        ratio = ratio_interval(times, timing.per_round["plain"]) if name != "plain" else None
        print(f"  {name:<30} {batch_size / float(np.median(times)):10.1f} img/s"
              f"{'   /plain ' + format_ratio(*ratio) if ratio else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="batch 2, 3 rounds of tiny time slices")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    keep_freed_memory()  # as the app and the CLI run
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}, torch {torch.__version__}")
    models = {"plain": create_model("resnet50").to(device).to(memory_format=torch.channels_last)}
    models.update({variant: build(variant, device) for variant in VARIANTS})
    for variant in ("SB, padded to x8", "SB, split"):
        print(f"{variant}: largest deviation from SB {deviation(models[variant], models['SB'], device):.1e} (fp32)")
    rounds, seconds = (3, 0.05) if args.quick else (10, 4.0)
    for mode, batch_size, dtype in (("inference", 256, torch.float16), ("training", 128, torch.bfloat16)):
        batch_size = 2 if args.quick else batch_size
        x = torch.randn(batch_size, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
        make = inference if mode == "inference" else training
        calls = {name: make(model.train(mode == "training"), x, dtype) for name, model in models.items()}
        measure(f"{mode} resnet50 224 batch {batch_size}, {str(dtype)[6:]} autocast, channels_last, {device}",
                calls, batch_size, rounds, seconds, device)


if __name__ == "__main__":
    main()
