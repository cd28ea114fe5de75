"""Cost accounting: parameters (total, added by spatial bias and non-local blocks, per stage) and
FLOPs counted by ``torch.utils.flop_counter`` on a real forward pass."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sbcore.budget import check_memory
from sbcore.cli_types import integer
from sbcore.errors import SBCoreError
from sbcore.factory import create_model, resolve_model
from sbcore.layers import NonLocal2d, SpatialBias, reference_formulation
from sbcore.models.registry import list_models, plain_counterpart
from sbcore.schema import MAX_CHANNELS, MAX_CLASSES, MAX_SIDE


@dataclass
class CostReport:
    """Parameter and FLOP counts of one model at one input size (FLOPs: multiply-adds x 2)."""

    architecture: str
    input_size: tuple[int, int, int]
    params: int
    params_spatial_bias: int
    params_non_local: int
    flops: int
    per_stage: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> total / spatial_bias / non_local

    @property
    def params_added(self) -> int:
        return self.params_spatial_bias + self.params_non_local


def _block_extra_params(block: nn.Module) -> tuple[int, int]:
    """(spatial-bias, non-local) parameters a block adds over its plain counterpart.

    Spatial bias costs its branch plus the N extra input channels of conv3 and the N extra
    affine channels of bn2.
    """
    spatial_bias = 0
    branch = getattr(block, "spatial_bias", None)
    if isinstance(branch, SpatialBias):
        spatial_bias = sum(p.numel() for p in branch.parameters())
        spatial_bias += branch.num_maps * block.conv3.out_channels + 2 * branch.num_maps
    non_local = getattr(block, "non_local", None)
    nl_params = sum(p.numel() for p in non_local.parameters()) if isinstance(non_local, NonLocal2d) else 0
    return spatial_bias, nl_params


def count_parameters(model: nn.Module) -> tuple[int, int, int, dict[str, dict[str, int]]]:
    """(total, spatial-bias, non-local, per-stage breakdown) parameter counts."""
    per_stage: dict[str, dict[str, int]] = {}
    total_sb = total_nl = 0
    for stage_name in getattr(model, "stage_names", []):
        stage = getattr(model, stage_name)
        sb = nl = 0
        for block in stage:
            block_sb, block_nl = _block_extra_params(block)
            sb, nl = sb + block_sb, nl + block_nl
        per_stage[stage_name] = {"total": sum(p.numel() for p in stage.parameters()), "spatial_bias": sb, "non_local": nl}
        total_sb, total_nl = total_sb + sb, total_nl + nl
    return sum(p.numel() for p in model.parameters()), total_sb, total_nl, per_stage


@torch.no_grad()
def count_flops(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass on a single (C, H, W) image, counted by FlopCounterMode on the layers as
    defined (spatial bias's inference path multiplies by zeros that the architecture does not)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, reference_formulation():
        model(torch.zeros(1, *input_size, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())


def cost_report(model: nn.Module, input_size: tuple[int, int, int] | None = None) -> CostReport:
    """Parameters and FLOPs; ``input_size`` defaults to the model's preprocessing input size.

    Raises MemoryBudgetError, before counting, when the forward pass would not fit the memory budget.
    """
    metadata = getattr(model, "metadata", None)
    size = tuple(input_size or metadata.preprocessing.input_size)
    check_memory(model, size)
    total, sb, nl, per_stage = count_parameters(model)
    architecture = metadata.architecture if metadata else type(model).__name__
    return CostReport(architecture, size, total, sb, nl, count_flops(model, size), per_stage)


def format_report(report: CostReport, baseline: CostReport | None = None) -> str:
    """Human-readable summary, with differences against a plain baseline when given."""
    c, h, w = report.input_size
    lines = [
        f"{report.architecture} at {c}x{h}x{w}",
        f"  params            {report.params / 1e6:9.3f} M",
        f"  added by SB       {report.params_spatial_bias / 1e6:9.3f} M",
        f"  added by NL       {report.params_non_local / 1e6:9.3f} M",
        f"  FLOPs             {report.flops / 1e9:9.3f} G ({report.flops / 1e6:.1f} M)",
    ]
    if baseline is not None:
        lines += [
            f"  vs {baseline.architecture}: {(report.params - baseline.params) / 1e6:+.3f} M params, "
            f"{(report.flops - baseline.flops) / 1e9:+.3f} GFLOPs",
        ]
    lines.append("  per stage (params: total / SB / NL):")
    for stage, counts in report.per_stage.items():
        lines.append(f"    {stage}: {counts['total']:,} / {counts['spatial_bias']:,} / {counts['non_local']:,}")
    return "\n".join(lines)


def _run_info(args: argparse.Namespace) -> None:
    kwargs = {k: v for k, v in (("num_classes", args.num_classes), ("in_chans", args.in_chans)) if v is not None}
    if kwargs and args.model not in list_models():
        raise SBCoreError("--num-classes and --in-chans apply to registered architectures, not to shipped weights or checkpoints.")
    model = resolve_model(args.model, **kwargs)
    channels = model.metadata.preprocessing.input_size[0]
    report = cost_report(model, (channels, args.input_size, args.input_size) if args.input_size else None)
    baseline = None
    plain = plain_counterpart(report.architecture)
    if plain != report.architecture:
        baseline = cost_report(create_model(plain, num_classes=model.num_classes, in_chans=channels), report.input_size)
    print(format_report(report, baseline))
    print(format_receptive_fields(model))


def format_receptive_fields(model: nn.Module) -> str:
    """The theoretical receptive field of every stage, one line, noting branches that see the whole input."""
    from sbcore.analysis.erf import stage_receptive_fields

    fields = ", ".join(f"{stage} {size} px" for stage, size in stage_receptive_fields(model).items())
    _, spatial_bias, non_local, _ = count_parameters(model)
    branches = [name for name, params in (("spatial bias", spatial_bias), ("non-local blocks", non_local)) if params]
    tail = f"; {' and '.join(branches)} see the whole input" if branches else ""
    return f"  theoretical receptive field (conv path): {fields}{tail}"


def configure_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore info MODEL``."""
    parser = subparsers.add_parser("info", help="parameters (total, added by SB/NL, per stage) and FLOPs of a model")
    parser.add_argument("model", help="registered architecture (sb_resnet50), shipped weights (sb_resnet38.fmnist) "
                        "or a checkpoint path")
    parser.add_argument("--input-size", type=integer(8, MAX_SIDE), default=None,
                        help=f"square input side, 8 to {MAX_SIDE} (default: the model's)")
    parser.add_argument("--num-classes", type=integer(1, MAX_CLASSES), default=None,
                        help="classifier outputs (default: the model's)")
    parser.add_argument("--in-chans", type=integer(1, MAX_CHANNELS), default=None,
                        help="input channels (default: the model's)")
    parser.set_defaults(run=_run_info)
