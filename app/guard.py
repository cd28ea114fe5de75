"""The page guard: an error inside a page, or in a widget callback (which Streamlit runs before the page), becomes
one sentence on the page and a full report in the server log, so no traceback (or server path) ever reaches the
browser and the session goes on."""
from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps

import streamlit as st

_LOG = logging.getLogger("sbcore.app")
_CALLBACK_ERROR = "_callback_error"  # the sentence a failed callback leaves for the page run that follows
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
    failed_callback = st.session_state.pop(_CALLBACK_ERROR, None)
    if failed_callback:
        st.error(failed_callback)
    try:
        yield
    except Exception:
        incident = uuid.uuid4().hex[:8]
        _LOG.exception("Page %r failed (incident %s)", title, incident)
        st.error(
            f"Something went wrong on this page (incident {incident}); the details are in the server log. "
            "Change a setting or open another page to go on."
        )


def guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """A widget callback whose exception is logged with an incident id and shown by the page guard as one sentence
    on the run that follows (Streamlit runs callbacks before the page, outside ``page_guard``)."""
    @wraps(callback)
    def run(*args: object, **kwargs: object) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            incident = uuid.uuid4().hex[:8]
            _LOG.exception("Callback %s failed (incident %s)", callback.__name__, incident)
            st.session_state[_CALLBACK_ERROR] = (
                f"That change could not be applied (incident {incident}); the details are in the server log. "
                "The other settings are as they were."
            )

    return run
