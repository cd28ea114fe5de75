"""The app's small helpers: colour scales, overlays, click positions, background detection."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app import inputs, plots, state


def test_colour_scale_avoids_streamlit_placeholder_hex_colours_and_keeps_the_ends():
    scale = plots.colour_scale("inferno")
    assert all(colour.startswith("rgb(") for _, colour in scale)
    assert scale[0] == [0.0, "rgb(0,0,4)"] and scale[-1][0] == 1.0
    assert scale[-1][1] == "rgb({},{},{})".format(*plots.colour_table("inferno")[-1])


def test_overlay_png_blends_the_colour_map_and_enlarges_with_sharp_pixels():
    view = np.zeros((4, 6), dtype=np.uint8)
    heat = np.zeros((4, 6))
    heat[0, 0] = 1.0
    image = Image.open(io.BytesIO(plots.overlay_png(view, heat, "viridis", 1.0, 0.0, 1.0, min_side=40)))
    assert image.size == (60, 40)  # whole factor 10 so that the short side reaches 40
    pixels = np.asarray(image)
    assert tuple(pixels[0, 0]) == tuple(plots.colour_table("viridis")[255])
    assert tuple(pixels[-1, -1]) == tuple(plots.colour_table("viridis")[0])
    half = np.asarray(Image.open(io.BytesIO(plots.overlay_png(view, heat, "viridis", 0.5, 0.0, 1.0))))
    assert tuple(half[0, 0]) == tuple(np.round(plots.colour_table("viridis")[255] * 0.5).astype(int))


def test_clicked_position_maps_a_grid_point_back_to_image_fractions():
    figure = plots.image_figure(np.zeros((28, 28), dtype=np.uint8), click_grid=14)
    grid = figure.data[-1]
    x, y = grid.x[14 * 3 + 5], grid.y[14 * 3 + 5]  # row 3, column 5 of the click grid
    row, col = plots.clicked_position({"selection": {"points": [{"x": x, "y": y}]}}, (28, 28))
    assert (int(row * 28), int(col * 28)) == (7, 11)
    assert plots.clicked_position({"selection": {"points": []}}, (28, 28)) is None


def test_light_background_tells_product_photos_from_fashion_mnist():
    light = Image.new("L", (40, 40), 240)
    light.paste(10, (10, 10, 30, 30))
    dark = Image.new("RGB", (40, 40), (0, 0, 0))
    dark.paste((250, 250, 250), (10, 10, 30, 30))
    assert inputs.light_background(light) and not inputs.light_background(dark)


def test_shipped_family_is_in_teaching_order():
    assert state.shipped_family() == ["resnet38.fmnist", "sb_resnet38.fmnist", "nl_resnet38.fmnist", "sbnl_resnet38.fmnist"]
    lab = ["lab_resnet14.samediff", "sb_lab_resnet14.samediff", "nl_lab_resnet14.samediff", "sbnl_lab_resnet14.samediff"]
    assert state.shipped_family("samediff") == lab
