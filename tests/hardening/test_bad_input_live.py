"""The hardening cases on a live server: in a real browser where a browser can send them, and through
Streamlit's websocket protocol where only a hand-made client can (a file name the browser's picker refuses)."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the benchmarks' protocol client and the tools live beside the package
    sys.path.insert(0, str(ROOT))
from benchmarks.streamlit_protocol import BROKEN, StreamlitClient  # noqa: E402
from tools.screenshots import CHROMIUM, CHROMIUM_ARGS, start_server, wait_idle  # noqa: E402

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>'


async def _upload_named(url: str, folder: Path, name: str) -> tuple[list[str], bool]:
    """Upload ``SVG`` under ``name`` on Explore; (what looks broken, whether the format message shows)."""
    client = await StreamlitClient.connect(url)
    try:
        await client.open("explore")
        path = folder / name.replace("/", "_")
        path.write_bytes(SVG)
        await client.upload(path, name=name)
        return client.broken(), client.shows("not an image in a supported format")
    finally:
        await client.close()


def test_bad_links_and_uploads_give_one_message_on_a_live_server(tmp_path):
    log = tmp_path / "server.log"
    with start_server(log) as url:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # '²' passes str.isdigit() but not int(): once it broke Explore for good
            page.goto(f"{url}/explore?tour=%C2%B2", timeout=300_000)
            page.get_by_text("Left out of the link: tour=²").first.wait_for(timeout=120_000)
            page.get_by_text("Predicted:").first.wait_for(timeout=120_000)
            assert "tour=" not in page.url
            # one model named three times passes "at least two models" by count, not by name
            page.goto(f"{url}/compare?models=sb_resnet38.fmnist,sb_resnet38.fmnist,sb_resnet38.fmnist",
                      timeout=300_000)
            page.get_by_text("again (each counts once)").first.wait_for(timeout=120_000)
            wait_idle(page)
            compare_body = page.inner_text("body")
            browser.close()
        # a file the browser's picker would refuse, sent as the protocol allows
        uploads = {name: asyncio.run(_upload_named(url, tmp_path, name)) for name in ("image.svg", "../../etc/passwd")}
    assert not any(text in compare_body for text in BROKEN)
    for name, (broken, message) in uploads.items():
        assert broken == [] and message, (name, broken, message)
    assert "Traceback" not in log.read_text()
