"""The page guard: an error inside a page becomes one sentence on the page and a full report in the
server log, so no traceback (or server path) ever reaches the browser and the session goes on."""
from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

_LOG = logging.getLogger("sbcore.app")
_PATH = re.compile(r"(?<![\w.])(?:/[\w.\-+@~]+)+/([\w.\-+@~]+)")  # two or more parts: not "1/2"


def without_paths(message: str) -> str:
    """``message`` with every absolute file path cut to its last part (``/srv/x/a.json`` -> ``a.json``)."""
    return _PATH.sub(r"\1", message)


def say_error(message: object) -> None:
    """Show an error (an exception or a sentence) as one ``st.error`` line with no server paths."""
    st.error(without_paths(str(message)))


@contextmanager
def page_guard(title: str) -> Iterator[None]:
    """Run a page; on an unexpected exception log it with an incident id and show one sentence.

    ``st.stop()`` and reruns are ``BaseException``s in Streamlit and pass through untouched.
    """
    try:
        yield
    except Exception:
        incident = uuid.uuid4().hex[:8]
        _LOG.exception("Page %r failed (incident %s)", title, incident)
        st.error(
            f"Something went wrong on this page (incident {incident}); the details are in the server log. "
            "Change a setting or open another page to go on."
        )
