"""Datasets from local disk: the Fashion-MNIST IDX reader on Debian's files, and clear errors when missing."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from sbcore.data import FashionMNIST, find_fashion_mnist, load_dataset, read_idx
from sbcore.errors import DatasetNotFoundError


def test_fashion_mnist_idx_files_read_as_the_published_dataset():
    """Debian's dataset-fashion-mnist must be installed (.ci/run installs it); no skip when absent."""
    folder = find_fashion_mnist()
    train, test = FashionMNIST(folder, train=True), FashionMNIST(folder, train=False)
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert train.images.dtype == np.uint8
    assert np.bincount(train.targets).tolist() == [6000] * 10
    assert np.bincount(test.targets).tolist() == [1000] * 10
    assert test.targets[:3].tolist() == [9, 2, 1]  # ankle boot, pullover, trouser
    image, label = test[0]
    assert image.size == (28, 28) and image.mode == "L" and label == 9


def test_fashion_mnist_splits_come_with_their_preprocessing():
    spec = load_dataset("fashion-mnist")
    image, label = spec.test[0]
    assert tuple(image.shape) == spec.preprocessing.input_size == (1, 28, 28)
    assert spec.class_names[label] == "Ankle boot"
    assert len(spec.train) == 60000 and len(spec.test) == 10000


@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_reads_plain_and_gzipped_files(tmp_path, compressed):
    values = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    payload = struct.pack(">HBB3I", 0, 0x08, 3, 2, 3, 4) + values.tobytes()
    path = tmp_path / ("x-idx3-ubyte.gz" if compressed else "x-idx3-ubyte")
    path.write_bytes(gzip.compress(payload) if compressed else payload)
    assert np.array_equal(read_idx(path), values)


def test_read_idx_rejects_non_byte_files(tmp_path):
    path = tmp_path / "floats"
    path.write_bytes(struct.pack(">HBB1I", 0, 0x0D, 1, 1) + b"\0\0\0\0")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(path)


def test_missing_datasets_say_how_to_get_them(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="cifar10 not found under"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="train/ and val/"):
        load_dataset("imagefolder", tmp_path)
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'"):
        load_dataset("mnist", tmp_path)


def test_the_fashion_mnist_location_can_come_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path))
    assert find_fashion_mnist() == tmp_path


def test_imagefolder_trees_load_at_the_requested_size(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls, colour in (("cat", (200, 10, 10)), ("dog", (10, 200, 10))):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (50, 40), colour).save(tmp_path / split / cls / "a.png")
    spec = load_dataset("imagefolder", tmp_path, image_size=32)
    image, label = spec.test[1]
    assert spec.class_names == ["cat", "dog"] and label == 1
    assert tuple(image.shape) == spec.preprocessing.input_size == (3, 32, 32)
    assert tuple(spec.train[0][0].shape) == (3, 32, 32)
