"""Does ``sbcore.analysis.faithfulness`` compute Quantus's pixel flipping, and how long does each take?

    pip install --target /tmp/quantus quantus     # not a dependency of this project: OpenCV, scikit-image, ...
    python benchmarks/faithfulness_vs_quantus.py --quantus /tmp/quantus --images 20

On the first N Fashion-MNIST test images and the SB-ResNet-38, with Input x Gradient maps (no ties: the two
libraries break ties in ranking differently), explaining the predicted class: the deletion curve of
``pixel_flipping`` (black baseline, 28 pixels a step) against ``quantus.PixelFlipping`` (features_in_step=28,
perturb_baseline="black", the image's minimum, which is its black), the time each takes for all N, and ROAD's
imputation (``impute``) against Quantus's exact sparse solve of the same equations.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from sbcore import create_model
from sbcore.analysis import attribute, make_baseline
from sbcore.analysis.faithfulness import impute, pixel_flipping, ranking
from sbcore.data import FASHION_MNIST_PREPROCESSING, FashionMNIST, build_transforms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantus", default=None, help="folder Quantus was installed into with pip --target")
    parser.add_argument("--images", type=int, default=20)
    args = parser.parse_args()
    if args.quantus:
        sys.path.append(args.quantus)  # after site-packages: this project's numpy and torch stay in use
    try:
        import quantus
    except ImportError:
        sys.exit("Quantus is not installed: pip install --target /tmp/quantus quantus, then --quantus /tmp/quantus")
    torch.set_num_threads(1)
    model = create_model("sb_resnet38.fmnist", pretrained=True).eval()
    test = FashionMNIST(None, False, build_transforms(FASHION_MNIST_PREPROCESSING, False, "fashion-mnist"))
    images = torch.stack([test[i][0] for i in range(args.images)])
    with torch.no_grad():
        targets = model(images).argmax(1)
    maps = np.stack([attribute(model, images[i:i + 1], "input_x_gradient", int(targets[i])).raw
                     for i in range(args.images)])
    steps = images.shape[-1] * images.shape[-2] // 28

    start = time.perf_counter()
    ours = np.stack([pixel_flipping(model, images[i:i + 1], ranking(maps[i]), int(targets[i]),
                                    make_baseline(model, images[i:i + 1], "black"), steps=steps)[0].scores[1:]
                     for i in range(args.images)])
    ours_seconds = time.perf_counter() - start

    metric = quantus.PixelFlipping(features_in_step=28, perturb_baseline="black", disable_warnings=True)
    start = time.perf_counter()
    theirs = np.asarray(metric(model=model, x_batch=images.numpy(), y_batch=targets.numpy(),
                               a_batch=maps[:, None], device="cpu", softmax=True, channel_first=True))
    theirs_seconds = time.perf_counter() - start
    print(f"{args.images} images, {steps} steps of 28 pixels, Input x Gradient, sb_resnet38.fmnist, 1 thread")
    print(f"largest |sbcore - Quantus| over every curve point: {np.abs(ours - theirs).max():.2e}")
    print(f"deletion AUC (mean): sbcore {ours.mean():.4f}, Quantus {theirs.mean():.4f}")
    imputation_gap = 0.0
    from quantus.functions.perturb_func import noisy_linear_imputation
    for i, image in enumerate(images.numpy()):
        for share in (0.1, 0.5, 0.9):  # ROAD's removal of the top share of pixels, without its noise
            removed = ranking(maps[i])[:round(share * maps[i].size)]
            mask = torch.zeros(1, 1, *maps[i].shape, dtype=torch.bool)
            mask.view(-1)[torch.from_numpy(removed)] = True
            ours_filled = impute(images[i:i + 1], mask)[0].numpy()
            exact = noisy_linear_imputation(image, removed, noise=0.0)
            imputation_gap = max(imputation_gap, float(np.abs(ours_filled - exact).max() / np.ptp(image)))
    print(f"ROAD imputation (10, 50, 90% removed, no noise): largest |sbcore - Quantus's sparse solve| "
          f"{imputation_gap:.1e} of the image's value range")
    print(f"time: sbcore {ours_seconds:.2f} s for deletion and insertion ({2 * (steps + 1)} forward images per image), "
          f"Quantus {theirs_seconds:.2f} s for deletion ({steps} per image)")


if __name__ == "__main__":
    main()
