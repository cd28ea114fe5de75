import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from sbcore.images import ImageError, load_image, model_view, preprocess
from sbcore.models.metadata import Preprocessing

GRAY_28 = Preprocessing(input_size=(1, 28, 28), mean=(0.5,), std=(0.25,), crop_pct=1.0)
RGB_32 = Preprocessing(input_size=(3, 32, 32), mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), crop_pct=1.0)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_every_supported_format_loads_as_rgb(tmp_path, fmt):
    path = tmp_path / f"image.{fmt.lower()}"
    Image.new("RGB", (40, 30), (200, 40, 40)).save(path, fmt)
    for source in (path, str(path), path.read_bytes()):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (40, 30)
        red, green, _ = np.asarray(image)[15, 20].astype(int)
        assert red > 150 and green < 90


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 2
    assert tuple(np.asarray(load_image(buffer.getvalue()))[8, 8]) == (255, 0, 0)


@pytest.mark.parametrize(
    "image, fmt, expected",
    [
        (Image.new("L", (8, 8), 90), "PNG", (90, 90, 90)),
        (Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "PNG", (255, 255, 255)),  # transparent -> white
        (Image.new("RGBA", (8, 8), (0, 0, 0, 255)), "PNG", (0, 0, 0)),
        (Image.new("LA", (8, 8), (0, 0)), "PNG", (255, 255, 255)),
        (Image.new("P", (8, 8), 0), "PNG", (0, 0, 0)),
        (Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "TIFF", (255, 255, 255)),
        (Image.new("1", (8, 8), 1), "PNG", (255, 255, 255)),
    ],
)
def test_pixel_modes_become_rgb(image, fmt, expected):
    assert tuple(np.asarray(load_image(_encode(image, fmt)))[4, 4]) == expected


def test_transparent_palette_pixels_become_white():
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    data = _encode(image, "PNG", transparency=1)
    assert tuple(np.asarray(load_image(data))[4, 4]) == (255, 255, 255)


@pytest.mark.parametrize("dtype, fmt", [(np.uint16, "PNG"), (np.int32, "TIFF")])
def test_sixteen_bit_images_are_scaled_to_eight_bits(dtype, fmt):
    values = np.array([[0, 257 * 100], [65535, 257 * 200]], dtype=dtype)
    loaded = np.asarray(load_image(_encode(Image.fromarray(values), fmt)))[..., 0]
    assert loaded.tolist() == [[0, 100], [255, 200]]


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    assert load_image(_encode(image, "JPEG", exif=exif)).size == (20, 40)


def _png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"plain text, not pixels", "not an image"),
        (_encode(Image.new("RGB", (64, 64)), "JPEG")[:300], "truncated"),
        (_encode(Image.effect_noise((64, 64), 50), "PNG")[:-200], "truncated"),
        (_encode(Image.new("F", (4, 4)), "TIFF"), "'F' is not supported"),
        (_png_claiming_size(20_000, 20_000), "too large"),
    ],
)
def test_bad_files_get_a_specific_message(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_decompression_bomb_guard_uses_max_pixels():
    with pytest.raises(ImageError, match="over the limit of"):
        load_image(_encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=5_000)
    assert load_image(_encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=10_000).size == (100, 100)


def test_missing_and_empty_paths_are_named(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png is empty"):
        load_image(tmp_path / "empty.png")


def test_preprocess_normalises_with_the_model_statistics():
    image = Image.new("RGB", (50, 40), (51, 102, 153))
    x = preprocess(image, RGB_32)
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    expected = [(51 / 255 - 0.4) / 0.2, (102 / 255 - 0.5) / 0.25, (153 / 255 - 0.6) / 0.3]
    assert x[0, :, 16, 16].tolist() == pytest.approx(expected, abs=1e-6)


def test_grayscale_models_get_one_channel_and_invert_flips_it():
    image = Image.new("RGB", (28, 28), (255, 255, 255))
    assert preprocess(image, GRAY_28).shape == (1, 1, 28, 28)
    assert preprocess(image, GRAY_28).unique().tolist() == [pytest.approx((1 - 0.5) / 0.25)]
    assert preprocess(image, GRAY_28, invert=True).unique().tolist() == [pytest.approx((0 - 0.5) / 0.25)]
    assert model_view(image, GRAY_28, invert=True).max() == 0


def test_model_view_is_what_preprocess_normalises():
    image = Image.effect_noise((45, 60), 60).convert("RGB")
    view = model_view(image, RGB_32)
    assert view.shape == (32, 32, 3) and view.dtype == np.uint8
    mean, std = torch.tensor(RGB_32.mean).view(3, 1, 1), torch.tensor(RGB_32.std).view(3, 1, 1)
    expected = (torch.from_numpy(view).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(preprocess(image, RGB_32)[0], expected)


def test_resize_and_centre_crop_follow_crop_pct():
    image = Image.new("RGB", (256, 256), (255, 0, 0))
    image.paste((0, 0, 255), (16, 16, 240, 240))  # a red frame 16 px wide: 256 * (1 - 0.875) / 2
    view = model_view(image, Preprocessing(input_size=(3, 224, 224), crop_pct=0.875))
    assert view.shape == (224, 224, 3)
    assert np.all(view[..., 2] > 200) and np.all(view[..., 0] < 40)  # the frame is cropped away


def test_non_square_images_are_cropped_in_the_centre():
    image = Image.new("RGB", (90, 30), (0, 0, 0))
    image.paste((255, 255, 255), (30, 0, 60, 30))  # the middle third is white
    view = model_view(image, GRAY_28)
    assert view.shape == (28, 28) and view.min() > 200


def test_every_interpolation_the_schema_allows_has_a_resampling_filter():
    from sbcore.images import _RESAMPLE
    from sbcore.schema import INTERPOLATIONS

    assert set(_RESAMPLE) == set(INTERPOLATIONS)
    image = Image.effect_noise((50, 40), 60).convert("RGB")
    for name in INTERPOLATIONS:
        assert model_view(image, Preprocessing(input_size=(3, 16, 16), interpolation=name)).shape == (16, 16, 3)
