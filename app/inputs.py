"""Image inputs shared by the pages: bundled samples and uploads, decoded by ``sbcore.images``."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from PIL import Image, ImageStat

from app import guard
from sbcore.images import ImageError, load_image

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "samples"
INVERT_HELP = (
    "Models trained on light objects on black (Fashion-MNIST) need a photo of a dark object on a light "
    "background inverted; on by default when that is the case."
)
IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]
# Uploaders take any file name and the decoder judges the content (sbcore.images, one sentence per problem):
# Streamlit's own type= check raises in the upload callback, outside the page guard, for "image.svg" or "passwd".
UPLOAD_HELP = f"{', '.join(t.upper() for t in IMAGE_TYPES)}; judged by its content, not its name."


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


def sample_files() -> list[str]:
    """File names of the bundled samples, in their listed order."""
    return [entry["file"] for entry in samples()]


def sample_by_file(file: str) -> dict:
    """The samples.json entry of a bundled sample's file name."""
    return next(entry for entry in samples() if entry["file"] == file)


def _sample_label(file: str) -> str:
    return f"{sample_by_file(file)['label'] or 'photo'}: {file}"


def _kept_upload(key: str) -> str:
    return f"_upload_of_{key}"


@guard.guarded
def choose_sample(key: str) -> None:
    """Widget callback: picking a sample switches the choice ``{key}_source`` to it."""
    st.session_state[f"{key}_source"] = "sample"


@guard.guarded
def _on_upload(key: str) -> None:
    upload = st.session_state.get(f"{key}_upload")
    if upload is None:
        st.session_state.pop(_kept_upload(key), None)
        st.session_state[f"{key}_source"] = "sample"
    else:
        st.session_state[_kept_upload(key)] = ImageInput(upload.name, upload.getvalue())
        st.session_state[f"{key}_source"] = "upload"


def source_choice(key: str, label: str = "Image", sample_name: str = "Sample") -> str:
    """The explicit choice "sample" or "upload" (session key ``{key}_source``, "sample" at first)."""
    st.session_state.setdefault(f"{key}_source", "sample")
    return st.radio(
        label, ["sample", "upload"], format_func={"sample": sample_name, "upload": "My upload"}.get,
        horizontal=True, key=f"{key}_source",
    )


def upload_box(key: str) -> ImageInput | None:
    """The uploader (key ``{key}_upload``); an upload switches ``{key}_source`` to it and is kept for the
    session, so leaving the page and coming back finds it again. Returns that upload, None before any."""
    st.file_uploader("Upload an image", key=f"{key}_upload", on_change=_on_upload, args=(key,), help=UPLOAD_HELP)
    return st.session_state.get(_kept_upload(key))


def image_picker(key: str) -> ImageInput | None:
    """An explicit choice, "Sample" or "My upload", that always names the image shown.

    Picking a sample or uploading a file switches the choice. None while no upload exists.
    """
    source = source_choice(key)
    file = st.selectbox(
        "Sample image", sample_files(), format_func=_sample_label, key=f"{key}_sample", on_change=choose_sample,
        args=(key,),
    )
    kept = upload_box(key)
    if source == "sample":
        return sample_input(sample_by_file(file))
    if kept is None:
        st.info("Upload an image, or switch back to a sample.")
    return kept


def uploaded_images(key: str) -> list[ImageInput]:
    """Several uploaded images (for image sets)."""
    uploads = st.file_uploader("Upload images", accept_multiple_files=True, key=key, help=UPLOAD_HELP) or []
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
