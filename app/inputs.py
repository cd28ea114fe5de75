"""Image inputs shared by the pages: bundled samples and uploads, decoded by ``sbcore.images``."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image, ImageStat

from sbcore.images import ImageError, load_image

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "samples"
INVERT_HELP = (
    "Models trained on light objects on black (Fashion-MNIST) need a photo of a dark object on a light "
    "background inverted; on by default when that is the case."
)
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]


@dataclass(frozen=True)
class ImageInput:
    """One picked image: its file bytes, a display name and its true label when known."""

    name: str
    data: bytes
    label: str | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:16]


@st.cache_data(show_spinner=False)
def samples() -> list[dict]:
    """Entries of ``assets/samples/samples.json`` (file, label or null, source)."""
    return json.loads((SAMPLES_DIR / "samples.json").read_text())


def sample_input(entry: dict) -> ImageInput:
    """A bundled sample as an ImageInput."""
    return ImageInput(entry["file"], (SAMPLES_DIR / entry["file"]).read_bytes(), entry.get("label"))


def _sample_label(entry: dict) -> str:
    return f"{entry['label'] or 'photo'}: {entry['file']}"


def image_picker(key: str) -> ImageInput:
    """A sample selector and an uploader; an uploaded file wins over the sample while it is there."""
    entries = samples()
    entry = st.selectbox("Sample image", entries, format_func=_sample_label, key=f"{key}_sample")
    upload = st.file_uploader("…or upload an image", type=IMAGE_TYPES, key=f"{key}_upload")
    if upload is None:
        return sample_input(entry)
    return ImageInput(upload.name, upload.getvalue())


def uploaded_images(key: str) -> list[ImageInput]:
    """Several uploaded images (for image sets)."""
    uploads = st.file_uploader("Upload images", type=IMAGE_TYPES, accept_multiple_files=True, key=key) or []
    return [ImageInput(upload.name, upload.getvalue()) for upload in uploads]


@st.cache_data(show_spinner=False, max_entries=32)
def _decode(data: bytes) -> Image.Image:
    return load_image(data)


def open_image(image: ImageInput) -> Image.Image | None:
    """Decode an input; on a bad file show one error naming the file and return None."""
    try:
        return _decode(image.data)
    except ImageError as error:
        st.error(f"{image.name}: {error}")
        return None


def light_background(image: Image.Image) -> bool:
    """Whether the image's border is mostly light (mean grey level above half), e.g. a product photo."""
    grey = image.convert("L")
    band = max(1, min(grey.size) // 16)
    width, height = grey.size
    strips = [(0, 0, width, band), (0, height - band, width, height), (0, 0, band, height), (width - band, 0, width, height)]
    means = [ImageStat.Stat(grey.crop(box)).mean[0] for box in strips]
    return sum(means) / len(means) > 127
