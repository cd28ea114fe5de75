"""What a model needs besides its weights: preprocessing, class names and provenance."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How to turn an image into the model's input tensor.

    ``input_size`` is (C, H, W); images are resized so the shorter side is H / crop_pct,
    centre-cropped to (H, W), scaled to [0, 1] and normalised with mean/std.
    ``dark_background`` marks training data with light objects on black (Fashion-MNIST), so
    photographs may need inverting.
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    dark_background: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocessing":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass
class ModelMetadata:
    """Everything that describes a model instance; saved as a checkpoint's JSON, attached as ``model.metadata``."""

    architecture: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    class_names: list[str] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None  # tag or source of the weights, None for random init

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelMetadata":
        data = dict(data)
        data["preprocessing"] = Preprocessing.from_dict(data.get("preprocessing", {}))
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
