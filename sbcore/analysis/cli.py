"""``sbcore maps | explain | erf | bench``: the analysis instruments from the command line.

Each subcommand writes PNG figures plus JSON/CSV numbers into ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from sbcore.analysis import figures
from sbcore.analysis.attribution import ATTRIBUTION_METHODS, BASELINES, attribute, completeness_warning
from sbcore.analysis.erf import effective_receptive_field, noise_images, radial_profile
from sbcore.analysis.maps import check_spatial_bias_block, spatial_bias_maps, spatial_bias_steps
from sbcore.analysis.predict import class_label
from sbcore.analysis.throughput import DTYPES, format_throughput_table, measure_throughput
from sbcore.budget import check_memory
from sbcore.cli_types import MAX_BATCH, device, integer, output_folder, real, seed
from sbcore.errors import SBCoreError
from sbcore.images import load_image, model_view, preprocess
from sbcore.output_files import write_text
from sbcore.factory import resolve_model
from sbcore.schema import MAX_CLASSES, MAX_SIDE

TERMINAL_ONLY = None  # tqdm's disable=None: progress bars on a terminal only, so pipes and logs get results and errors
MODEL_HELP = (
    "a registered architecture at random initialisation (sb_resnet50, resnet38, ...), shipped weights "
    "as ARCH.TAG (sb_resnet38.fmnist), or a checkpoint path (.safetensors or .json)"
)


def load_model(spec: str, device: str = "cpu") -> nn.Module:
    """A model from a registered name, shipped ``arch.tag`` weights or a checkpoint path, in eval mode."""
    return resolve_model(spec).to(device).eval()


def _model_key(spec: str) -> str:
    """The name a model gets in tables: the spec itself, or a checkpoint's file stem."""
    path = Path(spec)
    return path.with_suffix("").name if path.suffix in (".safetensors", ".json") or path.exists() else spec


def _write_json(path: Path, data: object) -> Path:
    return write_text(path, json.dumps(data, indent=2) + "\n")


def write_csv_rows(path: Path, header: list[str], rows) -> Path:
    """A CSV file with ``header`` and ``rows``, written completely or not at all."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def write_csv_array(path: Path, array: np.ndarray) -> Path:
    """A 2D array as CSV (6 significant digits), written completely or not at all."""
    buffer = io.StringIO()
    np.savetxt(buffer, array, delimiter=",", fmt="%.6g")
    return write_text(path, buffer.getvalue())


def _tqdm_progress(bar: tqdm) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update


def _input(model: nn.Module, image_path: str, invert: bool, device: str) -> tuple[torch.Tensor, np.ndarray]:
    """(model input (1, C, H, W), the uint8 view of it) for one image file."""
    image = load_image(image_path)
    preprocessing = model.metadata.preprocessing
    return preprocess(image, preprocessing, invert).to(device), model_view(image, preprocessing, invert)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=output_folder, required=True,
                        help="folder for the PNG and JSON/CSV results (created if missing)")
    parser.add_argument("--device", type=device, default="cpu", help="torch device: cpu, cuda or cuda:N (default: cpu)")


def _add_common(parser: argparse.ArgumentParser) -> None:
    """MODEL, --out, --device and --invert: shared by the subcommands that read images."""
    parser.add_argument("model", help=MODEL_HELP)
    _add_output_options(parser)
    parser.add_argument(
        "--invert", action="store_true",
        help="invert the image (255 - pixel) before normalising; use it for dark objects on a light "
        "background with models trained on light-on-dark data such as Fashion-MNIST",
    )


# --- maps -------------------------------------------------------------------------------------------


def _run_maps(args: argparse.Namespace) -> None:
    model, out = load_model(args.model, args.device), Path(args.out)
    check_memory(model, model.metadata.preprocessing.input_size)
    query = tuple(args.query)
    if args.steps:
        check_spatial_bias_block(model, args.steps)  # before any work is done
    inputs = [(path, *_input(model, path, args.invert, args.device)) for path in args.images]  # every file checked first
    for image_path, x, view in tqdm(inputs, desc="maps", unit="image", disable=TERMINAL_ONLY):
        result = spatial_bias_maps(model, x, query=query, top_k=args.top_k)
        stem = Path(image_path).stem
        if result.spatial_bias:
            figures.save(figures.maps_figure(view, result), out / f"{stem}_maps.png")
        if result.attention:
            figures.save(figures.attention_figure(view, result, query), out / f"{stem}_attention.png")
        if args.steps:
            steps = spatial_bias_steps(model, x, args.steps)
            figures.save(figures.steps_figure(steps), out / f"{stem}_steps_{args.steps}.png")
        _write_json(out / f"{stem}_maps.json", {
            "model": args.model,
            "image": str(image_path),
            "predictions": [asdict(p) for p in result.predictions],
            "spatial_bias": {name: {"raw_shape": list(b.raw.shape), "stats": b.stats}
                             for name, b in result.spatial_bias.items()},
            "attention_query": list(query),
            "attention_peak": {name: [int(i) for i in np.unravel_index(a.argmax(), a.shape)]
                               for name, a in result.attention.items()},
        })
    print(f"wrote results for {len(args.images)} image(s) to {out}")


def configure_maps(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore maps MODEL IMAGE... --out DIR``."""
    parser = subparsers.add_parser(
        "maps", help="spatial-bias maps and non-local attention of images",
        description="For each image: the top-k predictions, every spatial-bias block's maps (raw R x R and "
        "upsampled to the input; IMAGE_maps.png, statistics in IMAGE_maps.json) and, for non-local models, "
        "each non-local block's attention for one query position (IMAGE_attention.png).",
    )
    _add_common(parser)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, GIF, BMP, TIFF, WebP)")
    parser.add_argument("--query", nargs=2, type=real(0, 1), default=(0.5, 0.5), metavar=("ROW", "COL"),
                        help="non-local query position as fractions of the image height and width (default: 0.5 0.5)")
    parser.add_argument("--top-k", type=integer(1, 100), default=5, help="number of predictions to report, 1 to 100 (default: 5)")
    parser.add_argument("--steps", metavar="BLOCK", default=None,
                        help="also draw the step-through of this block's spatial-bias branch, e.g. layer1.0")
    parser.set_defaults(run=_run_maps)


# --- explain ----------------------------------------------------------------------------------------


def _run_explain(args: argparse.Namespace) -> None:
    model, out = load_model(args.model, args.device), Path(args.out)
    batch = max(args.internal_batch_size, args.smoothgrad_samples if args.smoothgrad else 1)
    check_memory(model, model.metadata.preprocessing.input_size, batch)
    x, view = _input(model, args.image, args.invert, args.device)
    stem = Path(args.image).stem
    attributions, report = [], {"model": args.model, "image": args.image, "methods": {}}
    for method in tqdm(args.method, desc="explain", unit="method", disable=TERMINAL_ONLY):
        result = attribute(
            model, x, method, args.target, stage=args.stage, n_steps=args.steps, baseline=args.baseline,
            internal_batch_size=args.internal_batch_size, smoothgrad=args.smoothgrad,
            smoothgrad_samples=args.smoothgrad_samples, noise_std=args.noise_std,
        )
        attributions.append(result)
        write_csv_array(out / f"{stem}_{method}.csv", result.raw)
        report["methods"][method] = {
            "target": result.target, "label": class_label(model, result.target), "raw_csv": f"{stem}_{method}.csv",
        }
        if result.completeness_error is not None:
            report["methods"][method].update(
                steps=result.n_steps, convergence_delta=result.convergence_delta,
                completeness_error=result.completeness_error, warning=completeness_warning(result),
            )
            print(f"{ATTRIBUTION_METHODS[method]}: {result.n_steps} steps; the attributions add up to the change in "
                  f"the class score from the baseline to the image within {result.completeness_error:.1%}")
            if completeness_warning(result):
                print(f"warning: {completeness_warning(result)} Try another --baseline (mean often converges) or more "
                      "--steps (up to 1000).", file=sys.stderr)
    labels = [class_label(model, a.target) for a in attributions]
    figures.save(figures.attribution_figure(view, attributions, labels), out / f"{stem}_explain.png")
    _write_json(out / f"{stem}_explain.json", report)
    print(f"wrote {len(attributions)} attribution map(s) to {out}")


def configure_explain(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore explain MODEL IMAGE --method ... --out DIR``."""
    parser = subparsers.add_parser(
        "explain", help="attribution maps of one image through Captum",
        description="Attribute a class score to the input pixels with Captum methods. Writes IMAGE_explain.png "
        "(heatmaps on one [0, 1] scale), IMAGE_explain.json (target, label; for Integrated Gradients its steps and "
        "completeness error: how far the attributions' sum misses the score change from the baseline, as a share of "
        "that change) and the raw (H, W) attribution of each method as IMAGE_METHOD.csv.",
    )
    _add_common(parser)
    parser.add_argument("image", metavar="IMAGE", help="an image file (PNG, JPEG, GIF, BMP, TIFF, WebP)")
    parser.add_argument("--method", nargs="+", choices=list(ATTRIBUTION_METHODS), default=["integrated_gradients"],
                        help="one or more methods (default: integrated_gradients)")
    parser.add_argument("--target", type=integer(0, MAX_CLASSES - 1), default=None,
                        help="class index to explain (default: the predicted one)")
    parser.add_argument("--stage", default=None, help="Grad-CAM stage, e.g. layer3 (default: the last stage)")
    parser.add_argument("--steps", type=integer(1, 1_000), default=None,
                        help="Integrated Gradients path steps, 1 to 1000 (default: as many as keep its completeness "
                        "error under 5%% of the score change, 32 to 256; a warning when 256 leave it above)")
    parser.add_argument("--baseline", choices=list(BASELINES), default="mean",
                        help="reference input of Integrated Gradients and Occlusion (default: mean)")
    parser.add_argument("--internal-batch-size", type=integer(1, MAX_BATCH), default=16,
                        help="inputs per forward pass inside IG and Occlusion; lower it to save memory (default: 16)")
    parser.add_argument("--smoothgrad", action="store_true",
                        help="average each gradient method over noisy copies of the image (SmoothGrad)")
    parser.add_argument("--smoothgrad-samples", type=integer(1, 256), default=8,
                        help="noisy copies for SmoothGrad, 1 to 256 (default: 8)")
    parser.add_argument("--noise-std", type=real(0, 10), default=0.15,
                        help="SmoothGrad noise as a fraction of the input's value range (default: 0.15)")
    parser.set_defaults(run=_run_explain)


# --- erf --------------------------------------------------------------------------------------------


def _erf_images(args: argparse.Namespace, model: nn.Module) -> torch.Tensor:
    channels, height, width = model.metadata.preprocessing.input_size
    if args.images == ["noise"]:
        size = args.input_size or height
        check_memory(model, (channels, size, size), args.count)  # the noise images are made at once, then batched
        return noise_images(args.count, (channels, size, size), seed=args.seed)
    if args.input_size:
        raise SBCoreError("--input-size applies to noise images; image files use the model's preprocessing.")
    check_memory(model, (channels, height, width), len(args.images))
    return torch.cat([_input(model, path, args.invert, "cpu")[0] for path in args.images])


def _run_erf(args: argparse.Namespace) -> None:
    model, out = load_model(args.model, args.device), Path(args.out)
    images = _erf_images(args, model)
    with tqdm(total=len(images), desc=f"erf {args.stage}", unit="image", disable=TERMINAL_ONLY) as bar:
        result = effective_receptive_field(model, images, args.stage, progress=_tqdm_progress(bar),
                                           batch_size=args.batch_size)
    stem = f"erf_{args.stage}"
    figures.save(figures.erf_figure(result), out / f"{stem}.png")
    write_csv_array(out / f"{stem}_contribution.csv", result.contribution)
    radii, values = radial_profile(result.contribution, tuple(int(round(c)) for c in result.centre))
    write_csv_rows(out / f"{stem}_radial.csv", ["radius_px", "mean_contribution"], zip(radii.tolist(), values.tolist()))
    metrics = {
        "model": args.model, "stage": result.stage, "images": "noise" if args.images == ["noise"] else args.images,
        "num_images": result.num_images, "input_size": list(images.shape[1:]),
        "receptive_field_px": result.receptive_field, "centre_px": list(result.centre),
        "outside_rf_share": result.outside_rf_share,
        "area_ratios": {str(t): r for t, r in result.area_ratios.items()},
    }
    _write_json(out / f"{stem}.json", metrics)
    ratios = ", ".join(f"t={t}: {r:.3f}" for t, r in result.area_ratios.items())
    print(f"{args.stage}: theoretical RF {result.receptive_field} px, share outside it "
          f"{result.outside_rf_share:.3f}; area ratios {ratios}\nwrote {out}/{stem}.png, .json, .csv")


def configure_erf(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore erf MODEL --stage STAGE --images ... --out DIR``."""
    parser = subparsers.add_parser(
        "erf", help="effective receptive field of a stage",
        description="Effective receptive field (Luo et al. 2016, as in RepLKNet): |d centre output / d input| "
        "of a stage, summed over channels and images. Writes erf_STAGE.png (log-scaled map with the theoretical "
        "receptive field, radial profile), erf_STAGE.json (RepLKNet area ratios for t = 0.2, 0.3, 0.5, 0.99, "
        "share outside the theoretical receptive field) and the contribution map and radial profile as CSV.",
    )
    _add_common(parser)
    parser.add_argument("--stage", required=True, help="stage whose centre output is traced, e.g. layer2")
    parser.add_argument("--images", nargs="+", default=["noise"], metavar="IMAGE",
                        help='image files, or "noise" for random normal images (default: noise)')
    parser.add_argument("--count", type=integer(1, 1_024), default=16,
                        help="number of noise images, 1 to 1024 (default: 16); with --input-size, the memory budget "
                        "(sbcore.budget) may refuse large combinations, naming the limit")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the noise images (default: 0)")
    parser.add_argument("--input-size", type=integer(8, MAX_SIDE), default=None,
                        help=f"square side of the noise images, 8 to {MAX_SIDE} (default: the model's input size), within "
                        "the memory budget together with --count and --batch-size")
    parser.add_argument("--batch-size", type=integer(1, 256), default=8,
                        help="images per forward/backward pass, 1 to 256 (default: 8)")
    parser.set_defaults(run=_run_erf)


# --- bench ------------------------------------------------------------------------------------------


def _run_bench(args: argparse.Namespace) -> None:
    models = {_model_key(spec): load_model(spec) for spec in args.models}
    channels = {m.metadata.preprocessing.input_size[0] for m in models.values()}
    if len(channels) != 1:
        raise SBCoreError("The models expect different numbers of input channels; benchmark them separately.")
    first = next(iter(models.values())).metadata.preprocessing.input_size
    size = args.input_size or first[1]
    for model in models.values():
        check_memory(model, (first[0], size, size), max(args.batch_sizes))
    out = Path(args.out)
    with tqdm(desc="bench", unit="run", disable=TERMINAL_ONLY) as bar:
        rows = measure_throughput(
            models, args.batch_sizes, (first[0], size, size), device=args.device, dtype=args.dtype,
            channels_last=args.channels_last, compile=args.compile, min_run_time=args.min_run_time,
            progress=_tqdm_progress(bar), rounds=args.rounds, cpu_time=args.cpu_time,
        )
    records = [asdict(r) for r in rows]
    write_csv_rows(out / "throughput.csv", list(records[0]), [list(r.values()) for r in records])
    _write_json(out / "throughput.json", {"input_size": [first[0], size, size], "rows": records})
    figures.save(figures.throughput_figure(rows), out / "throughput.png")
    print(format_throughput_table(rows))
    print(f"wrote {out}/throughput.csv, .json, .png")


def configure_bench(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore bench MODEL... --batch-sizes ... --out DIR``."""
    parser = subparsers.add_parser(
        "bench", help="inference throughput of models, measured interleaved",
        description="Time inference: a warm-up, then the models take turns in interleaved rounds (ABCD, BCDA, ...) so "
        "a busy spell slows them alike. Reports img/s, median and quartile latency per batch, peak memory, params, "
        "GFLOPs, and img/s ratios against the plain model and the nl_ variant when they are in the run, with 95%% "
        "bootstrap intervals over the rounds. Writes throughput.csv, throughput.json and throughput.png.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help=MODEL_HELP)
    _add_output_options(parser)
    parser.add_argument("--batch-sizes", nargs="+", type=integer(1, MAX_BATCH), default=[1, 8],
                        help=f"batch sizes, 1 to {MAX_BATCH} (default: 1 8)")
    parser.add_argument("--input-size", type=integer(8, MAX_SIDE), default=None,
                        help=f"square input side, 8 to {MAX_SIDE} (default: the first model's)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32",
                        help="fp32, or bf16/fp16 through autocast (default: fp32)")
    parser.add_argument("--channels-last", action="store_true", help="use the channels_last memory format")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models first")
    parser.add_argument("--min-run-time", type=real(0, 60, above_low=True), default=1.0,
                        help="seconds of timing per model and batch size, split over the rounds (default: 1.0)")
    parser.add_argument("--rounds", type=integer(1, 100), default=8,
                        help="interleaved rounds over the models, 1 to 100; more rounds give narrower intervals (default: 8)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by this thread's CPU time, which leaves out what other processes took (CPU, one "
                        "thread: set OMP_NUM_THREADS=1)")
    parser.set_defaults(run=_run_bench)


CONFIGURE = [configure_maps, configure_explain, configure_erf, configure_bench]
