"""Images in, model inputs out: robust loading of user files and the model's own preprocessing."""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from sbcore.errors import SBCoreError
from sbcore.models.metadata import Preprocessing

_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}  # PIL opens 16-bit PNG/TIFF in one of these
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_CONVERTIBLE_MODES = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"} | _ALPHA_MODES


class ImageError(SBCoreError, ValueError):
    """An uploaded or given image cannot be used; the message says why."""


def _read(source: bytes | str | Path) -> tuple[bytes, str]:
    """The bytes of a source and a name for it in messages."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "The uploaded file"
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{path} does not exist or is not a file.")
    return path.read_bytes(), path.name


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Decode the first frame, refusing images over ``max_pixels`` before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(
                f"{name} is {width}x{height} = {width * height / 1e6:.1f} M pixels, over the limit of "
                f"{max_pixels / 1e6:.1f} M; resize it first."
            )
        image.seek(0)
        image.load()
        return image
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} is far too large to decode safely (decompression bomb guard).") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image (supported: PNG, JPEG, GIF, BMP, TIFF, WebP).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        if "decoder" in str(error):  # PIL recognises the format but lacks the codec for it
            raise ImageError(f"{name} uses an encoding this installation cannot decode ({error}).") from None
        raise ImageError(f"{name} is truncated or corrupt ({error}).") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any supported mode -> RGB; transparency is composited on white, 16-bit scaled to 8 bit."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(values / 257.0, 0, 255).round().astype(np.uint8)).convert("RGB")
    if image.mode not in _CONVERTIBLE_MODES:
        raise ImageError(f"Pixel format {image.mode!r} is not supported; save the image as 8-bit RGB or grayscale.")
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(source: bytes | str | Path, max_pixels: int = 40_000_000) -> Image.Image:
    """Load a user image as RGB: first frame of animations, EXIF orientation applied.

    Args:
        source: file contents or a path.
        max_pixels: refuse images with more pixels than this (decompression bombs).
    Raises:
        ImageError naming the problem: empty file, not an image, too large, truncated, unsupported.
    """
    data, name = _read(source)
    if not data:
        raise ImageError(f"{name} is empty (0 bytes).")
    image = ImageOps.exif_transpose(_decode(data, name, max_pixels))
    return _to_rgb(image)


def model_view(image: Image.Image, preprocessing: Preprocessing, invert: bool = False) -> np.ndarray:
    """The pixels the model sees, before normalisation: uint8 (H, W) for 1 channel, else (H, W, 3).

    Resizes the shorter side to H / crop_pct with ``preprocessing.interpolation``, centre-crops
    to (H, W) and, with ``invert``, maps p -> 255 - p (dark objects on light backgrounds for
    models trained on light-on-dark data such as Fashion-MNIST).
    """
    channels, height, width = preprocessing.input_size
    image = image.convert("L" if channels == 1 else "RGB")
    resize = int(round(max(height, width) / preprocessing.crop_pct))
    image = TF.resize(image, resize, interpolation=InterpolationMode(preprocessing.interpolation), antialias=True)
    pixels = np.asarray(TF.center_crop(image, [height, width]), dtype=np.uint8)
    return 255 - pixels if invert else pixels.copy()


def preprocess(image: Image.Image, preprocessing: Preprocessing, invert: bool = False) -> torch.Tensor:
    """The model input for one image: (1, C, H, W) float32, scaled to [0, 1] and normalised with mean/std."""
    pixels = torch.from_numpy(model_view(image, preprocessing, invert)).float().div_(255)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)
    mean = torch.tensor(preprocessing.mean).view(-1, 1, 1)
    std = torch.tensor(preprocessing.std).view(-1, 1, 1)
    return ((pixels - mean) / std)[None]
