"""Spatial Bias Explorer: ``streamlit run app/main.py`` from the repository root."""
from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `streamlit run` puts app/ on the path, the pages import the app package
    sys.path.insert(0, str(_ROOT))

from app import state  # noqa: E402

_PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="Spatial Bias Explorer", page_icon=":material/grid_on:", layout="wide")

navigation = st.navigation(
    [
        st.Page(_PAGES / "explore.py", title="Explore", icon=":material/image_search:", default=True),
        st.Page(_PAGES / "compare.py", title="Compare attributions", icon=":material/compare:"),
        st.Page(_PAGES / "receptive_field.py", title="Effective receptive field", icon=":material/blur_on:"),
        st.Page(_PAGES / "throughput.py", title="Throughput", icon=":material/speed:"),
        st.Page(_PAGES / "models.py", title="Models", icon=":material/deployed_code:"),
    ]
)
st.sidebar.title("Spatial Bias Explorer")
st.sidebar.caption("Global context without attention: spatial bias (Go & Ryu, 2023) next to plain and non-local ResNets.")
state.device_picker()
if state.user_models():
    st.sidebar.caption("Your checkpoints this session: " + ", ".join(state.user_models()))
navigation.run()
