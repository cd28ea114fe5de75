"""Bad inputs built on the fly: image files and malformed checkpoints, each with the words its refusal must contain."""
from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from sbcore.checkpoint import file_sha256, save_checkpoint


def encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, pixels: bytes = b"") -> bytes:
    """A grayscale PNG whose header says ``width`` x ``height``; ``pixels`` is the raw IDAT payload."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    body = header + _chunk(b"IDAT", zlib.compress(pixels or b"\0" * 100, 9)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def strip_png(width: int = 1_600_000, height: int = 1) -> bytes:
    """A real, complete PNG of ``width`` x ``height`` pixels in a few KB (the issue's 1 x 1,600,000 upload)."""
    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))  # filter byte + one grey row
    return png_claiming(width, height, rows)


def _patched(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = encode(Image.new("RGB", (16, 16)), "JPEG")
    sof = data.index(b"\xff\xc0")
    return _patched(data, sof + 5, ">HH", height, width)


_NOISE = Image.effect_noise((64, 64), 60).convert("RGB")

# (id, file bytes, words the refusal contains)
BAD_IMAGES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "is empty"),
    ("text", b"plain text, not pixels", "not an image in a supported format"),
    ("eps-named-png", encode(Image.new("L", (8, 8)), "EPS"), "not an image in a supported format"),
    ("pdf", encode(Image.new("RGB", (8, 8)), "PDF"), "not an image in a supported format"),
    ("ico", encode(Image.new("RGB", (8, 8)), "ICO"), "not an image in a supported format"),
    ("ppm", encode(Image.new("RGB", (8, 8)), "PPM"), "not an image in a supported format"),
    ("tga", encode(Image.new("RGB", (8, 8)), "TGA"), "not an image in a supported format"),
    ("pcx", encode(Image.new("RGB", (8, 8)), "PCX"), "not an image in a supported format"),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', "not an image in a supported format"),
    ("png-1x1600000", strip_png(1_600_000, 1), "sides over 16,384 pixels"),
    ("png-1600000x1-tall", strip_png(1, 1_600_000), "sides over 16,384 pixels"),
    ("png-aspect-40", strip_png(4_000, 100), "aspect ratio over 20:1"),
    ("png-claims-64-mpx", png_claiming(8_000, 8_000), "over the limit of 25.0 M"),
    ("png-claims-10-gpx", png_claiming(100_000, 100_000), "decompression bomb guard"),
    ("jpeg-claims-65000x1000", _jpeg_claiming(65_000, 1_000), "sides over 16,384 pixels"),
    ("jpeg-claims-16000-square", _jpeg_claiming(16_000, 16_000), "decompression bomb guard"),
    ("bmp-claims-1x1600000", _patched(encode(Image.new("RGB", (4, 4)), "BMP"), 18, "<ii", 1_600_000, 1),
     "sides over 16,384 pixels"),
    ("gif-claims-65535x1", _patched(encode(Image.new("L", (4, 4)), "GIF"), 6, "<HH", 65_535, 1), "sides over 16,384 pixels"),
    ("png-truncated", encode(_NOISE, "PNG")[:-300], "truncated or corrupt"),
    ("jpeg-truncated", encode(_NOISE, "JPEG")[:200], "truncated or corrupt"),
    ("webp-truncated", encode(_NOISE, "WEBP")[:60], "truncated or corrupt"),
    ("tiff-float-pixels", encode(Image.new("F", (4, 4)), "TIFF"), "'F' is not supported"),
]


def tiny_checkpoint(folder: Path) -> Path:
    """A valid random sb_resnet38 (1 channel, 10 classes) with a complete test record; returns the weights path."""
    import sbcore

    model = sbcore.create_model("sb_resnet38", num_classes=10, in_chans=1)
    model.metadata.class_names = [f"c{i}" for i in range(10)]
    model.metadata.training = {"dataset": "fashion-mnist", "epochs": 1}
    model.metadata.metrics = {"test": {"top1": 10.0, "top5": 50.0, "per_class": [10.0] * 10,
                                       "confusion": [[1] * 10] * 10, "samples": 100}, "val_top1": 9.0}
    return save_checkpoint(model, folder / "tiny")


def huge_input_checkpoint(folder: Path) -> Path:
    """A valid nl_resnet38 whose metadata asks for 512 x 512 inputs: within the schema, but its
    non-local blocks (no subsampling) would need a 16 GB affinity matrix; returns the JSON path."""
    import sbcore

    model = sbcore.create_model("nl_resnet38", num_classes=10, in_chans=1)
    model.metadata.preprocessing = replace(model.metadata.preprocessing, input_size=(1, 512, 512))
    return save_checkpoint(model, folder / "huge_input").with_suffix(".json")


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A document edit: set a dotted field (creating objects on the way), or delete it for ``...``."""
    def edit(document: dict) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            document = document.setdefault(key, {})
        if value is ...:
            del document[leaf]
        else:
            document[leaf] = value

    return edit


def _weight(key: str, change: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        state[key] = change(state[key])

    return edit


def _deep(levels: int) -> Callable[[Path], None]:
    def write(meta: Path) -> None:
        document = json.loads(meta.read_text())
        text = json.dumps(document)[:-1] + ', "training": {"x": ' + "[" * levels + "]" * levels + "}}"
        meta.write_text(text)

    return write


def _many_keys(count: int) -> Callable[[Path], None]:
    def write(meta: Path) -> None:
        document = json.loads(meta.read_text())
        document["training"] = {f"k{i}": 0 for i in range(count)}
        meta.write_text(json.dumps(document, separators=(",", ":")))

    return write


def _replace_text(text: str) -> Callable[[Path], None]:
    return lambda meta: meta.write_text(text)


def _pad_to(megabytes: int) -> Callable[[Path], None]:
    def write(meta: Path) -> None:
        document = json.loads(meta.read_text())
        meta.write_text(json.dumps(document)[:-1] + ", " + " " * (megabytes << 20) + "}")

    return write


# (id, edit of the JSON document | edit of the weights | rewrite of the JSON file, words the refusal contains)
BAD_CHECKPOINTS: list[tuple[str, Callable, str, str]] = [
    ("grid_size-100", _set("model_kwargs.spatial_bias", {"grid_size": 100}), "json",
     "model_kwargs.spatial_bias.grid_size must be an integer from 1 to 16, got 100"),
    ("num_classes-negative", _set("model_kwargs.num_classes", -5), "json", "model_kwargs.num_classes must be an integer"),
    ("num_classes-1e9", _set("model_kwargs.num_classes", 10**9), "json", "model_kwargs.num_classes must be an integer"),
    ("num_classes-string", _set("model_kwargs.num_classes", "10"), "json", "model_kwargs.num_classes must be an integer"),
    ("in_chans-zero", _set("model_kwargs.in_chans", 0), "json", "model_kwargs.in_chans must be an integer"),
    ("sb-stage-9", _set("model_kwargs.spatial_bias", {"stages": [9]}), "json", "model_kwargs.spatial_bias.stages[0]"),
    ("sb-as-string", _set("model_kwargs.spatial_bias", "yes"), "json", "model_kwargs.spatial_bias must be an object"),
    ("sb-unknown-key", _set("model_kwargs.spatial_bias", {"gridsize": 3}), "json",
     "model_kwargs.spatial_bias.gridsize is not a known field"),
    ("nl-block-name", _set("model_kwargs.non_local", {"blocks": ["head"]}), "json", "model_kwargs.non_local.blocks[0] must be a block name such as 'layer2.1'"),
    ("kwargs-unknown", _set("model_kwargs.depth_multiplier", 2), "json", "model_kwargs.depth_multiplier is not a known field"),
    ("preprocessing-string", _set("preprocessing", "bilinear"), "json", "preprocessing must be an object"),
    ("preprocessing-unknown-key", _set("preprocessing.resize", 32), "json", "preprocessing.resize is not a known field"),
    ("input_size-4000", _set("preprocessing.input_size", [1, 4000, 4000]), "json", "preprocessing.input_size[1]"),
    ("input_size-zero", _set("preprocessing.input_size", [1, 0, 28]), "json", "preprocessing.input_size[1]"),
    ("input_size-two-values", _set("preprocessing.input_size", [28, 28]), "json", "preprocessing.input_size must be a list of 3, got a list of 2"),
    ("input_size-channels", _set("preprocessing.input_size", [3, 28, 28]), "json", "preprocessing.input_size has 3 channels"),
    ("crop_pct-zero", _set("preprocessing.crop_pct", 0), "json", "preprocessing.crop_pct must be a number in [0.25, 1]"),
    ("crop_pct-nan", _set("preprocessing.crop_pct", float("nan")), "json", "preprocessing.crop_pct must be a number"),
    ("interpolation-unknown", _set("preprocessing.interpolation", "sinc"), "json", "preprocessing.interpolation must be one of"),
    ("mean-empty", _set("preprocessing.mean", []), "json", "preprocessing.mean must be a list of 1 to 16, got a list of 0"),
    ("mean-two-for-one-channel", _set("preprocessing.mean", [0.5, 0.5]), "json", "preprocessing.mean needs one value per channel"),
    ("std-zero", _set("preprocessing.std", [0]), "json", "preprocessing.std[0] must be a number in (0, 10]"),
    ("dark_background-string", _set("preprocessing.dark_background", "yes"), "json", "preprocessing.dark_background must be true or false"),
    ("class_names-too-few", _set("class_names", ["a", "b"]), "json", "class_names lists 2 classes"),
    ("class_names-numbers", _set("class_names", list(range(10))), "json", "class_names[0] must be a string"),
    ("metrics-top1-string", _set("metrics.test.top1", "high"), "json", "metrics.test.top1 must be a number"),
    ("metrics-top5-missing", _set("metrics.test.top5", ...), "json", "metrics.test.top5 is missing"),
    ("metrics-val_top1-150", _set("metrics.val_top1", 150), "json", "metrics.val_top1 must be a number in [0, 100]"),
    ("metrics-confusion-shape", _set("metrics.test.confusion", [[1, 2]]), "json", "metrics.test.confusion must be 10 x 10"),
    ("training-nested", _set("training.optimizer", {"name": "sgd"}), "json", "training.optimizer must be a string, number"),
    ("unknown-top-level-key", _set("notes", "x"), "json", "notes is not a known field"),
    ("weights_sha256-not-hex", _set("weights_sha256", "xyz"), "json", "weights_sha256 must be 64 lowercase hexadecimal digits"),
    ("architecture-unknown", _set("architecture", "sb_resnet99"), "json", "Unknown model 'sb_resnet99'"),
    ("json-nested-100000", _deep(100_000), "file", "nested too deeply"),
    ("json-nested-10", _deep(10), "file", "levels deep; metadata needs at most 6"),
    ("json-nested-600", _deep(600), "file", "levels deep; metadata needs at most 6"),  # parses, too deep to recurse
    ("json-20-mb", _pad_to(20), "file", "checkpoint metadata is at most 16 MB"),
    ("json-1m-training-keys", _many_keys(1_000_000), "file", "training has 1,000,000 entries; at most 200 are allowed"),
    ("json-invalid", _replace_text("{not json"), "file", "is not valid JSON metadata"),
    ("json-array", _replace_text("[1, 2, 3]"), "file", "is not sbcore checkpoint metadata"),
    ("weights-nan", _weight("conv1.weight", lambda t: t.fill_(float("nan"))), "weights",
     "tensor conv1.weight holds NaN or infinite values"),
    ("weights-inf", _weight("fc.bias", lambda t: t.fill_(float("inf"))), "weights", "tensor fc.bias holds NaN or infinite values"),
    ("weights-int8", _weight("fc.weight", lambda t: t.to(torch.int8)), "weights",
     "tensor fc.weight has dtype torch.int8; weights must be floating point"),
    ("weights-bool", _weight("conv1.weight", lambda t: t > 0), "weights", "tensor conv1.weight has dtype torch.bool"),
]


def write_bad_checkpoint(good: Path, folder: Path, case: str, edit: Callable, kind: str) -> Path:
    """Copy the good checkpoint into ``folder/case.*`` with one fault; returns the JSON path."""
    weights, meta = folder / f"{case}.safetensors", folder / f"{case}.json"
    state = load_file(str(good))
    if kind == "weights":
        edit(state)
    save_file(state, str(weights))
    document = json.loads(good.with_suffix(".json").read_text())
    document["weights_sha256"] = file_sha256(weights)
    if kind == "json":
        edit(document)
    meta.write_text(json.dumps(document))
    if kind == "file":
        edit(meta)
    return meta
