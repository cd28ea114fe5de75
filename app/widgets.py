"""Small pieces several pages show: a prediction with its out-of-distribution notice."""
from __future__ import annotations

import streamlit as st

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
