"""Screenshots of every page for docs/, taken in headless Chromium against a real server.

    python -m tools.screenshots [--out docs] [--chromium /usr/bin/chromium]

Starts ``streamlit run app/main.py`` on a free port, opens each page (running the attributions, the
ERF and the benchmark with their default settings), saves ``<out>/<page>.png`` and prints the time from
starting the server to the first rendered prediction. ``start_server`` and ``wait_idle`` are
shared with the end-to-end test.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    """An unused localhost TCP port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log_path: Path, timeout: float = 90.0) -> None:
    """Return once the Streamlit server ``server`` at ``url`` answers its health check; raise if it exits first
    or does not answer within ``timeout`` seconds (both messages point to ``log_path``)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer within {timeout:.0f} s; see {log_path}")
            time.sleep(0.25)


@contextmanager
def start_server(log_path: Path, port: int | None = None, timeout: float = 90.0, cwd: Path = ROOT) -> Iterator[str]:
    """Run the app headless on localhost, yield its URL once healthy, stop it afterwards.

    ``cwd`` is the server's working folder (the app must not depend on it); the settings of
    ``.streamlit/config.toml`` that matter are repeated on the command line for that reason.
    The server's stdout and stderr go to ``log_path`` (checked for tracebacks by the tests).
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false", "--runner.postScriptGC", "false"],
            cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(url, server, log_path, timeout)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


_RUNNING = '[data-testid="stStatusWidget"]'
_SETTLED = (  # script finished, nothing stale, no placeholder skeletons, every image decoded
    "() => !document.querySelector('[data-testid=\"stStatusWidget\"], [data-stale=\"true\"], "
    "[data-testid=\"stSkeleton\"], [data-testid=\"stSkeletonElement\"]')"
    " && [...document.images].every(image => image.complete)"
)


def wait_idle(page, timeout_ms: float = 300_000) -> None:
    """Wait for the rerun an action just triggered to start (if it does within 10 s) and for the page
    to settle: Streamlit's "Running" widget gone, no stale element, no skeleton, images loaded."""
    try:
        page.wait_for_selector(_RUNNING, timeout=10_000)
    except PlaywrightTimeoutError:
        pass  # the rerun was quicker than the check, or nothing was triggered
    page.wait_for_function(_SETTLED, timeout=timeout_ms)


def capture(page, path: Path) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main element, so grow the viewport to fit it."""
    size = page.viewport_size
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    page.wait_for_timeout(1000)  # charts re-layout to the new size
    page.wait_for_function(_SETTLED, timeout=120_000)
    page.screenshot(path=path)
    page.set_viewport_size(size)


def _open(page, url: str, text: str) -> None:
    page.goto(url, timeout=300_000)
    page.get_by_text(text, exact=False).first.wait_for(timeout=600_000)
    wait_idle(page)


def take_screenshots(out: Path, chromium: str = CHROMIUM) -> float:
    """Save one PNG per page into ``out``; returns seconds from server start to the first prediction.

    Raises RuntimeError when the server logged a traceback on the way.
    """
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "server.log"
        first_prediction = _visit_pages(out, chromium, log, started)
        if "Traceback" in log.read_text():
            raise RuntimeError(f"The server logged a traceback:\n{log.read_text()}")
    return first_prediction


def _visit_pages(out: Path, chromium: str, log: Path, started: float) -> float:
    with start_server(log) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        _open(page, f"{url}/explore", "Predicted:")
        first_prediction = time.monotonic() - started
        capture(page, out / "explore.png")

        page.get_by_label("Model", exact=True).click()  # a non-local model to show its attention too
        page.get_by_role("option", name="sbnl_resnet38.fmnist").click()
        page.get_by_text("Non-local attention").wait_for(timeout=300_000)
        wait_idle(page)
        attention = page.locator(".js-plotly-plot").last
        attention.scroll_into_view_if_needed()
        plot_area = attention.locator(".nsewdrag").first.bounding_box()
        page.mouse.click(plot_area["x"] + 0.7 * plot_area["width"], plot_area["y"] + 0.3 * plot_area["height"])
        wait_idle(page)
        capture(page, out / "explore_non_local.png")

        _open(page, f"{url}/global_context?ablate_model=sb_lab_resnet14.samediff&ablate=layer3.0&ablate_mode=mean",
              "P(same)")
        page.get_by_role("button", name="Switch off and measure").click()
        page.get_by_text("Switching off SB layer3.0").wait_for(timeout=300_000)
        wait_idle(page)
        page.get_by_role("button", name="Sweep distance").click()
        page.get_by_text("plain reach:").first.wait_for(timeout=300_000)
        wait_idle(page)
        capture(page, out / "global_context.png")

        _open(page, f"{url}/compare", "Run")
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Attributing class").first.wait_for(timeout=300_000)
        wait_idle(page)
        capture(page, out / "compare.png")

        _open(page, f"{url}/receptive_field", "Number of images")
        page.get_by_role("button", name="Compute").click()
        page.get_by_text("Area ratios").wait_for(timeout=300_000)
        wait_idle(page)
        capture(page, out / "receptive_field.png")

        _open(page, f"{url}/throughput", "Run benchmark")
        page.get_by_role("button", name="Run benchmark").click()
        page.get_by_text("Against the paper").wait_for(timeout=300_000)
        wait_idle(page)
        capture(page, out / "throughput.png")

        _open(page, f"{url}/models", "Parameters")
        page.get_by_role("tab", name="Accuracy").click()
        page.wait_for_timeout(1000)
        capture(page, out / "models.png")

        _open(page, url, "What is spatial bias?")
        page.locator('[data-testid="stGraphVizChart"] svg').first.wait_for(timeout=60_000)
        capture(page, out / "intro.png")
        browser.close()
    return first_prediction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs (default: docs/)")
    parser.add_argument("--chromium", default=CHROMIUM, help="Chromium executable")
    args = parser.parse_args()
    seconds = take_screenshots(args.out, args.chromium)
    print(f"Screenshots in {args.out}; first prediction {seconds:.1f} s after starting the server.")


if __name__ == "__main__":
    main()
