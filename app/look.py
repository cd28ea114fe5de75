"""How the app looks: presentation mode (bigger fonts and figures for a projector), sharp pixels for
small inputs, and model names that wrap only at their separators."""
from __future__ import annotations

import streamlit as st

from app import links

PRESENT_KEY = "present"
_PRESENT = links.Param("present", PRESENT_KEY, lambda: [True, False])
PRESENT_SCALE = 1.35
_BASE_CSS = """
/* Small inputs (28x28) are drawn with sharp pixels, never smoothed, in charts and images alike. */
.js-plotly-plot image, [data-testid="stImage"] img { image-rendering: pixelated; }
/* Names wrap at the separators breakable() marks, never inside a word. */
h1, h2, h3, h4, p, [data-testid="stMarkdownContainer"] { overflow-wrap: normal; word-break: normal; }
"""
_PRESENT_CSS = f"""
html {{ font-size: 21px; }}
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li {{ font-size: 1.15rem; }}
[data-testid="stCaptionContainer"] {{ font-size: 1rem; }}
/* The page uses the screen's width, and page names in the sidebar wrap instead of ending in an ellipsis. */
[data-testid="stMainBlockContainer"] {{ max-width: 100%; padding-left: 2rem; padding-right: 2rem; }}
[data-testid="stSidebarNav"] [data-testid="stMarkdownContainer"], [data-testid="stSidebarNav"] p {{
  white-space: normal; overflow: visible; text-overflow: clip; }}
/* The values shown in dropdowns are set smaller than the text around them (their menus follow the page). */
[data-testid="stSelectbox"] input, [data-testid="stMultiSelect"] input {{ font-size: 1rem; }}
/* Tables are drawn on a canvas that ignores font sizes: they are enlarged as a whole, within the page's width. */
[data-testid="stDataFrame"] {{ zoom: {PRESENT_SCALE}; max-width: {100 / PRESENT_SCALE:.2f}%; }}
/* The table's frame gets its width in pixels for zoom 1: it has to follow the zoomed box instead. */
[data-testid="stDataFrameResizable"] {{ width: 100% !important; max-width: 100% !important; }}
"""


def presenting() -> bool:
    """Whether presentation mode is on (sidebar switch or ``?present=True``)."""
    return bool(st.session_state.get(PRESENT_KEY, False))


def presentation_switch() -> None:
    """The sidebar switch, kept in the URL as ``present=True`` so a prepared link opens in that mode."""
    links.pull([_PRESENT])
    st.sidebar.toggle("Presentation mode", key=PRESENT_KEY, help="Bigger fonts and figures, e.g. for a projector.")
    if presenting():
        links.push([_PRESENT])
    else:
        links.drop(_PRESENT)
    st.html(f"<style>{_BASE_CSS}{_PRESENT_CSS if presenting() else ''}</style>")


def scaled(height: int) -> int:
    """A figure height in pixels, enlarged in presentation mode."""
    return round(height * PRESENT_SCALE) if presenting() else height


def font_size() -> int:
    """Base font size for figures, in points."""
    return 17 if presenting() else 12


def breakable(name: str) -> str:
    """A model name with invisible break points after ``_`` and ``.`` (``sbnl_resnet38.fmnist``)."""
    return name.replace("_", "_\u200b").replace(".", ".\u200b")
