"""Small pieces several pages show: a prediction with its out-of-distribution notice, the Values choice of a map."""
from __future__ import annotations

import streamlit as st

from app import plots
from sbcore.analysis import Prediction
from sbcore.analysis.ood import Familiarity

FAMILIARITY_HELP = (
    "How familiar the input looks to the model: the distance of its last-stage features to the nearest "
    "class's training features (Mahalanobis), ranked among the model's test images. Below their 5th "
    "percentile the input counts as unusual (as 5% of the test images do); below every test image, the prediction "
    "is probably meaningless."
)


def prediction(top: Prediction, familiarity: Familiarity | None) -> None:
    """``Predicted: **label** (p%)`` with, beside it, how familiar the input looks to the model."""
    st.markdown(f"Predicted: **{top.label}** ({top.probability:.1%})")
    if familiarity is None:
        st.caption("No familiarity calibration for this model, so no out-of-distribution check.")
    elif familiarity.unlike_every_test_image:
        st.warning(
            "Unlike anything the model was tested on: less familiar to this model than every one of its test images. "
            "The prediction is probably meaningless.",
            icon=":material/report:",
        )
    elif familiarity.unusual:
        st.caption(
            f":material/info: Unusual for this model: less familiar than {1 - familiarity.percentile:.1%} of its test "
            "images (5% of the test images themselves are this unusual), so weigh the prediction with care.",
            help=FAMILIARITY_HELP,
        )
    else:
        st.caption(
            f":material/check_circle: Familiar input: scores above {familiarity.percentile:.0%} of the test images.",
            help=FAMILIARITY_HELP,
        )


VALUES = {"signed": "signed (0 = white)", "magnitude": "|value|"}


def value_display(key: str, allow_signed: bool = True) -> tuple[bool, str]:
    """The Values choice and a colour map that fits it: (signed, colour map). Signed values get a diverging map
    centred on zero, magnitudes a sequential one; ``allow_signed`` False (a magnitude-only method) offers no
    choice. Widget keys: ``{key}_values``, ``{key}_signed_cmap``, ``{key}_cmap``."""
    if not allow_signed:
        st.caption("Values: |value| (this method gives magnitudes only)")
    elif st.radio("Values", list(VALUES), format_func=VALUES.get, key=f"{key}_values", horizontal=True) == "signed":
        return True, st.selectbox("Colour map", plots.DIVERGING_MAPS, key=f"{key}_signed_cmap")
    return False, st.selectbox("Colour map", plots.COLOUR_MAPS, key=f"{key}_cmap")


def chosen_display(key: str, allow_signed: bool = True) -> tuple[bool, str]:
    """What ``value_display(key, allow_signed)`` shows, read before (or without) drawing it."""
    if allow_signed and st.session_state.get(f"{key}_values", "signed") == "signed":
        return True, st.session_state.get(f"{key}_signed_cmap", plots.DIVERGING_MAPS[0])
    return False, st.session_state.get(f"{key}_cmap", plots.COLOUR_MAPS[0])
