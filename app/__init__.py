"""Spatial Bias Explorer: the Streamlit app (``streamlit run app/main.py``).

``main.py`` sets up the page, the page guard and ``st.navigation`` over ``views/`` (one file per
page, a few functions per file, one per section); the small modules here hold what pages share:
``state`` (models), ``checkpoints`` (models from uploaded files), ``inputs`` (images), ``compute``
(cached results), ``memory`` (results and widget values kept in the session), ``links`` (settings in
the URL), ``guard`` (errors as one sentence), ``jobs`` (the compute scheduler), ``tour``,
``look``, ``plots``, ``widgets``.
"""
