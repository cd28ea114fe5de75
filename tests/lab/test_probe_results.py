"""The lab's API for the app: items on a canvas, P(same), distance sweeps and per-bin results with seeds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sbcore import create_model
from sbcore.errors import SBCoreError
from sbcore.lab.probe import (
    distance_sweep, item_from_array, item_from_image, place_pair, same_probability, sweep_positions,
)
from sbcore.lab.results import distance_accuracy, seed_run
from sbcore.lab.same_different import DEFAULT_TASK

SIZE = DEFAULT_TASK.item_size


def test_an_item_image_becomes_a_light_on_dark_item_of_the_task_size():
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 10:18] = 255
    item = item_from_array(image)
    assert item.shape == (SIZE, SIZE) and 0 <= item.min() and item.max() <= 1 and item.max() > 0.9
    with pytest.raises(ValueError, match="grayscale"):
        item_from_array(np.zeros((28, 28, 3)))


def test_a_photo_becomes_an_item_like_a_test_item_inverted_when_asked():
    photo = Image.new("RGB", (60, 90), (250, 250, 250))  # a dark object on a light background
    photo.paste((10, 10, 10), (20, 15, 40, 75))
    plain, inverted = item_from_image(photo), item_from_image(photo, invert=True)
    assert plain.shape == inverted.shape == (SIZE, SIZE)
    assert plain[0, 0] > 0.9 and inverted[0, 0] < 0.1  # the background turns black, as on the canvas
    assert inverted[SIZE // 2, SIZE // 2] > 0.9 and torch.allclose(plain + inverted, torch.ones(SIZE, SIZE), atol=1e-2)


def test_items_are_centred_where_asked():
    a, b = torch.full((SIZE, SIZE), 0.5), torch.ones(SIZE, SIZE)
    canvas = place_pair(a, b, (30, 30), (30, 100))
    rows, cols = torch.nonzero(canvas == 1.0, as_tuple=True)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (20, 39, 90, 109)
    assert canvas[30, 30] == 0.5 and canvas.sum() == 0.5 * SIZE * SIZE + SIZE * SIZE


def test_same_probability_is_a_probability_per_canvas(randomize):
    model = randomize(create_model("sb_lab_resnet14"))
    canvases = torch.rand(3, DEFAULT_TASK.canvas_size, DEFAULT_TASK.canvas_size)
    p = same_probability(model, canvases)
    assert p.shape == (3,) and ((0 <= p) & (p <= 1)).all()
    with pytest.raises(ValueError, match="128x128 canvases"):
        same_probability(model, torch.rand(1, 64, 64))


def test_a_distance_sweep_moves_the_second_item_until_the_edge(randomize):
    model = randomize(create_model("lab_resnet14"))
    a = b = torch.rand(SIZE, SIZE)
    distances, p = distance_sweep(model, a, b, centre_a=(64, 10), direction=(0, 1), distances=range(20, 200, 20))
    assert distances == [20, 40, 60, 80, 100] and p.shape == (5,)  # 10 + 120 would leave the canvas
    assert sweep_positions((64, 10), (1, 1), [30]) == [(94, 40)]
    with pytest.raises(ValueError, match="unit step"):
        sweep_positions((64, 10), (0, 2), [30])


def test_distance_results_read_the_checkpoint_and_summarise_the_seeds():
    model = create_model("lab_resnet14")
    with pytest.raises(SBCoreError, match="records no accuracy by distance"):
        distance_accuracy(model)
    groups = [{"name": f"distance {i}", "correct": 8, "samples": 10, "accuracy": 80.0, "ci95": [49.0, 94.3]}
              for i in range(2)]
    model.metadata.metrics = {"test": {"top1": 80.0, "groups": groups}}
    single = distance_accuracy(model)
    assert single.accuracy == [80.0, 80.0] and single.ci95[0] == (49.0, 94.3) and not single.seeds
    runs = [seed_run({"test": {"top1": top1, "groups": [{"accuracy": x} for x in accs]}}, seed)
            for seed, top1, accs in ((0, 80.0, (80.0, 80.0)), (1, 70.0, (60.0, 80.0)), (2, 75.0, (70.0, 80.0)))]
    model.metadata.metrics["seed_runs"] = runs
    result = distance_accuracy(model)
    assert result.seeds == [0, 1, 2] and result.seed_mean == [70.0, 80.0] and result.seed_std == [10.0, 0.0]
    assert result.overall_seed_mean == 75.0 and result.overall_seed_std == 5.0
