"""Bad image files: each is refused with one sentence by ``sbcore.images`` and, uploaded on the Explore
page, shows one ``st.error`` and no exception; no process grows past 1.5 GB on any of them."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from bad_inputs import BAD_IMAGES, encode, strip_png
from hardening_harness import MEMORY_LIMIT_KB, run_group

IDS = [case for case, *_ in BAD_IMAGES]
UPLOADED = ["png-1x1600000", "eps-named-png", "png-claims-10-gpx", "text", "webp-truncated"]  # also through the app
LONG_BUT_ALLOWED = strip_png(16_000, 800)  # 20:1, 12.8 M pixels: decoded, then only the kept centre is resampled
# The costliest files that are accepted: 25 M pixels with transparency, 16 bits or a palette, and a 48 M pixel JPEG
LARGEST = {"rgba.png": ("RGBA", (5_000, 5_000)), "gray16.png": ("I;16", (5_000, 5_000)),
           "palette.png": ("P", (5_000, 5_000)), "photo48mp.jpg": ("RGB", (8_000, 6_000))}


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, list[dict]]:
    """Reports of load_image + model_view for every bad file, of the app for a few, from one child process."""
    folder = tmp_path_factory.mktemp("uploads")
    for case, data, _ in BAD_IMAGES:
        (folder / f"{case}.png").write_bytes(data)
    (folder / "long.png").write_bytes(LONG_BUT_ALLOWED)
    (folder / "photo.jpg").write_bytes(encode(Image.effect_noise((300, 200), 40).convert("RGB"), "JPEG"))
    for name, (mode, size) in LARGEST.items():
        Image.new(mode, size, 7).save(folder / name, **({"transparency": 0} if mode == "P" else {}))
    cases = [("image", str(folder / f"{case}.png")) for case in IDS] + [("image", str(folder / "long.png"))]
    cases += [("image", str(folder / name)) for name in LARGEST]
    cases += [("app", str(folder / f"{case}.png")) for case in UPLOADED] + [("app", str(folder / "photo.jpg"))]
    flat = run_group(cases)
    images = len(IDS) + 1 + len(LARGEST)
    return {"image": flat[: len(IDS) + 1], "largest": flat[len(IDS) + 1: images], "app": flat[images:]}


def test_the_table_has_at_least_twenty_cases():
    assert len(IDS) >= 20 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("index", range(len(BAD_IMAGES)), ids=IDS)
def test_bad_file_is_refused_with_one_sentence(reports, index):
    case, _, words = BAD_IMAGES[index]
    report = reports["image"][index]
    assert "traceback" not in report, report["traceback"]
    assert report["status"] == 2 and words in report["message"], report
    assert report["message"].count(". ") == 0 and report["message"].endswith("."), report["message"]
    assert report["peak_kb"] < MEMORY_LIMIT_KB


def test_a_long_image_within_the_limits_is_used_without_a_large_intermediate(reports):
    report = reports["image"][-1]
    assert report["status"] == 0, report
    assert report["peak_kb"] < MEMORY_LIMIT_KB


@pytest.mark.parametrize("index", range(len(LARGEST)), ids=list(LARGEST))
def test_the_costliest_accepted_images_stay_within_the_memory_bound(reports, index):
    report = reports["largest"][index]
    assert report["status"] == 0, report
    assert report["peak_kb"] < MEMORY_LIMIT_KB
    if list(LARGEST)[index] == "photo48mp.jpg":
        assert report["size"] == [4_000, 3_000]  # decoded at half scale, never at 48 M pixels


@pytest.mark.parametrize("index", range(len(UPLOADED)), ids=UPLOADED)
def test_bad_upload_on_explore_shows_one_error_and_the_page_recovers(reports, index):
    report = reports["app"][index]
    words = dict((case, words) for case, _, words in BAD_IMAGES)[UPLOADED[index]]
    assert "traceback" not in report, report["traceback"]
    assert report["exceptions"] == [] and len(report["errors"]) == 1, report
    assert report["errors"][0].startswith(f"{UPLOADED[index]}.png: ") and words in report["errors"][0]
    assert report["recovered"] and report["peak_kb"] < MEMORY_LIMIT_KB


def test_a_good_upload_after_the_bad_ones_shows_no_error(reports):
    report = reports["app"][-1]
    assert report["exceptions"] == [] and report["errors"] == [], report


def test_a_file_named_like_no_image_gets_one_message_not_an_exception_on_explore_and_global_context():
    from streamlit.testing.v1 import AppTest

    main = Path(__file__).resolve().parents[2] / "app" / "main.py"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'
    for page, key in (("views/explore.py", "explore_upload"), ("views/global_context.py", "gc_item_a_upload"),
                      ("views/global_context.py", "gc_item_b_upload")):
        for name in ("image.svg", "../../etc/passwd"):
            at = AppTest.from_file(str(main), default_timeout=180)
            at.run()
            at.switch_page(page).run()
            at.file_uploader(key=key).set_value((name, svg, "image/svg+xml")).run()
            assert not at.exception, (page, name, at.exception)
            messages = [e.value for e in at.error]
            assert len(messages) == 1 and "not an image in a supported format" in messages[0], (page, name, messages)
