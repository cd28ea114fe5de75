"""Figures and downloads: plotly charts for the pages, PNG overlays made with PIL, CSV/JSON data.

Every chart goes through ``show_chart``, which adds plotly's own PNG export (camera icon) and a
download of the numbers behind it; overlays can be saved as PNG images.
"""
from __future__ import annotations

import io
import json
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import get_colorscale, sample_colorscale
from plotly.subplots import make_subplots
from PIL import Image

from app import look
from sbcore.analysis import Faithfulness

COLOUR_MAPS = ["inferno", "viridis", "magma", "plasma", "cividis", "turbo"]  # sequential: magnitudes
DIVERGING_COLOURS = {"RdBu_r": ("red", "blue"), "PuOr_r": ("orange", "purple"), "PiYG": ("green", "pink")}
DIVERGING_MAPS = list(DIVERGING_COLOURS)  # signed values, zero in the middle (white): (positive, negative) colours
_MIME = {".csv": "text/csv", ".json": "application/json", ".png": "image/png", ".md": "text/markdown"}


@lru_cache(maxsize=16)
def colour_table(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of a plotly colour scale."""
    colours = sample_colorscale(get_colorscale(name), np.linspace(0, 1, 256).tolist(), colortype="tuple")
    return (np.asarray(colours) * 255).round().astype(np.uint8)


def colour_scale(name: str, steps: int = 32) -> list[list]:
    """A plotly colour scale as ``rgb(...)`` stops.

    Streamlit's chart frontend rewrites the hex colours #000001-#000010 (its theme placeholders),
    which would turn the black end of inferno/magma (#000004) violet; rgb() strings pass untouched.
    """
    table = colour_table(name)[np.linspace(0, 255, steps).round().astype(int)]
    return [[i / (steps - 1), "rgb({},{},{})".format(*colour)] for i, colour in enumerate(table)]


def sign_legend(cmap: str) -> str:
    """``"red positive, blue negative"`` for a diverging colour map."""
    positive, negative = DIVERGING_COLOURS[cmap]
    return f"{positive} positive, {negative} negative"


def centred_range(values: np.ndarray) -> tuple[float, float]:
    """(-m, m) with m the largest |value| (1 for all zeros): zero sits in the middle of a diverging colour map."""
    largest = float(np.abs(values).max()) or 1.0
    return -largest, largest


def as_rgb(view: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) -> (H, W, 3)."""
    return np.repeat(view[..., None], 3, axis=2) if view.ndim == 2 else view


def _normalise(values: np.ndarray, zmin: float, zmax: float) -> np.ndarray:
    return np.clip((values - zmin) / max(zmax - zmin, 1e-12), 0, 1)


def overlay_png(
    view: np.ndarray, heat: np.ndarray, cmap: str, opacity: float, zmin: float, zmax: float, min_side: int = 448
) -> bytes:
    """PNG of a heat map (H, W) blended over an image (H, W[, 3]), scaled up to ``min_side`` pixels."""
    colours = colour_table(cmap)[(_normalise(heat, zmin, zmax) * 255).round().astype(np.uint8)]
    blended = (1 - opacity) * as_rgb(view).astype(np.float32) + opacity * colours.astype(np.float32)
    return png_bytes(enlarge(blended.round().astype(np.uint8), min_side))


def enlarge(view: np.ndarray, min_side: int = 448) -> Image.Image:
    """Scale a small uint8 image (H, W[, 3]) up by a whole factor with sharp pixels, for display."""
    image = Image.fromarray(view)
    scale = max(1, int(np.ceil(min_side / min(image.size))))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)


def display_image(image: Image.Image, min_side: int = 256) -> Image.Image:
    """An uploaded or sample image for display: small ones (e.g. 28x28) enlarged with sharp pixels."""
    if min(image.size) >= min_side:
        return image
    return enlarge(np.asarray(image), min_side)


def png_bytes(image: Image.Image | np.ndarray) -> bytes:
    """Encode an image (PIL or uint8 array) as PNG."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def image_figure(
    view: np.ndarray,
    heat: np.ndarray | None = None,
    *,
    cmap: str = "inferno",
    opacity: float = 0.6,
    zmin: float | None = None,
    zmax: float | None = None,
    title: str | None = None,
    marker: tuple[float, float] | None = None,
    click_grid: int = 0,
    height: int = 380,
) -> go.Figure:
    """An image (H, W[, 3]) with an optional heat map (H, W) on top.

    ``marker`` is a (row, col) point in [0, 1] drawn as a cross; ``click_grid`` > 0 adds an
    invisible grid of that many points per side whose selection reports a position.
    """
    rows, cols = view.shape[:2]
    fig = go.Figure(go.Image(z=as_rgb(view), hoverinfo="skip"))
    if heat is not None:
        fig.add_trace(
            go.Heatmap(
                z=heat, colorscale=colour_scale(cmap), zmin=zmin, zmax=zmax, opacity=opacity,
                colorbar=dict(thickness=12, len=0.9), hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>",
            )
        )
    if click_grid:
        centres = (np.arange(click_grid) + 0.5) / click_grid
        grid_rows, grid_cols = np.meshgrid(centres * rows - 0.5, centres * cols - 0.5, indexing="ij")
        fig.add_trace(
            go.Scatter(
                x=grid_cols.ravel(), y=grid_rows.ravel(), mode="markers", name="query",
                marker=dict(size=max(4, 300 // click_grid), opacity=0, color="white"),
                hovertemplate="click to query here<extra></extra>", showlegend=False,
            )
        )
    if marker is not None:
        fig.add_trace(
            go.Scatter(
                x=[marker[1] * cols - 0.5], y=[marker[0] * rows - 0.5], mode="markers", showlegend=False,
                marker=dict(symbol="x-thin", size=16, line=dict(width=3, color="#00e5ff")), hoverinfo="skip",
            )
        )
    fig.update_xaxes(visible=False, range=[-0.5, cols - 0.5])
    fig.update_yaxes(visible=False, range=[rows - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(
        title=title, height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0), dragmode=False,
        clickmode="event+select",
    )
    return fig


def clicked_position(event: dict, view_shape: Sequence[int]) -> tuple[float, float] | None:
    """(row, col) in [0, 1] of the first selected point of an ``image_figure`` click grid, if any."""
    points = event.get("selection", {}).get("points", []) if event else []
    if not points:
        return None
    rows, cols = view_shape[:2]
    return (float(points[0]["y"]) + 0.5) / rows, (float(points[0]["x"]) + 0.5) / cols


def heatmap_grid(
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    cmap: str = "inferno",
    columns: int = 4,
    height_per_row: int = 220,
    centred: bool = False,
) -> go.Figure:
    """Small multiples of 2D maps on one colour range, with its colour bar; ``centred``: a range symmetric about
    zero, for a diverging colour map."""
    count = len(maps)
    columns = min(columns, count)
    rows = int(np.ceil(count / columns))
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=list(titles), horizontal_spacing=0.03, vertical_spacing=0.08)
    low = float(min(np.min(m) for m in maps))
    high = float(max(np.max(m) for m in maps))
    if centred:
        high = max(abs(low), abs(high)) or 1.0
        low = -high
    for index, values in enumerate(maps):
        row, col = divmod(index, columns)
        fig.add_trace(
            go.Heatmap(
                z=values, colorscale=colour_scale(cmap), zmin=low, zmax=high, showscale=index == 0, colorbar=dict(thickness=12, len=0.9),
                hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>",
            ),
            row=row + 1, col=col + 1,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    for index in range(count):  # square pixels: each y axis follows its own x axis
        fig.update_yaxes(scaleanchor=f"x{index + 1 if index else ''}", row=index // columns + 1, col=index % columns + 1)
    fig.update_layout(height=height_per_row * rows + 40, margin=dict(l=0, r=0, t=40, b=0))
    return fig


def predictions_figure(frame: pd.DataFrame, height: int = 240) -> go.Figure:
    """Horizontal bars of top-k probabilities; ``frame`` has columns class and probability (0-1)."""
    fig = go.Figure(
        go.Bar(
            x=frame["probability"] * 100, y=frame["class"], orientation="h",
            text=[f"{p * 100:.1f}%" for p in frame["probability"]], textposition="auto",
            marker_color="#4c78a8", hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="probability (%)", range=[0, 100])
    fig.update_layout(height=height, margin=dict(l=0, r=10, t=10, b=0))
    return fig


def faithfulness_figure(result: Faithfulness, height: int = 250) -> go.Figure:
    """The deletion and insertion curves of one map (solid) beside a random map's (dashed), over the share of
    pixels changed, most relevant first."""
    figure = go.Figure()
    for kind, colour in (("deletion", "#d62728"), ("insertion", "#1f77b4")):
        for curve, dash, name in ((getattr(result, kind), "solid", kind), (result.random[kind], "dash", f"random {kind}")):
            figure.add_scatter(x=curve.fractions, y=curve.scores, name=name, mode="lines",
                               line={"color": colour, "dash": dash})
    figure.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         xaxis_title="pixels changed", yaxis_title="P(class)", yaxis_range=[0, 1.02],
                         legend={"orientation": "h", "y": -0.4, "yanchor": "top"})
    return figure


def faithfulness_frame(result: Faithfulness) -> pd.DataFrame:
    """The curves behind ``faithfulness_figure``, one column per curve."""
    columns = {"share_changed": result.deletion.fractions}
    for kind in ("deletion", "insertion"):
        columns[kind] = getattr(result, kind).scores
        columns[f"random_{kind}"] = result.random[kind].scores
    return pd.DataFrame(columns)


def show_chart(fig: go.Figure, key: str, file_stem: str, data: pd.DataFrame | None = None, **chart_kwargs):
    """Render a plotly figure (PNG export under the camera icon) plus a CSV of its data.

    Extra keyword arguments go to ``st.plotly_chart`` (e.g. ``on_select``); returns its value.
    """
    config = {"displaylogo": False, "toImageButtonOptions": {"filename": file_stem, "scale": 2}}
    if fig.layout.height:
        fig.update_layout(height=look.scaled(fig.layout.height))
    fig.update_layout(font_size=look.font_size())
    if look.presenting():  # ticks, legend and axis titles too, which Streamlit's chart theme sizes apart
        size = look.font_size()  # (only then: plotly's validated updates cost ~10 ms a chart on every rerun)
        fig.update_layout(legend_font_size=size)
        fig.update_xaxes(tickfont_size=size, title_font_size=size)
        fig.update_yaxes(tickfont_size=size, title_font_size=size)
    event = st.plotly_chart(fig, key=key, config=config, **chart_kwargs)
    if data is not None:
        download("CSV", data, f"{file_stem}.csv", key=f"{key}_csv")
    return event


def download(label: str, data: pd.DataFrame | dict | list | bytes | str, file_name: str, key: str) -> None:
    """A download button for a table (CSV), a JSON-able object, or ready bytes (PNG...); its widget key
    is ``key`` + ``_download``, which ``app.memory`` leaves alone."""
    if isinstance(data, pd.DataFrame):
        data = data.to_csv(index=False)
    elif isinstance(data, (dict, list)):
        data = json.dumps(data, indent=2, default=str)
    suffix = file_name[file_name.rfind("."):]
    st.download_button(
        f":material/download: {label}", data, file_name=file_name, mime=_MIME.get(suffix, "application/octet-stream"),
        key=f"{key}_download", on_click="ignore",
    )


def map_frame(values: np.ndarray) -> pd.DataFrame:
    """A 2D map (H, W) as a table with one row per pixel: row, col, value."""
    rows, cols = np.indices(values.shape)
    return pd.DataFrame({"row": rows.ravel(), "col": cols.ravel(), "value": values.ravel()})
