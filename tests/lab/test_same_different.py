"""The same-different canvases: deterministic per index (any worker), balanced, at the stated distances,
test canvases built only from test items."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sbcore.data import FashionMNIST, load_dataset, sample_groups
from sbcore.lab.same_different import DEFAULT_TASK, SameDifferentCanvases, SameDifferentTask, centre_distance


@pytest.fixture(scope="module")
def spec():
    return load_dataset("same-different")


def test_a_sample_depends_only_on_its_index_in_any_dataloader_worker(spec):
    indices = list(range(40, 56))
    direct = torch.stack([spec.train[i][0] for i in reversed(indices)]).flip(0)
    loader = DataLoader(torch.utils.data.Subset(spec.train, indices), batch_size=4, num_workers=2)
    through_workers = torch.cat([images for images, _ in loader])
    assert torch.equal(direct, through_workers)
    rebuilt = load_dataset("same-different").train  # a fresh process builds the same canvas
    assert torch.equal(rebuilt[43][0], spec.train[43][0])


def test_labels_and_distance_bins_are_balanced_in_every_block_of_indices(spec):
    task = spec.test.task
    block = 2 * task.num_bins
    placements = [spec.test.placement(i) for i in range(3 * block)]
    counts = np.zeros((2, task.num_bins), dtype=int)
    for p in placements:
        counts[p.label, p.distance_bin] += 1
    assert (counts == 3).all()
    same = [p for p in placements if p.label == 1]
    assert all(p.classes[0] == p.classes[1] and p.items[0] != p.items[1] for p in same)
    assert all(p.classes[0] != p.classes[1] for p in placements if p.label == 0)
    assert sample_groups(spec.test).index[: 3 * block] == [p.distance_bin for p in placements]


def test_distances_lie_in_their_bin_and_both_items_fit_without_overlap(spec):
    task = spec.train.task
    for index in range(0, 4000, 7):
        p = spec.train.placement(index)
        lo, hi = task.bin_edges[p.distance_bin], task.bin_edges[p.distance_bin + 1]
        assert lo <= p.distance < hi and centre_distance(*p.corners) == p.distance
        for row, col in p.corners:
            assert 0 <= row <= task.canvas_size - task.item_size and 0 <= col <= task.canvas_size - task.item_size
        assert p.distance >= task.item_size  # Chebyshev distance >= item side: the items never overlap


def test_canvases_hold_exactly_their_two_items_and_nothing_else(spec):
    task = spec.test.task
    p = spec.test.placement(5)
    canvas = spec.test.canvas(5)
    for item, (row, col) in zip(p.items, p.corners):
        assert torch.equal(canvas[row : row + task.item_size, col : col + task.item_size], spec.test.items[item])
    assert int((canvas > 0).sum()) == int((spec.test.items[list(p.items)] > 0).sum())
    image, label = spec.test[5]
    assert image.shape == (1, task.canvas_size, task.canvas_size) and label == p.label
    assert torch.allclose(image[0], (canvas - task.mean) / task.std)


def test_test_canvases_use_test_items_only_and_never_a_training_image(spec):
    train_images = {bytes(x) for x in FashionMNIST(train=True).images}
    test_images = FashionMNIST(train=False).images
    for index in range(0, len(spec.test), 97):
        for item in spec.test.placement(index).items:
            source = test_images[spec.test.source_index[item]]
            assert bytes(source) not in train_images
    train_targets = FashionMNIST(train=True).targets
    assert set(train_targets[spec.train.source_index]) == set(DEFAULT_TASK.item_classes)


def test_the_test_split_has_its_groups_named_by_distance(spec):
    groups = sample_groups(spec.test)
    assert groups.names[0] == "distance 20-37 px" and len(groups.names) == DEFAULT_TASK.num_bins
    assert len(groups.index) == len(spec.test) and spec.class_names == ["different", "same"]


def test_a_task_whose_distances_cannot_fit_the_canvas_is_refused():
    with pytest.raises(ValueError, match="do not fit"):
        SameDifferentTask(canvas_size=64, bin_edges=(20, 60))
    with pytest.raises(ValueError, match="split must be"):
        SameDifferentCanvases(np.zeros((4, 28, 28), np.uint8), np.array([1, 1, 8, 8]), 4, "val")
