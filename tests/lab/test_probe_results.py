"""The lab's API for the app: items on a canvas, P(same), distance sweeps and per-bin results with seeds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sbcore import create_model
from sbcore.errors import SBCoreError
from sbcore.lab.probe import (
    distance_sweep, draw_pairs, item_from_array, item_from_image, pair_accuracy, pair_types, place_pair,
    same_probability, sweep_accuracy, sweep_limit, sweep_positions,
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


def test_test_pairs_cover_the_four_pair_types_with_two_different_items_of_the_right_classes():
    pools = [np.arange(0, 10), np.arange(10, 20)]  # items of the first and second class
    pairs = draw_pairs(pools, per_type=6, seed=3)
    assert [kind for kind, _, _ in pairs] == [k for k in range(4) for _ in range(6)]
    for kind, a, b in pairs:
        first, second = pair_types()[kind]
        assert a in pools[first] and b in pools[second] and a != b
    assert pairs == draw_pairs(pools, per_type=6, seed=3) and pairs != draw_pairs(pools, per_type=6, seed=4)


def test_many_pairs_show_the_plain_model_at_chance_beyond_its_reach_and_spatial_bias_right():
    from sbcore.data import load_dataset

    test = load_dataset("same-different").test
    plain = create_model("lab_resnet14.samediff", pretrained=True)
    sb = create_model("sb_lab_resnet14.samediff", pretrained=True)
    near = pair_accuracy(plain, test.items, test.pools, (64, 14), (64, 44), per_type=20)
    far = pair_accuracy(plain, test.items, test.pools, (64, 14), (64, 118), per_type=20)
    assert near.total == far.total == 80 and set(far.by_type) == {"Trouser+Trouser", "Bag+Bag", "Trouser+Bag",
                                                                  "Bag+Trouser"}
    assert near.ci95[0] > 75 and far.ci95[0] <= 50 <= far.ci95[1]
    assert pair_accuracy(sb, test.items, test.pools, (64, 14), (64, 118), per_type=20).ci95[0] > 75
    points = sweep_accuracy(plain, test.items, test.pools, (64, 14), (0, 1), [30, 104, 300], per_type=5)
    assert [d for d, _ in points] == [30, 104]  # 300 px would leave the canvas


def test_the_sweep_limit_is_where_item_b_reaches_the_canvas_edge():
    assert sweep_limit((64, 14), (0, 1)) == 104
    assert sweep_limit((64, 14), (1, 1)) == 54  # the row reaches the bottom edge first
    assert sweep_positions((64, 14), (1, 1), [54, 55]) == [(118, 68)]
