"""Datasets read from local disk only: Fashion-MNIST IDX files, CIFAR-10/100, ImageFolder trees."""
from __future__ import annotations

import gzip
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision import transforms as T

from sbcore.errors import DatasetNotFoundError, SBCoreError
from sbcore.models.metadata import Preprocessing

FASHION_MNIST_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_PREPROCESSING = Preprocessing(
    input_size=(1, 28, 28), mean=(0.2860,), std=(0.3530,), crop_pct=1.0, dark_background=True
)
DATASETS = ("fashion-mnist", "same-different", "cifar10", "cifar100", "imagefolder")
SAME_DIFFERENT_TRAIN = 200_000  # virtual: canvases are drawn on demand, trainers take a prefix of a shuffled order
SAME_DIFFERENT_TEST = 3_000  # 300 per label and distance bin


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), as used by MNIST and Fashion-MNIST."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find_fashion_mnist(root: str | Path | None = None) -> Path:
    """The folder holding Fashion-MNIST's IDX files: ``root``, $FASHION_MNIST_DIR, or Debian's location."""
    candidates = [Path(p) for p in (root, os.environ.get("FASHION_MNIST_DIR")) if p] or list(FASHION_MNIST_DIRS)
    for folder in candidates:
        if (folder / "train-images-idx3-ubyte.gz").is_file() or (folder / "train-images-idx3-ubyte").is_file():
            return folder
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found in {', '.join(map(str, candidates))}: install it with "
        "'apt-get install dataset-fashion-mnist' or pass --data pointing at the folder with its IDX files."
    )


class FashionMNIST(Dataset):
    """Fashion-MNIST from IDX files: 28x28 grayscale uint8 images and labels 0-9."""

    classes = FASHION_MNIST_CLASSES

    def __init__(self, root: str | Path | None = None, train: bool = True, transform: Callable | None = None) -> None:
        folder = find_fashion_mnist(root)
        prefix = "train" if train else "t10k"

        def idx(kind: str) -> np.ndarray:
            plain = folder / f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
            return read_idx(plain if plain.is_file() else plain.with_name(plain.name + ".gz"))

        self.images = idx("images")
        self.targets = idx("labels").astype(np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = Image.fromarray(self.images[index], mode="L")
        return (self.transform(image) if self.transform else image), int(self.targets[index])


class LabelledSamples(Dataset):
    """The labelled images listed in a folder's ``samples.json`` (entries with label null are skipped).

    Each entry names a ``file`` beside the JSON and a ``label`` (a class name). Images go through
    ``sbcore.images`` exactly as the app and CLI feed them to a model, giving (C, H, W) tensors.
    """

    def __init__(self, folder: str | Path, class_names: list[str], preprocessing: Preprocessing) -> None:
        self.folder = Path(folder)
        listing = self.folder / "samples.json"
        if not listing.is_file():
            raise DatasetNotFoundError(f"{self.folder} has no samples.json listing its images and labels.")
        entries = [e for e in json.loads(listing.read_text()) if e.get("label") is not None]
        unknown = sorted({e["label"] for e in entries} - set(class_names))
        if unknown:
            raise SBCoreError(f"Sample labels {unknown} in {listing} are not among the model's classes {class_names}.")
        if not entries:
            raise DatasetNotFoundError(f"{listing} lists no labelled images.")
        self.files = [self.folder / e["file"] for e in entries]
        missing = [f.name for f in self.files if not f.is_file()]
        if missing:
            raise DatasetNotFoundError(f"{listing} lists images that are not in {self.folder}: {missing[:5]}.")
        self.targets = [class_names.index(e["label"]) for e in entries]
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from sbcore.images import load_image, preprocess

        return preprocess(load_image(self.files[index]), self.preprocessing)[0], self.targets[index]


@dataclass(frozen=True)
class SampleGroups:
    """Which group every sample of a dataset belongs to (e.g. its distance bin), and the groups' names."""

    index: list[int]  # group of each sample, in dataset order
    names: list[str]


def sample_groups(dataset: Dataset) -> SampleGroups | None:
    """The groups of a dataset whose ``sample_groups()`` returns (group per sample, group names), seen
    through any Subset; None for datasets without groups."""
    if isinstance(dataset, Subset):
        inner = sample_groups(dataset.dataset)
        return inner and SampleGroups([inner.index[i] for i in dataset.indices], inner.names)
    groups = getattr(dataset, "sample_groups", None)
    return SampleGroups(*groups()) if callable(groups) else None


@dataclass
class DatasetSpec:
    """A dataset's splits plus what a model trained on it needs to know."""

    train: Dataset
    train_eval: Dataset  # the training images with the evaluation transform, for a held-out split
    test: Dataset
    class_names: list[str]
    preprocessing: Preprocessing


def limited_test_split(spec: DatasetSpec, limit: int | None) -> Dataset:
    """The test split, or its first ``limit`` images (the same subset for training and ``sbcore eval``)."""
    return Subset(spec.test, range(limit)) if limit else spec.test


def _cifar_preprocessing() -> Preprocessing:
    from sbcore.models.zoo import CIFAR

    return CIFAR


def build_transforms(preprocessing: Preprocessing, train: bool, dataset: str) -> Callable:
    """Standard augmentation per dataset for training; resize/crop/normalise for evaluation."""
    _, height, width = preprocessing.input_size
    normalize = [T.ToTensor(), T.Normalize(preprocessing.mean, preprocessing.std)]
    if dataset == "imagefolder":
        if train:
            return T.Compose([T.RandomResizedCrop((height, width)), T.RandomHorizontalFlip(), *normalize])
        resize = int(round(height / preprocessing.crop_pct))
        return T.Compose([T.Resize(resize), T.CenterCrop((height, width)), *normalize])
    if train:
        return T.Compose([T.RandomCrop((height, width), padding=4 if dataset != "fashion-mnist" else 2),
                          T.RandomHorizontalFlip(), *normalize])
    return T.Compose(normalize)


def load_same_different(root: str | Path | None = None, seed: int = 0) -> DatasetSpec:
    """Same-different canvases (``sbcore.lab.same_different``): training and validation canvases from
    Fashion-MNIST's training items, test canvases from its test items; labels "different", "same"."""
    from sbcore.lab.same_different import DEFAULT_TASK, LABELS, SameDifferentCanvases

    train_items, test_items = FashionMNIST(root, train=True), FashionMNIST(root, train=False)
    train = SameDifferentCanvases(train_items.images, train_items.targets, SAME_DIFFERENT_TRAIN, "train", seed)
    test = SameDifferentCanvases(test_items.images, test_items.targets, SAME_DIFFERENT_TEST, "test", seed)
    return DatasetSpec(train, train, test, list(LABELS), DEFAULT_TASK.preprocessing)


def load_dataset(name: str, root: str | Path | None = None, image_size: int | None = None) -> DatasetSpec:
    """Train and test splits of ``fashion-mnist``, ``cifar10``, ``cifar100`` or ``imagefolder``, from disk only.

    ``root``: the dataset folder (for ImageFolder, the folder holding ``train/`` and ``val/``).
    """
    from torchvision import datasets

    if name == "fashion-mnist":
        pre = FASHION_MNIST_PREPROCESSING
        make = lambda train, augment: FashionMNIST(root, train, build_transforms(pre, augment, name))  # noqa: E731
        return DatasetSpec(make(True, True), make(True, False), make(False, False), list(FASHION_MNIST_CLASSES), pre)
    if name == "same-different":
        return load_same_different(root)
    if name in ("cifar10", "cifar100"):
        pre = _cifar_preprocessing()
        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        if root is None:
            raise DatasetNotFoundError(f"{name}: pass --data pointing at the folder that holds the extracted python version.")
        try:
            make = lambda train, augment: cls(str(root), train, build_transforms(pre, augment, name), download=False)  # noqa: E731
            train, train_eval, test = make(True, True), make(True, False), make(False, False)
        except RuntimeError as error:
            raise DatasetNotFoundError(
                f"{name} not found under {root} ({error}); download it elsewhere and point --data at the folder."
            ) from None
        return DatasetSpec(train, train_eval, test, list(train.classes), pre)
    if name == "imagefolder":
        from sbcore.models.zoo import IMAGENET

        size = image_size or IMAGENET.input_size[1]
        pre = Preprocessing(input_size=(3, size, size))
        folder = Path(root) if root else None
        if folder is None or not (folder / "train").is_dir() or not (folder / "val").is_dir():
            raise DatasetNotFoundError(f"ImageFolder: pass --data pointing at a folder with train/ and val/ class folders (got {root}).")
        train = datasets.ImageFolder(str(folder / "train"), build_transforms(pre, True, name))
        train_eval = datasets.ImageFolder(str(folder / "train"), build_transforms(pre, False, name))
        test = datasets.ImageFolder(str(folder / "val"), build_transforms(pre, False, name))
        return DatasetSpec(train, train_eval, test, list(train.classes), pre)
    raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
