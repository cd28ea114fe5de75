"""Model cards: a Markdown summary of a model built from its metadata and measured cost."""
from __future__ import annotations

import argparse

from torch import nn

from sbcore.cli_types import output_file
from sbcore.cost import cost_report
from sbcore.factory import resolve_model
from sbcore.lab.results import distance_accuracy, reach
from sbcore.output_files import write_text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def model_card_markdown(model: nn.Module) -> str:
    """Architecture, cost, test accuracy (top-1/top-5, per class, confusion matrix) and recipe, as Markdown."""
    meta = model.metadata
    cost = cost_report(model)
    c, h, w = cost.input_size
    lines = [f"# {meta.pretrained or meta.architecture}", ""]
    lines += ["## Architecture", ""]
    lines += _table(
        ["architecture", "input", "classes", "params", "added by SB", "added by NL", "FLOPs"],
        [[meta.architecture, f"{c}x{h}x{w}", str(len(meta.class_names)), f"{cost.params / 1e6:.3f} M",
          f"{cost.params_spatial_bias / 1e6:.3f} M", f"{cost.params_non_local / 1e6:.3f} M",
          f"{cost.flops / 1e6:.1f} M"]],
    )
    lines += ["", f"Options: `{meta.model_kwargs}`; spatial-bias and non-local settings: {_placement(model)}.", ""]
    test = meta.metrics.get("test")
    if test:
        lines += ["## Test accuracy", "", f"Top-1 **{test['top1']:.2f}%**, top-5 {test['top5']:.2f}% on "
                  f"{test['samples']} images ({meta.metrics.get('test_split', 'test split')}); "
                  f"held-out validation top-1 {meta.metrics.get('val_top1', float('nan')):.2f}%.", ""]
        lines += _table(["class", "accuracy"], [[n, f"{a:.1f}%"] for n, a in zip(meta.class_names, test["per_class"])])
        lines += ["", "Confusion matrix (rows: true class, columns: predicted):", ""]
        short = [n[:8] for n in meta.class_names]
        lines += _table(["true \\ pred", *short], [[s, *map(str, row)] for s, row in zip(short, test["confusion"])])
        lines.append("")
    if test and test.get("groups"):
        lines += _distance_section(model)
    if meta.metrics.get("interventions"):
        lines += _intervention_section(meta.metrics["interventions"])
    if meta.training:
        recipe = meta.training
        lines += ["## Training", ""]
        keys = ["dataset", "epochs", "batch_size", "peak_lr", "optimizer", "momentum", "weight_decay", "schedule",
                "warmup_epochs", "label_smoothing", "autocast", "channels_last", "seed", "train_images",
                "val_images", "world_size", "wall_seconds", "hardware", "torch"]
        if recipe.get("optimizer") == "AdamW":
            keys.remove("momentum")  # SGD's; AdamW runs with its default betas
        lines += _table(["setting", "value"], [[k, str(recipe[k])] for k in keys if k in recipe])
        lines.append("")
    return "\n".join(lines)


def _distance_section(model: nn.Module) -> list[str]:
    """Accuracy per distance bin with 95% intervals, the receptive-field bound, and the mean and spread over seeds."""
    result = distance_accuracy(model)
    field, far = reach(model)
    lines = ["## Accuracy by distance", "",
             f"Test accuracy per bin of the Chebyshev distance between the two item centres, with Wilson 95% "
             f"intervals. The conv path's last-stage receptive field is {field} px: from {far} px on, no unit "
             "of it sees both items, so a plain network adds them up there and is bounded at 75% (3 of the 4 pair "
             "types; chance is 50%).", ""]
    header = ["distance bin", "accuracy", "95% interval", "samples"]
    rows = [[b.removeprefix("distance "), f"{a:.1f}%" if n else "-", f"{lo:.1f}-{hi:.1f}%", str(n)]
            for b, a, (lo, hi), n in zip(result.bins, result.accuracy, result.ci95, result.samples)]
    if result.seeds:
        header.append(f"mean ± sd over seeds {', '.join(map(str, result.seeds))}")
        for row, m, sd in zip(rows, result.seed_mean, result.seed_std):
            row.append(f"{m:.1f} ± {sd:.1f}%")
        rows.append(["all", f"{result.overall:.1f}%", "", str(sum(result.samples)),
                     f"{result.overall_seed_mean:.1f} ± {result.overall_seed_std:.1f}%"])
    return lines + _table(header, rows) + [""]


def _intervention_section(interventions: list[dict]) -> list[str]:
    """Accuracy change when each component is switched off, per seed, with paired intervals and patching scores."""
    seeds = sorted({i["seed"] for i in interventions})
    labels = list(dict.fromkeys(i["label"] for i in interventions))
    by_key = {(i["label"], i["seed"]): i for i in interventions}
    first = interventions[0]
    lines = ["## Switching global context off", "",
             f"Accuracy change (points, ablated minus intact, Newcombe paired 95% interval) with each component's "
             f"contribution replaced by its {first['mode']} over 512 training canvases, on {first['samples']} test "
             "canvases (all bins, then the far bin beyond a plain network's reach), and the share of the same/different "
             "effect each carries when patched between far counterfactual pairs (bootstrap 95% interval). "
             "`benchmarks/lab_interventions.py` measures it; `sbcore ablate` reproduces any row.", ""]
    header = ["switched off", *[f"seed {s}" for s in seeds]]

    def cell(entry: dict | None) -> str:
        if entry is None:
            return "-"
        text = (f"all {entry['change']:+.1f} [{entry['change_ci95'][0]:+.1f}, {entry['change_ci95'][1]:+.1f}]; "
                f"far {entry['far_change']:+.1f} [{entry['far_change_ci95'][0]:+.1f}, {entry['far_change_ci95'][1]:+.1f}]")
        if entry.get("patching") is not None:
            low, high = entry["patching_ci95"]
            text += f"; carries {entry['patching']:.2f} [{low:.2f}, {high:.2f}]"
        return text

    return lines + _table(header, [[label, *[cell(by_key.get((label, s))) for s in seeds]] for label in labels]) + [""]


def _placement(model: nn.Module) -> str:
    sb_blocks = [n for n, m in model.named_modules() if n.endswith(".spatial_bias") and m is not None]
    nl_blocks = [n.rsplit(".", 1)[0] for n, m in model.named_modules() if n.endswith(".non_local")]
    parts = []
    if sb_blocks:
        branch = model.get_submodule(sb_blocks[0])
        stages = sorted({n.split(".")[0] for n in sb_blocks})
        parts.append(f"SB in {', '.join(stages)} ({len(sb_blocks)} blocks), K={branch.reduced_channels}, "
                     f"R={branch.grid_size}, N={branch.num_maps}")
    if nl_blocks:
        parts.append(f"NL after {', '.join(nl_blocks)}")
    return "; ".join(parts) or "none (plain ResNet)"


def _run_card(args: argparse.Namespace) -> None:
    text = model_card_markdown(resolve_model(args.model))
    if args.out:
        write_text(args.out, text)
    else:
        print(text)


def configure_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore card MODEL``."""
    parser = subparsers.add_parser("card", help="print or write a model card (Markdown) from a checkpoint's metadata")
    parser.add_argument("model", help="shipped weights (e.g. sb_resnet38.fmnist) or a checkpoint path")
    parser.add_argument("--out", type=output_file, default=None, help="write the card to this file instead of printing it")
    parser.set_defaults(run=_run_card)
