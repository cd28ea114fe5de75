"""How much memory the server takes for the effective-receptive-field links that once took gigabytes.

    python benchmarks/erf_links_memory.py            # both links, Compute on the second (about 2 minutes)
    python benchmarks/erf_links_memory.py --count 4  # a shorter Compute

Starts a fresh server on loopback, samples its resident memory every 0.2 s, and in headless Chromium:
1. opens the ERF page with every model name in the link (``stage=layer1&source=noise``);
2. opens it with the four ResNet-101s at layer4 on ``--count`` noise images, then presses Compute.
Prints the server's resident memory before, the peak of each step and the time it took, beside the 1.5 GB the
hardening issue allows, and what importing the app's libraries alone takes in a bare process (the floor).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import sbcore  # noqa: E402
from benchmarks.classroom_load import ServerWatch  # noqa: E402
from tools.screenshots import CHROMIUM, CHROMIUM_ARGS, free_port, start_server, wait_idle  # noqa: E402

LIMIT_MB = 1536
LARGE = ["sbnl_resnet101", "nl_resnet101", "sb_resnet101", "resnet101"]
IMPORTS = ("import torch, torchvision, streamlit, plotly.graph_objects, captum.attr; from pathlib import Path; "
           "print(next(l.split()[1] for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmRSS')))")


def imports_mb() -> float:
    """Resident memory of a bare process that imports the app's libraries and nothing else."""
    return int(subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True).stdout) / 1024


def step(watch: ServerWatch, label: str, action) -> dict:
    """Run ``action``; the server's peak resident memory over it (the watch's peak is reset first) and the time."""
    watch.peak_mb = watch.rss_mb()
    started = time.monotonic()
    action()
    row = {"step": label, "peak_mb": watch.peak_mb, "after_mb": watch.rss_mb(), "seconds": time.monotonic() - started}
    print(f"{label:<58} peak {row['peak_mb']:6.0f} MB  after {row['after_mb']:6.0f} MB  {row['seconds']:6.1f} s  "
          f"{'within' if row['peak_mb'] <= LIMIT_MB else 'OVER'} {LIMIT_MB} MB", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=32, help="noise images for the ResNet-101 Compute (default: 32)")
    args = parser.parse_args()
    every = sbcore.list_models() + sbcore.list_models(pretrained=True)
    links = {
        f"open: all {len(every)} model names, layer1": {"models": ",".join(every), "stage": "layer1", "source": "noise"},
        "open: four ResNet-101s, layer4": {"models": ",".join(LARGE), "stage": "layer4", "source": "noise",
                                           "count": str(args.count)},
    }
    port = free_port()
    with tempfile.TemporaryDirectory() as logs, ServerWatch(port) as watch:
        with start_server(Path(logs) / "server.log", port=port) as url:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                time.sleep(1.0)  # the watch finds the server's process
                print(f"server at start: {watch.rss_mb():.0f} MB; the app's imports alone: {imports_mb():.0f} MB")
                for label, query in links.items():
                    step(watch, label, lambda query=query: (
                        page.goto(f"{url}/receptive_field?{urlencode(query)}", timeout=120_000), wait_idle(page)))
                step(watch, f"Compute: four ResNet-101s, {args.count} noise images", lambda: (
                    page.get_by_role("button", name="Compute").click(), wait_idle(page, timeout_ms=1_200_000)))
                shown = page.get_by_text("Log-scaled ERF").count() > 0
                print(f"results shown: {shown}; errors on the page: {page.get_by_text('Something went wrong').count()}")
                browser.close()


if __name__ == "__main__":
    main()
