"""Images in, model inputs out: robust loading of user files and the model's own preprocessing."""
from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sbcore.errors import SBCoreError
from sbcore.models.metadata import Preprocessing

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")  # the only decoders ever run (no EPS, no Ghostscript)
FORMAT_NAMES = "PNG, JPEG, WebP, BMP, GIF, TIFF"
MAX_PIXELS = 25_000_000  # decoded; keeps the worst case (16-bit or transparent) under about 400 MB
MAX_SIDE = 16_384  # WebP's own limit; larger sides are scans or crafted files
MAX_ASPECT = 20.0  # longer side / shorter side; a 1 x 1,600,000 strip is a memory attack, not a photo
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}

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


def _check_shape(width: int, height: int, name: str) -> None:
    """Refuse shapes that would cost memory out of proportion to any use, before a pixel is decoded."""
    if min(width, height) < 1:
        raise ImageError(f"{name} claims a size of {width}x{height} pixels, which has no pixels.")
    if max(width, height) > MAX_SIDE:
        raise ImageError(f"{name} is {width}x{height} pixels; sides over {MAX_SIDE:,} pixels are not accepted.")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageError(
            f"{name} is {width}x{height} pixels, an aspect ratio over {MAX_ASPECT:.0f}:1; crop it to a less elongated shape."
        )


def _check_pixels(width: int, height: int, name: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            f"{name} is {width}x{height} = {width * height / 1e6:.1f} M pixels, over the limit of "
            f"{max_pixels / 1e6:.1f} M; resize it first."
        )


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Decode the first frame of an allowed format, checking its size before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        width, height = image.size
        _check_shape(width, height, name)
        image.seek(0)
        factor = next((f for f in (1, 2, 4, 8) if width * height <= max_pixels * f * f), 8)
        if factor > 1:  # JPEG only (a no-op elsewhere): decode at 1/2, 1/4 or 1/8 scale, never at full size
            image.draft(None, (width // factor, height // factor))
        _check_pixels(*image.size, name, max_pixels)
        image.load()
        return image
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} is far too large to decode safely (decompression bomb guard).") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image in a supported format ({FORMAT_NAMES}).") from None
    except MemoryError:
        raise ImageError(f"{name} needs more memory to decode than this machine allows.") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        if "not available" in str(error):  # "decoder jpeg2k not available": PIL knows the format, lacks the codec
            raise ImageError(f"{name} uses an encoding this installation cannot decode ({error}).") from None
        raise ImageError(f"{name} is truncated or corrupt ({error}).") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any supported mode -> RGB; transparency is composited on white, 16-bit scaled to 8 bit."""
    if image.mode in _SIXTEEN_BIT_MODES:  # integer arithmetic in place: 4 bytes a pixel, not 8 per step
        values = np.clip(np.asarray(image, dtype=np.int32), 0, 65535)
        values += 128
        values //= 257
        return Image.fromarray(values.astype(np.uint8)).convert("RGB")
    if image.mode not in _CONVERTIBLE_MODES:
        raise ImageError(f"Pixel format {image.mode!r} is not supported; save the image as 8-bit RGB or grayscale.")
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        if image.mode not in ("RGBA", "LA"):
            image = image.convert("RGBA")
        composited = Image.new("RGB", image.size, (255, 255, 255))
        composited.paste(image.convert("RGB"), mask=image.getchannel("A"))
        return composited
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(source: bytes | str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Load a user image as RGB: first frame of animations, EXIF orientation applied.

    Only PNG, JPEG, WebP, BMP, GIF and TIFF are decoded. A JPEG over ``max_pixels`` is decoded
    at 1/2, 1/4 or 1/8 scale instead (never at full size); other formats over it are refused.

    Args:
        source: file contents or a path.
        max_pixels: refuse images with more pixels than this (decompression bombs).
    Raises:
        ImageError naming the problem: empty file, not an allowed format, a side over ``MAX_SIDE``,
        an aspect ratio over ``MAX_ASPECT``, too many pixels, truncated, unsupported pixel format.
    """
    data, name = _read(source)
    if not data:
        raise ImageError(f"{name} is empty (0 bytes).")
    image = ImageOps.exif_transpose(_decode(data, name, max_pixels))
    return _to_rgb(image)


def _crop_box(size: tuple[int, int], short_side: int, height: int, width: int) -> tuple[float, float, float, float]:
    """The source region that resizing the shorter side to ``short_side`` and centre-cropping to
    (height, width) keeps, as (left, top, right, bottom) in source pixels (torchvision's rounding)."""
    source_w, source_h = size
    if source_w <= source_h:
        resized_w, resized_h = short_side, int(short_side * source_h / source_w)
    else:
        resized_w, resized_h = int(short_side * source_w / source_h), short_side
    left, top = int(round((resized_w - width) / 2.0)), int(round((resized_h - height) / 2.0))
    sx, sy = source_w / resized_w, source_h / resized_h
    return left * sx, top * sy, (left + width) * sx, (top + height) * sy


def model_view(image: Image.Image, preprocessing: Preprocessing, invert: bool = False) -> np.ndarray:
    """The pixels the model sees, before normalisation: uint8 (H, W) for 1 channel, else (H, W, 3).

    Resizes the shorter side to H / crop_pct with ``preprocessing.interpolation`` and
    centre-crops to (H, W), in one step: only the kept region is resampled, straight to (H, W),
    so no intermediate larger than the output exists whatever the image's shape. With
    ``invert``, maps p -> 255 - p (dark objects on light backgrounds for models trained on
    light-on-dark data such as Fashion-MNIST).
    """
    channels, height, width = preprocessing.input_size
    image = image.convert("L" if channels == 1 else "RGB")
    short_side = int(round(max(height, width) / preprocessing.crop_pct))
    box = _crop_box(image.size, short_side, height, width)
    resized = image.resize((width, height), _RESAMPLE[preprocessing.interpolation], box=box)
    pixels = np.asarray(resized, dtype=np.uint8)
    return 255 - pixels if invert else pixels.copy()


def preprocess(image: Image.Image, preprocessing: Preprocessing, invert: bool = False) -> torch.Tensor:
    """The model input for one image: (1, C, H, W) float32, scaled to [0, 1] and normalised with mean/std."""
    pixels = torch.from_numpy(model_view(image, preprocessing, invert)).float().div_(255)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)
    mean = torch.tensor(preprocessing.mean).view(-1, 1, 1)
    std = torch.tensor(preprocessing.std).view(-1, 1, 1)
    return ((pixels - mean) / std)[None]
