"""Accuracy against distance of the four global-context lab models (issue 9), with the receptive-field bound.

    python benchmarks/lab_distance.py                  # docs/lab_accuracy_distance.png + a Markdown table
    python benchmarks/lab_distance.py --out other.png

Reads the per-bin test accuracy and 95% intervals that each shipped checkpoint records (``sbcore eval NAME``
recomputes and checks them). Dots: the shipped seed 0 with its Wilson interval; crosses: the mean over
seeds where more than one finished. Dotted line: the plain network's last-stage receptive field; dashed
line: the smallest centre distance at which no unit of the plain network's conv path sees both items; red
line: the 75% that a sum of separately seen items can reach beyond it (``sbcore.lab.readout``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sbcore import create_model  # noqa: E402
from sbcore.lab.readout import SUM_OF_ITEMS_BOUND  # noqa: E402
from sbcore.lab.results import LAB_WEIGHTS, DistanceAccuracy, distance_accuracy, reach  # noqa: E402
from sbcore.lab.same_different import DEFAULT_TASK  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LABELS = {"lab_resnet14": "plain", "sb_lab_resnet14": "SB", "nl_lab_resnet14": "NL", "sbnl_lab_resnet14": "SB+NL"}


def draw(results: list[DistanceAccuracy], field: int, far: int, out: Path) -> None:
    """Accuracy (percent) per distance bin, one line per model, chance and the receptive-field bound."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    centres = DEFAULT_TASK.bin_centres
    for offset, result in zip((-1.5, -0.5, 0.5, 1.5), results):
        label = LABELS[result.model.split(".")[0]]
        xs = [c + offset for c in centres]
        errors = [[a - lo for a, (lo, _) in zip(result.accuracy, result.ci95)],
                  [hi - a for a, (_, hi) in zip(result.accuracy, result.ci95)]]
        line = ax.errorbar(xs, result.accuracy, yerr=errors, marker="o", capsize=3, label=f"{label} (seed 0)")
        if result.seeds:
            ax.plot(xs, result.seed_mean, "x", color=line[0].get_color(), markersize=8,
                    label=f"{label}: mean of seeds {', '.join(map(str, result.seeds))}")
    ax.axhline(50, color="grey", linewidth=1, linestyle=":", label="chance")
    ax.hlines(SUM_OF_ITEMS_BOUND, far, DEFAULT_TASK.bin_edges[-1], color="firebrick", linewidth=1.5, linestyle="--",
              label=f"beyond plain reach, a sum of separately seen items gets at most {SUM_OF_ITEMS_BOUND:.0f}%")
    ax.axvline(field, color="black", linestyle=":", linewidth=1, label=f"last-stage receptive field, {field} px")
    ax.axvline(far, color="black", linestyle="--", linewidth=1,
               label=f"plain reach: RF {field} + item {DEFAULT_TASK.item_size} - 1 = {far} px; beyond, at most 75%")
    ax.set_xlabel("distance between item centres, px (larger of |dx|, |dy|)")
    ax.set_ylabel("test accuracy, % (95% interval)")
    ax.set_title("Same-different at a distance: who keeps their accuracy?")
    ax.set_ylim(35, 100)
    ax.legend(fontsize=7, loc="lower left")  # below the curves that stay high, left of where plain falls
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def markdown_table(results: list[DistanceAccuracy]) -> str:
    """Per-bin accuracy of seed 0 with its interval (and the seed mean ± sd when there are several)."""
    header = ["model", *[b.removeprefix("distance ") for b in results[0].bins], "all"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in results:
        cells = [f"{a:.1f} [{lo:.1f}, {hi:.1f}]" for a, (lo, hi) in zip(r.accuracy, r.ci95)]
        overall = f"{r.overall:.1f}"
        if r.seeds:
            cells = [f"{c}<br>{m:.1f} ± {sd:.1f}" for c, m, sd in zip(cells, r.seed_mean, r.seed_std)]
            overall += f"<br>{r.overall_seed_mean:.1f} ± {r.overall_seed_std:.1f}"
        lines.append("| " + " | ".join([f"`{r.model}`", *cells, overall]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "lab_accuracy_distance.png", help="PNG to write")
    args = parser.parse_args()
    models = [create_model(name, pretrained=True) for name in LAB_WEIGHTS]
    results = [distance_accuracy(model) for model in models]
    field, far = reach(models[0])
    draw(results, field, far, args.out)
    print(markdown_table(results))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
