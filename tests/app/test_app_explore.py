"""Explore page: default render, widgets, uploads good and bad."""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
from PIL import Image

import sbcore


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(side: int = 100_000) -> bytes:
    """A tiny PNG file announcing side x side pixels (10 G pixels for the default)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _values(z) -> np.ndarray:
    """A heatmap's z as an array, whether plotly sent it as nested lists or as typed-array bytes."""
    if isinstance(z, dict):
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
    return np.asarray(z, dtype=float)


def _prediction(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("Predicted:"))


def test_default_page_shows_the_default_model_and_sample_with_spatial_bias_maps(open_page):
    at = open_page("explore")
    assert not at.exception, at.exception
    assert at.selectbox(key="explore_model").value == "sb_resnet38.fmnist"
    classes = sbcore.create_model("sb_resnet38.fmnist", pretrained=True).metadata.class_names
    predicted = _prediction(at).split("**")[1]
    assert predicted in classes
    assert [b for b in at.selectbox(key="explore_block").options][-1] == "layer3.3"
    assert any(h.value == "Inside one spatial-bias branch" for h in at.header)
    assert not at.error


def test_changing_block_map_step_and_colours_rerenders(open_page):
    at = open_page("explore")
    at.selectbox(key="explore_block").set_value("layer1.0")
    at.selectbox(key="explore_map").set_value(2)
    at.slider(key="explore_opacity").set_value(0.3)
    at.selectbox(key="explore_signed_cmap").set_value("PuOr_r")
    at.run()
    assert not at.exception, at.exception
    at.select_slider(key="explore_step").set_value(3).run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("**1D convolution**") for m in at.markdown)
    at.radio(key="explore_values").set_value("magnitude").run()
    at.selectbox(key="explore_cmap").set_value("viridis").run()
    assert not at.exception, at.exception


def _heatmaps(at, name: str) -> list[dict]:
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if name in c.proto.spec)
    return [t for t in chart["data"] if t["type"] == "heatmap"]


def test_spatial_bias_maps_are_signed_on_a_centred_scale_or_shown_as_magnitudes(open_page):
    at = open_page("explore")
    (overlay,) = _heatmaps(at, "upsampled to 28x28")
    assert overlay["zmin"] == -overlay["zmax"] < 0
    stops = overlay["colorscale"]
    middle = [int(v) for stop in stops[len(stops) // 2 - 1:len(stops) // 2 + 1] for v in stop[1][4:-1].split(",")]
    assert min(middle) > 230  # zero is (nearly) white on the diverging scale
    raw = _heatmaps(at, "(6x6)") or _heatmaps(at, "map 1 (")
    assert all(t["zmin"] == -t["zmax"] for t in raw)
    at.radio(key="explore_values").set_value("magnitude").run()
    (overlay,) = _heatmaps(at, "upsampled to 28x28")
    assert overlay["zmin"] == 0.0 and overlay["zmax"] > 0


def test_non_local_model_offers_attention_with_a_movable_query(open_page):
    at = open_page("explore")
    at.selectbox(key="explore_model").set_value("nl_resnet38.fmnist").run()
    assert not at.exception, at.exception
    assert any(h.value == "Non-local attention" for h in at.header)
    assert any("no spatial-bias branches" in i.value for i in at.info)
    at.slider(key="explore_query_row_28").set_value(3)
    at.slider(key="explore_query_col_28").set_value(25)
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["explore_query_row_28"] == 3


def test_uploaded_photo_of_any_mode_is_used_and_inverted_for_a_dark_background_model(open_page, sample_bytes):
    at = open_page("explore")
    photo = Image.open(io.BytesIO(sample_bytes("photo_coffee.jpg"))).convert("RGBA")  # RGBA: alpha must be handled
    light = Image.new("LA", (64, 48), (255, 255))  # light background, grey+alpha mode
    light.paste((0, 255), (16, 12, 48, 36))
    for name, data in (("coffee.png", _png(photo)), ("dark_square.png", _png(light))):
        at.file_uploader(key="explore_upload").set_value((name, data, "image/png")).run()
        assert not at.exception, at.exception
        assert not at.error, [e.value for e in at.error]
        assert any(name in caption for image in at.image for caption in image.captions)
    invert = next(c for c in at.checkbox if c.key.startswith("explore_invert_"))
    assert invert.value is True  # Fashion-MNIST models see light objects on black


def test_bad_uploads_show_one_error_and_the_page_recovers(open_page, sample_bytes):
    at = open_page("explore")
    truncated = sample_bytes("photo_coffee.jpg")[:2000]
    cases = [
        ("notes.png", b"this is plain text, not an image", "not an image"),
        ("empty.png", b"", "empty"),
        ("cut.jpg", truncated, "truncated"),
        ("bomb.png", _bomb_png(), "too large"),
    ]
    for name, data, message in cases:
        at.file_uploader(key="explore_upload").set_value((name, data, "image/png")).run()
        assert not at.exception, at.exception
        assert len(at.error) == 1 and message in at.error[0].value and name in at.error[0].value
    at.file_uploader(key="explore_upload").set_value(None).run()
    assert not at.error
    assert _prediction(at)


def test_switching_blocks_off_shows_the_prediction_and_maps_beside_the_intact_ones(open_page):
    import json

    import torch

    from sbcore.analysis.interventions import intervened
    from sbcore.images import load_image, preprocess

    link = {"model": "sb_resnet38.fmnist", "source": "sample", "sample": "fmnist_0000_ankle_boot.png",
            "ablate": "layer1.0,layer3.3", "ablate_mode": "zero"}
    at = open_page("explore", query=link)
    assert not at.exception, at.exception
    assert at.multiselect(key="explore_ablate").value == ["layer1.0", "layer3.3"]  # the link restored it
    assert at.radio(key="explore_ablate_mode").value == "zero"
    table = next(d.value for d in at.dataframe if "switched off" in d.value.columns)
    model = sbcore.create_model("sb_resnet38.fmnist", pretrained=True).eval()
    x = preprocess(load_image(str(__import__("pathlib").Path(__file__).parents[2] / "assets" / "samples" /
                                  "fmnist_0000_ankle_boot.png")), model.metadata.preprocessing, False)
    with torch.no_grad(), intervened(model, ["layer1.0", "layer3.3"], "zero"):
        expected = model(x).softmax(1)[0]
    names = list(model.metadata.class_names)
    for label, value in zip(table["class"], table["switched off"]):
        assert abs(value - float(expected[names.index(label)])) < 1e-4
    grid = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "layer1.0 switched off" in c.proto.spec)
    intact_map, switched_map = (_values(t["z"]) for t in grid["data"][:2])
    assert abs(switched_map).max() == 0 < abs(intact_map).max()  # the zeroed maps, beside the intact ones

    at.multiselect(key="explore_ablate").set_value([]).run()
    assert not at.exception and not any("switched off" in d.value.columns for d in at.dataframe)


def _bar(horizontal: bool) -> bytes:
    image = Image.new("L", (28, 28), 0)
    image.paste(255, (2, 10, 26, 18) if horizontal else (10, 2, 18, 26))
    return _png(image)


def test_an_echo_of_an_older_url_never_changes_the_analysed_upload(open_page):
    at = open_page("explore")
    at.file_uploader(key="explore_upload").set_value(("a.png", _bar(False), "image/png")).run()
    at.selectbox(key="explore_sample").set_value("fmnist_0018_bag.png").run()  # the app writes source=sample
    older = dict(at.query_params)
    assert older["source"] == "sample"
    at.file_uploader(key="explore_upload").set_value(("b.png", _bar(True), "image/png")).run()
    assert at.session_state["explore_source"] == "upload"
    b_prediction = _prediction(at)
    at.query_params = older  # the browser sends back a URL the app wrote before B (quick successive reruns)
    invert = next(c for c in at.checkbox if c.key and c.key.startswith("explore_invert"))
    invert.set_value(not invert.value).run()
    assert not at.exception, at.exception
    assert at.session_state["explore_source"] == "upload"
    assert at.session_state["_upload_of_explore"].name == "b.png"
    invert = next(c for c in at.checkbox if c.key and c.key.startswith("explore_invert"))
    invert.set_value(not invert.value).run()
    assert _prediction(at) == b_prediction  # back to B as first shown, never the sample


def test_a_callback_that_fails_says_one_sentence_with_an_incident_id_and_keeps_the_page(open_page, monkeypatch):
    from app import inputs

    real = inputs.ImageInput

    def broken(name, data, *rest):  # keeping this upload fails, as a bug in the callback would
        if data == b"\x89PNG":
            raise RuntimeError("boom")
        return real(name, data, *rest)

    at = open_page("explore")
    monkeypatch.setattr(inputs, "ImageInput", broken)
    at.file_uploader(key="explore_upload").set_value(("x.png", b"\x89PNG", "image/png")).run()
    assert not at.exception, at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("That change could not be applied (incident ") and "boom" not in error
    assert at.selectbox(key="explore_model").value == "sb_resnet38.fmnist"  # the rest of the page is still there
    at.run()
    assert not at.error  # said once


def test_a_link_carries_the_values_choice_and_the_diverging_colour_map(open_page):
    at = open_page("explore", query={"values": "magnitude", "cmap": "viridis"})
    (overlay,) = _heatmaps(at, "upsampled to 28x28")
    assert overlay["zmin"] == 0.0 and at.selectbox(key="explore_cmap").value == "viridis"
    at = open_page("explore", query={"signed_cmap": "PiYG"})
    assert at.selectbox(key="explore_signed_cmap").value == "PiYG"
    assert any("green positive, pink negative" in c.value for c in at.caption)


def test_a_link_carries_the_map_and_the_non_local_query_point(open_page):
    at = open_page("explore", query={"map": "2", "block": "layer1.0"})
    assert at.selectbox(key="explore_map").value == 2 and at.query_params["map"] in ("2", ["2"])
    at = open_page("explore", query={"model": "nl_resnet38.fmnist", "query_row": "3", "query_col": "25"})
    assert not at.exception, at.exception
    assert (at.slider(key="explore_query_row_28").value, at.slider(key="explore_query_col_28").value) == (3, 25)
    at.slider(key="explore_query_row_28").set_value(7).run()
    assert at.query_params["query_row"] in ("7", ["7"])


def test_a_lab_model_says_how_familiar_a_canvas_and_a_photo_look(open_page, sample_bytes):
    at = open_page("explore", query={"model": "sb_lab_resnet14.samediff", "source": "sample",
                                     "sample": "samediff_far_bags.png"})
    assert not at.exception, at.exception
    assert any("Familiar input" in caption.value for caption in at.caption)
    at.file_uploader(key="explore_upload").set_value(("coffee.jpg", sample_bytes("photo_coffee.jpg"), "image/jpeg")).run()
    assert not at.exception, at.exception
    notices = [caption.value for caption in at.caption] + [warning.value for warning in at.warning]
    assert any("Unusual for this model" in text or "Unlike anything" in text for text in notices), notices
    assert not any("No familiarity calibration" in caption.value for caption in at.caption)
