"""Calibrate the app's out-of-distribution notice for the shipped Fashion-MNIST models or lab models.

    python tools/ood_calibration.py [--family fmnist|samediff] [--out assets/ood_calibration.json] [--limit 5000]

For each shipped model of the family: fits the feature density (``sbcore.analysis.ood``) on --fit training
images (or lab canvases) drawn at random with a fixed seed (labels come in a pattern in the lab's canvases, so
a stride would miss a class), then scores the first --limit test images against a set of images that are
neither garments nor lab canvases, fed exactly as the app feeds them (auto-inverted when their background is light): random
crops of the bundled photos (assets/samples/photo_*) and synthetic images (uniform and smooth noise,
geometric shapes, digits and letters). Prints the AUROC of the Mahalanobis score (stored) beside the
energy and max-softmax scores, and writes the density, quantiles and thresholds the app reads, keeping the
other family's calibrations already in the file.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sbcore  # noqa: E402
from app.inputs import SAMPLES_DIR, light_background  # noqa: E402  (the app's own inversion rule)
from sbcore.analysis import ood  # noqa: E402
from sbcore.data import load_dataset  # noqa: E402
from sbcore.images import load_image, preprocess  # noqa: E402

FAMILIES = {"fmnist": ("fashion-mnist", "Fashion-MNIST test set"), "samediff": ("same-different", "same-different test canvases")}
SEED = 0


def photo_crops(per_photo: int, rng: random.Random) -> list[Image.Image]:
    """Random square crops (20-100% of the short side), some mirrored, of the bundled photos."""
    crops = []
    for path in sorted(SAMPLES_DIR.glob("photo_*")):
        photo = load_image(path)
        short = min(photo.size)
        for _ in range(per_photo):
            side = int(short * rng.uniform(0.2, 1.0))
            left, top = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
            crop = photo.crop((left, top, left + side, top + side))
            crops.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return crops


def synthetic(count: int, rng: random.Random) -> list[Image.Image]:
    """Noise, smooth noise, geometric shapes and characters, light on dark like Fashion-MNIST."""
    images = []
    state = np.random.default_rng(SEED)
    for index in range(count):
        kind = index % 4
        if kind == 0:
            images.append(Image.fromarray(state.integers(0, 256, (28, 28), dtype=np.uint8)))
        elif kind == 1:
            noise = Image.fromarray(state.integers(0, 256, (112, 112), dtype=np.uint8))
            images.append(noise.filter(ImageFilter.GaussianBlur(rng.uniform(2, 8))).resize((28, 28)))
        else:
            canvas = Image.new("L", (112, 112), 0)
            draw = ImageDraw.Draw(canvas)
            for _ in range(rng.randint(1, 3)):
                box = sorted(rng.sample(range(8, 104), 2))
                box = [box[0], rng.randint(8, 50), box[1], rng.randint(60, 104)]
                fill = rng.randint(120, 255)
                if kind == 2:
                    shape = rng.choice(["ellipse", "rectangle", "line", "polygon"])
                    if shape == "line":
                        draw.line(box, fill=fill, width=rng.randint(3, 12))
                    elif shape == "polygon":
                        draw.polygon([(rng.randint(8, 104), rng.randint(8, 104)) for _ in range(3)], fill=fill)
                    else:
                        getattr(draw, shape)(box, fill=fill)
                else:
                    draw.text((rng.randint(10, 50), rng.randint(10, 50)), rng.choice("0123456789AKXZ#&?%"), fill=fill,
                              font_size=rng.randint(40, 80))
            images.append(canvas)
    return images


def app_inputs(images: list[Image.Image], preprocessing) -> torch.Tensor:
    """(B, C, H, W) as the app feeds them: inverted when the model wants dark backgrounds and the border is light."""
    return torch.cat([
        preprocess(image, preprocessing, preprocessing.dark_background and light_background(image)) for image in images
    ])


def features_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, D) pooled features, 500 images at a time."""
    return torch.cat([ood.pooled_features(model, batch) for batch in x.split(500)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "ood_calibration.json")
    parser.add_argument("--limit", type=int, default=5_000, help="first test images to use (default: 5,000)")
    parser.add_argument("--fit", type=int, default=6_000, help="training images to fit the density on (default: 6,000)")
    parser.add_argument("--family", choices=list(FAMILIES), default="fmnist", help="which shipped models")
    args = parser.parse_args()
    rng = random.Random(SEED)
    photos, shapes = photo_crops(40, rng), synthetic(240, rng)
    dataset, in_name = FAMILIES[args.family]
    spec = load_dataset(dataset)
    chosen = torch.randperm(len(spec.train_eval), generator=torch.Generator().manual_seed(SEED))[:args.fit]
    fit_indices = sorted(chosen.tolist())
    fit_x = torch.stack([spec.train_eval[i][0] for i in fit_indices])  # (N, 1, S, S), the eval transform
    fit_y = torch.tensor([spec.train_eval[i][1] for i in fit_indices])
    test_x = torch.stack([spec.test[i][0] for i in range(min(args.limit, len(spec.test)))])
    in_set = f"{in_name} ({len(test_x)} images)"
    out_set = f"{len(photos)} crops of the bundled photos + {len(shapes)} synthetic images (noise, shapes, characters)"
    calibrations = ood.load_calibrations(args.out) if args.out.is_file() else {}
    for name in sbcore.list_models(f"*.{args.family}", pretrained=True):
        model = sbcore.create_model(name, pretrained=True).eval()
        preprocessing = model.metadata.preprocessing
        density = ood.fit_density(features_of(model, fit_x), fit_y, len(model.metadata.class_names))
        sets = {"test": test_x, "photos": app_inputs(photos, preprocessing), "synthetic": app_inputs(shapes, preprocessing)}
        features = {key: features_of(model, x) for key, x in sets.items()}
        with torch.no_grad():  # the head pools its input, so pooled features (B, D, 1, 1) give the same logits
            logits = {key: model.forward_head(f[:, :, None, None]) for key, f in features.items()}
        scores = {
            "Mahalanobis": {key: density.scores(f).numpy() for key, f in features.items()},
            "energy": {key: ood.energy_scores(z).numpy() for key, z in logits.items()},
            "max-softmax": {key: ood.max_softmax(z).numpy() for key, z in logits.items()},
        }
        line = [f"{name:<22}"]
        for label, by_set in scores.items():
            both = np.concatenate([by_set["photos"], by_set["synthetic"]])
            line.append(f"{label} AUROC {ood.auroc(by_set['test'], both):.3f} (photos "
                        f"{ood.auroc(by_set['test'], by_set['photos']):.3f}, synthetic "
                        f"{ood.auroc(by_set['test'], by_set['synthetic']):.3f})")
        chosen = scores["Mahalanobis"]
        unfamiliar = np.concatenate([chosen["photos"], chosen["synthetic"]])
        calibration = ood.calibrate(density, chosen["test"], unfamiliar, in_set, out_set)
        line.append(f"flagged: {np.mean(unfamiliar < calibration.threshold):.0%} of the unfamiliar set, "
                    f"{np.mean(chosen['test'] < calibration.threshold):.0%} of the test set")
        print("  ".join(line), flush=True)
        calibrations[name] = calibration
    ood.save_calibrations(calibrations, args.out)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
