"""``sbcore ablate``: switch spatial-bias maps and non-local blocks off on a test set and measure what it causes."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader
from tqdm import tqdm

from sbcore.analysis.ablation import (
    AblationReport, AblationResult, GroupChange, batch_size_for, evaluate_ablations, model_test_data,
    training_reference_means,
)
from sbcore.analysis import figures
from sbcore.analysis.cli import (
    MODEL_HELP, TERMINAL_ONLY, _add_output_options, _tqdm_progress, load_model, write_csv_rows,
)
from sbcore.analysis.interventions import (
    INTERVENTION_MODES, REFERENCE_SIZE, Component, ablation_settings, resolve_components, stage_components,
)
from sbcore.cli_types import integer
from sbcore.data import DatasetSpec, limited_test_split, sample_groups
from sbcore.errors import SBCoreError
from sbcore.lab.patching import PatchingScore, counterfactual_pairs, patching_scores
from sbcore.lab.same_different import SameDifferentCanvases
from sbcore.output_files import write_text

BATCH_SIZE = 100  # test images per forward pass
CLI_MODES = ("mean", "zero", "resample")  # patch needs pairs of inputs: --patch


def chosen_settings(model: torch.nn.Module, args: argparse.Namespace) -> list[tuple[str, list[Component]]]:
    """The interventions the options ask for: ``--blocks`` as one setting, ``--stages`` as one, else each block."""
    if args.blocks:
        found = resolve_components(model, args.blocks)
        return [(" + ".join(c.label for c in found), found)]
    if args.stages:
        found = stage_components(model, args.stages)
        return [(f"stage {' + '.join(map(str, args.stages))}", found)]
    return ablation_settings(model)


def ablation_figure(report: AblationReport) -> Figure:
    """Accuracy per group, intact and under each intervention, with 95% intervals."""
    figure = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = figure.subplots()
    first = report.results[0]
    shown = [i for i, g in enumerate(first.groups) if g.samples]  # a class absent from a --limit subset is left out
    names = [first.groups[i].name.removeprefix("distance ").removesuffix(" px") for i in shown]
    positions = range(len(names))

    def draw(groups: list[GroupChange], value: str, **style) -> None:
        values = [getattr(groups[i], value) for i in shown]
        intervals = [getattr(groups[i], f"{value}_ci95") for i in shown]
        ax.errorbar(positions, values, yerr=[[v - lo for v, (lo, _) in zip(values, intervals)],
                                             [hi - v for v, (_, hi) in zip(values, intervals)]], **style)

    draw(first.groups, "intact", capsize=3, color="black", linewidth=2, label="intact")
    for result in report.results:
        draw(result.groups, "ablated", capsize=2, marker="o", markersize=3, label=f"{result.label} off")
    ax.set_xticks(list(positions), names, rotation=30 if len(names) > 5 else 0)
    ax.set_xlabel("distance between item centres (px)" if first.groups[0].name.startswith("distance") else "class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{report.model}: {report.mode} ablation, {report.samples} test samples", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    return figure


def _percent(value: float | None) -> str:
    return "no samples" if value is None else f"{value:.1f}%"


def _change_cell(group: GroupChange) -> str:
    if group.change is None:
        return "no samples"
    low, high = group.change_ci95
    return f"{group.ablated:5.1f}% ({group.change:+5.1f} [{low:+.1f}, {high:+.1f}])"


def format_ablation_table(results: list[AblationResult]) -> str:
    """Accuracy per group under each intervention and its change from intact, with the paired 95% interval."""
    names = [g.name.removeprefix("distance ") for g in results[0].groups] + ["all"]
    width = max(len(r.label) for r in results) + 6
    lines = [f"{'':<{width}}" + "".join(f" {name:>27}" for name in names)]
    intact = [*results[0].groups, results[0].overall]
    lines.append(f"{'intact':<{width}}" + "".join(f" {_percent(g.intact):>27}" for g in intact))
    for result in results:
        cells = [_change_cell(g) for g in [*result.groups, result.overall]]
        lines.append(f"{result.label + ' off':<{width}}" + "".join(f" {c:>27}" for c in cells))
    return "\n".join(lines)


def _score(score: PatchingScore) -> str:
    return "-" if score.score is None else f"{score.score:.3f}"


def _score_interval(score: PatchingScore) -> str:
    return "no effect" if score.ci95 is None else f"[{score.ci95[0]:.3f}, {score.ci95[1]:.3f}]"


def format_patching_table(scores: list[PatchingScore]) -> str:
    """One line per patched setting: the share of the same/different effect it carries."""
    width = max(len(s.label) for s in scores) + 2
    lines = [f"{'patched':<{width}} {'carries':>8} {'95% interval':>16} {'diff<-same':>11} {'same<-diff':>11}"]
    lines += [f"{s.label:<{width}} {_score(s):>8} {_score_interval(s):>16} "
              f"{s.shift_towards_same:>+11.3f} {s.shift_towards_different:>+11.3f}" for s in scores]
    return "\n".join(lines)


def _write_csv(path: Path, results: list[AblationResult]) -> None:
    header = ["intervention", "mode", "group", "samples", "intact", "ablated", "change", "change_low", "change_high"]
    write_csv_rows(path, header, [[result.label, result.mode, g.name, g.samples, g.intact, g.ablated, g.change,
                                   *g.change_ci95] for result in results for g in [*result.groups, result.overall]])


def _patching(model: torch.nn.Module, spec: DatasetSpec, settings, args: argparse.Namespace) -> list[PatchingScore]:
    task = spec.test.task
    low, high = args.patch_distance
    bins = {b for b, centre in enumerate(task.bin_centres) if low <= centre <= high}
    indices = spec.test.indices_in_bins(bins)[: args.patch_pairs]
    if not indices:
        raise SBCoreError(f"No test canvas has its distance bin's centre within {low}-{high} px.")
    different, same = counterfactual_pairs(spec.test, indices)
    with tqdm(desc="patch", unit="step", disable=TERMINAL_ONLY) as bar:
        return patching_scores(model, different, same, settings, progress=_tqdm_progress(bar))


def _run_ablate(args: argparse.Namespace) -> None:
    model, out = load_model(args.model, args.device), Path(args.out)
    settings = chosen_settings(model, args)  # checks the names before any data is read
    name, spec = model_test_data(model, args.data)
    if args.patch and not isinstance(spec.test, SameDifferentCanvases):
        raise SBCoreError(f"--patch needs the same-different lab task (counterfactual canvas pairs); {args.model} "
                          f"was trained on {name}.")
    test = limited_test_split(spec, args.limit)
    groups = sample_groups(test)
    if groups is None:  # per class
        labels = torch.cat([batch_labels for _, batch_labels in DataLoader(test, 1000)])
        groups_index, group_names = labels.tolist(), list(model.metadata.class_names)
    else:
        groups_index, group_names = groups.index, groups.names
    means = training_reference_means(model, spec) if args.mode == "mean" else None
    with tqdm(desc=f"ablate ({args.mode})", unit="image", disable=TERMINAL_ONLY) as bar:
        results = evaluate_ablations(
            model, DataLoader(test, batch_size_for(len(test), args.mode, BATCH_SIZE)), settings, args.mode,
            groups=groups_index, group_names=group_names,
            means=means, progress=_tqdm_progress(bar), total=len(test), seed=args.seed,
        )
    reference = f"{min(REFERENCE_SIZE, len(spec.train_eval))} {name} training images" if args.mode == "mean" else ""
    report = AblationReport(args.model, args.mode, len(test), reference, results)
    document = asdict(report)
    print(f"{args.model}: {args.mode} ablation on {len(test)} {name} test samples"
          + (f" (means over {reference})" if reference else ""))
    print(format_ablation_table(results))
    if args.patch:
        scores = _patching(model, spec, settings, args)
        document["patching"] = {"distance_px": list(args.patch_distance), "scores": [asdict(s) for s in scores]}
        print(f"\npatching on {scores[0].pairs} counterfactual pairs at {args.patch_distance[0]}-"
              f"{args.patch_distance[1]} px (share of the same/different effect each setting carries)")
        print(format_patching_table(scores))
    write_text(out / "ablation.json", json.dumps(document, indent=2, allow_nan=False) + "\n")
    _write_csv(out / "ablation.csv", results)
    figures.save(ablation_figure(report), out / "ablation.png")
    print(f"wrote {out}/ablation.json, .csv, .png")


def _distance_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        values = int(low), int(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a distance range such as 94-108, got {text!r}") from None
    if not 0 <= values[0] <= values[1] <= 1000:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH with 0 <= LOW <= HIGH <= 1000, got {text!r}")
    return values


def configure_ablate(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore ablate MODEL [--blocks ... | --stages ... | --each-block] --out DIR``."""
    parser = subparsers.add_parser(
        "ablate", help="switch spatial-bias maps or non-local blocks off and measure test accuracy",
        description="Evaluate a trained SB / NL / SB+NL checkpoint on its test set intact and with global-context "
        "components switched off (weights unchanged): a block's spatial-bias maps are named by the block "
        "(layer1.0), a non-local block as layer2.0.non_local. Modes: " + "; ".join(
            f"{m}: {INTERVENTION_MODES[m]}" for m in CLI_MODES) + f" (mean: over the first {REFERENCE_SIZE} "
        "training images). Reports accuracy per distance bin (lab models) or per class, intact and ablated, with "
        "Wilson 95% intervals and Newcombe's paired interval on the change. Writes ablation.json, .csv and .png.",
    )
    parser.add_argument("model", help=MODEL_HELP)
    _add_output_options(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--blocks", nargs="+", metavar="BLOCK", help="switch these off together (layer1.0 layer3.1.non_local)")
    which.add_argument("--stages", nargs="+", type=integer(1, 4), metavar="STAGE",
                       help="switch every component of these stages off together (1 for layer1)")
    which.add_argument("--each-block", action="store_true",
                       help="each component alone, then each stage, then all (the default without --blocks/--stages)")
    parser.add_argument("--mode", choices=CLI_MODES, default="mean", help="what replaces the contributions (default: mean)")
    parser.add_argument("--limit", type=integer(10, 100_000), default=None,
                        help="first N test samples (lab canvases are stratified: every 10 consecutive ones cover the "
                        "five distance bins and both labels; default: the whole test set)")
    parser.add_argument("--patch", action="store_true",
                        help="also patch each setting between counterfactual canvas pairs (lab models)")
    parser.add_argument("--patch-pairs", type=integer(10, 3000), default=200, help="counterfactual pairs (default: 200)")
    parser.add_argument("--patch-distance", type=_distance_range, default=(94, 108), metavar="LOW-HIGH",
                        help="distance bins of the pairs, px (default: 94-108, beyond a plain network's reach)")
    parser.add_argument("--seed", type=integer(0, 2**31 - 1), default=0, help="seed of resample's derangements")
    parser.add_argument("--data", default=None, help="dataset folder (default: the training run's, or found automatically)")
    parser.set_defaults(run=_run_ablate)
