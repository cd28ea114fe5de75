"""Fixtures for the app tests: the repository root on sys.path and AppTest sessions per page."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# AppTest runs the app in this process; one thread avoids oversubscribing a busy 2-core machine.
torch.set_num_threads(1)

MAIN = ROOT / "app" / "main.py"
SAMPLES = ROOT / "assets" / "samples"


@pytest.fixture
def open_page():
    """``open_page("compare", query={...}, **state)``: an AppTest session run once on that page, with
    URL parameters ``query`` and widget values preset through session state (keys as in the page)
    before the first run of the page."""

    def run(page: str, query: dict[str, str] | None = None, **preset) -> AppTest:
        at = AppTest.from_file(str(MAIN), default_timeout=180)
        at.run()
        if page != "intro":
            at.switch_page(f"views/{page}.py")
        at.query_params = dict(query or {})
        for key, value in preset.items():
            at.session_state[key] = value
        return at.run()

    return run



@pytest.fixture
def sample_bytes():
    """``sample_bytes("photo_coffee.jpg")``: the bytes of a bundled sample image."""
    return lambda name: (SAMPLES / name).read_bytes()
