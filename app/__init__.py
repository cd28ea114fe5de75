"""Spatial Bias Explorer: the Streamlit app (``streamlit run app/main.py``).

``main.py`` sets up the page and navigation; ``pages/`` holds one file per page (layout and
widgets only); the small modules here hold what pages share: model loading and session state,
image inputs, cached calls into ``sbcore.analysis``, and plotting helpers.
"""
