"""The declared schema of checkpoint metadata, checked before anything is built from it.

A checkpoint's JSON decides how large a model gets and what every page later does with it,
so each field has a type, a range and a place: unknown keys, wrong types, values out of
range and files too large or too deeply nested are refused with a ``CheckpointError`` that
names the field (``preprocessing.crop_pct``, ``model_kwargs.spatial_bias.grid_size``).
Ranges are wide enough for every published ResNet setting and narrow enough that the largest
model they allow fits in a few hundred MB.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

from sbcore.errors import CheckpointError

FORMAT = "sbcore-checkpoint/1"
MAX_JSON_BYTES = 16 * 1024 * 1024  # an ImageNet confusion matrix written with indent=2 is about 9 MB
MAX_DEPTH = 6  # the deepest field: document > metrics > test > groups > group > ci95 > values
MAX_CLASSES = 25_000  # ImageNet-21k has 21,843
MAX_CHANNELS = 16
MAX_SIDE = 1_024  # input height and width
MAX_GRID = 16  # spatial-bias R: the mixing Conv1d has 3 * R^4 weights, 197 k at R = 16, 300 M at R = 100
DEFAULT_CHANNELS = 3  # every builder's in_chans and the default preprocessing's
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")

Check = Callable[[Any, str], None]  # (value, dotted field name) -> None, or raise CheckpointError


def _fail(field: str, expected: str, value: Any) -> None:
    if isinstance(value, list):
        shown = f"a list of {len(value)}"
    elif isinstance(value, dict):
        shown = "an object"
    else:
        shown = repr(value)[:60]
    raise CheckpointError(f"{field} must be {expected}, got {shown}.")


def integer(low: int, high: int) -> Check:
    def check(value: Any, field: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            _fail(field, f"an integer from {low:,} to {high:,}", value)

    return check


def number(low: float, high: float, *, above_low: bool = False) -> Check:
    """A finite number in [low, high], or (low, high] with ``above_low``."""
    def check(value: Any, field: str) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value > high or value < low or (above_low and value == low):
            _fail(field, f"a number in {'(' if above_low else '['}{low:g}, {high:g}]", value)

    return check


def string(max_length: int = 1_000, choices: tuple[str, ...] = (), pattern: tuple[str, str] | None = None) -> Check:
    """A string; with ``choices`` one of them, with ``pattern`` = (regex, description) one matching it."""
    def check(value: Any, field: str) -> None:
        if not isinstance(value, str) or len(value) > max_length:
            _fail(field, f"a string of at most {max_length} characters", value)
        if choices and value not in choices:
            _fail(field, f"one of {', '.join(choices)}", value)
        if pattern and not re.fullmatch(pattern[0], value):
            _fail(field, pattern[1], value)

    return check


def boolean(value: Any, field: str) -> None:
    if not isinstance(value, bool):
        _fail(field, "true or false", value)


def optional(inner: Check) -> Check:
    """``inner`` or null."""
    def check(value: Any, field: str) -> None:
        if value is not None:
            inner(value, field)

    return check


def array(item: Check, min_length: int = 0, max_length: int = MAX_CLASSES) -> Check:
    def check(value: Any, field: str) -> None:
        if not isinstance(value, list) or not min_length <= len(value) <= max_length:
            count = f"{min_length}" if min_length == max_length else f"{min_length} to {max_length:,}"
            _fail(field, f"a list of {count}", value)
        for index, element in enumerate(value):
            item(element, f"{field}[{index}]")

    return check


def scalar(value: Any, field: str) -> None:
    """A string, number, boolean or null: the values of free-form tables such as the training recipe."""
    if isinstance(value, float) and not math.isfinite(value):
        _fail(field, "a finite number", value)
    if value is not None and not isinstance(value, (str, int, float, bool)):
        _fail(field, "a string, number, true, false or null", value)
    if isinstance(value, str) and len(value) > 1_000:
        _fail(field, "a string of at most 1000 characters", value)


def mapping(fields: dict[str, Check], required: tuple[str, ...] = (), values: Check | None = None) -> Check:
    """An object with the given keys (each optional unless ``required``); other keys are refused,
    or, with ``values``, allowed (at most 200) and checked with it."""
    def check(value: Any, field: str) -> None:
        if not isinstance(value, dict):
            _fail(field, "an object", value)
        prefix = f"{field}." if field else ""
        for key in required:
            if key not in value:
                raise CheckpointError(f"{prefix}{key} is missing.")
        unknown = [key for key in value if key not in fields]
        if unknown and values is None:
            known = ", ".join(fields)
            raise CheckpointError(f"{prefix}{unknown[0]} is not a known field (known: {known}).")
        if len(unknown) > 200:
            raise CheckpointError(f"{field} has {len(unknown):,} entries; at most 200 are allowed.")
        for key, element in value.items():
            (fields.get(key) or values)(element, f"{prefix}{key}")

    return check


def switch_or(inner: Check) -> Check:
    """true/false/null (the variant's default on or off) or ``inner``."""
    def check(value: Any, field: str) -> None:
        if value is not None and not isinstance(value, bool):
            inner(value, field)

    return check


PERCENT = number(0, 100)
SPATIAL_BIAS = mapping({
    "stages": array(integer(1, 4), 0, 4),
    "reduced_channels": integer(1, 64),
    "grid_size": integer(1, MAX_GRID),
    "kernel_size": integer(1, 15),
})
NON_LOCAL = mapping({
    "blocks": array(string(20, pattern=(r"layer[1-4]\.\d{1,2}", "a block name such as 'layer2.1'")), 0, 64),
    "subsample": boolean,
})
MODEL_KWARGS = mapping({
    "num_classes": integer(1, MAX_CLASSES),
    "in_chans": integer(1, MAX_CHANNELS),
    "spatial_bias": switch_or(SPATIAL_BIAS),
    "non_local": switch_or(NON_LOCAL),
})
PREPROCESSING = mapping({
    "input_size": array(integer(1, MAX_SIDE), 3, 3),
    "mean": array(number(0, 1), 1, MAX_CHANNELS),
    "std": array(number(0, 10, above_low=True), 1, MAX_CHANNELS),
    "interpolation": string(choices=INTERPOLATIONS),
    "crop_pct": number(0.25, 1.0),
    "dark_background": boolean,
})
GROUP_ACCURACY = mapping(  # sbcore.evaluate.group_accuracy: one distance bin of the lab's test split
    {"name": string(200), "correct": integer(0, 10**12), "samples": integer(0, 10**12), "accuracy": optional(PERCENT),
     "ci95": array(PERCENT, 2, 2)},
    required=("name", "correct", "samples", "accuracy", "ci95"),
)
SEED_RUN = mapping(  # sbcore.lab.results.seed_run: another seed's test results, beside the shipped one's
    {"seed": integer(0, 2**63), "top1": PERCENT, "groups": array(PERCENT, 0, 1_000)},
    required=("seed", "top1", "groups"),
)
CHANGE = number(-100, 100)  # percentage points
INTERVENTION = mapping(  # benchmarks/lab_interventions.py via tools/ship_lab.py: one component switched off, one seed
    {"seed": integer(0, 2**63), "label": string(100), "mode": string(choices=("mean", "zero", "resample")),
     "samples": integer(1, 10**9), "change": CHANGE, "change_ci95": array(CHANGE, 2, 2), "far_change": CHANGE,
     "far_change_ci95": array(CHANGE, 2, 2), "patching": optional(number(-100, 100)),
     "patching_ci95": optional(array(number(-100, 100), 2, 2))},
    required=("seed", "label", "mode", "samples", "change", "change_ci95", "far_change", "far_change_ci95"),
)
TEST_METRICS = mapping(
    {
        "top1": PERCENT,
        "top5": PERCENT,
        "per_class": array(PERCENT),
        "confusion": array(array(integer(0, 10**12))),
        "samples": integer(0, 10**12),
        "groups": array(GROUP_ACCURACY, 0, 1_000),
    },
    required=("top1", "top5", "per_class", "confusion", "samples"),
)
METRICS = mapping({
    "test": optional(TEST_METRICS),
    "val_top1": optional(PERCENT),
    "test_split": optional(string()),
    "test_limit": optional(integer(1, 10**9)),
    "seed_runs": array(SEED_RUN, 0, 100),
    "interventions": array(INTERVENTION, 0, 1_000),
})
DOCUMENT = mapping(
    {
        "format": string(choices=(FORMAT,)),
        "architecture": string(100),
        "model_kwargs": MODEL_KWARGS,
        "preprocessing": PREPROCESSING,
        "class_names": array(string(200)),
        "training": mapping({"dataset": optional(string()), "data": optional(string())}, values=scalar),
        "metrics": METRICS,
        "pretrained": optional(string()),
        "weights_sha256": string(64, pattern=("[0-9a-f]{64}", "64 lowercase hexadecimal digits")),
    },
    required=("format", "architecture"),
)


def _check_consistency(document: dict[str, Any]) -> None:
    """Rules across fields: channels agree with mean/std, class names with the classifier and metrics."""
    kwargs, preprocessing = document.get("model_kwargs", {}), document.get("preprocessing", {})
    channels = preprocessing.get("input_size", [DEFAULT_CHANNELS])[0]
    if channels != kwargs.get("in_chans", DEFAULT_CHANNELS):
        raise CheckpointError(
            f"preprocessing.input_size has {channels} channels but the model takes "
            f"{kwargs.get('in_chans', DEFAULT_CHANNELS)} (model_kwargs.in_chans)."
        )
    for key in ("mean", "std"):
        if len(preprocessing.get(key, [0] * DEFAULT_CHANNELS)) != channels:
            raise CheckpointError(f"preprocessing.{key} needs one value per channel ({channels}).")
    names = document.get("class_names") or []
    if names and "num_classes" in kwargs and len(names) != kwargs["num_classes"]:
        raise CheckpointError(f"class_names lists {len(names)} classes but model_kwargs.num_classes is {kwargs['num_classes']}.")
    test = (document.get("metrics") or {}).get("test")
    if test and names:
        if len(test["per_class"]) != len(names):
            raise CheckpointError(f"metrics.test.per_class has {len(test['per_class'])} values for {len(names)} classes.")
        if len(test["confusion"]) != len(names) or any(len(row) != len(names) for row in test["confusion"]):
            raise CheckpointError(f"metrics.test.confusion must be {len(names)} x {len(names)}, one row per class.")


def _deeper_than(value: Any, levels: int) -> bool:
    """Whether ``value`` nests dicts/lists more than ``levels`` deep; recurses at most ``levels + 1`` times, so a
    document nested hundreds of levels cannot exhaust the stack."""
    if not isinstance(value, (dict, list)):
        return False
    if levels == 0:
        return True
    children = value.values() if isinstance(value, dict) else value
    return any(_deeper_than(child, levels - 1) for child in children)


def load_document(path: Path) -> dict[str, Any]:
    """Read and validate a checkpoint's JSON: size, syntax, nesting depth, then every field."""
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise CheckpointError(
            f"{path.name} is {size / 2**20:.1f} MB; checkpoint metadata is at most {MAX_JSON_BYTES // 2**20} MB."
        )
    try:
        document = json.loads(path.read_bytes())
    except RecursionError:
        raise CheckpointError(f"{path.name} is nested too deeply to be checkpoint metadata.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path.name} is not valid JSON metadata ({error}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or "architecture" not in document:
        raise CheckpointError(f"{path.name} is not sbcore checkpoint metadata (expected format {FORMAT!r}).")
    if _deeper_than(document, MAX_DEPTH):
        raise CheckpointError(f"{path.name} is nested more than {MAX_DEPTH} levels deep; metadata needs at most {MAX_DEPTH}.")
    try:
        DOCUMENT(document, "")
        _check_consistency(document)
    except CheckpointError as error:
        raise CheckpointError(f"{path.name}: {error}") from None
    return document
