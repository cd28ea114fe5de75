"""Shareable state: a page's main settings mirrored in the URL (``st.query_params``), so a prepared
link such as ``/explore?model=sb_resnet38.fmnist&sample=fmnist_0009_sneaker.png`` reopens the same
page, model and image.

A page lists its parameters as ``Param``s; ``pull`` (before its widgets) applies a value that came
from outside (a new link), ``push`` (after them) writes the current values back, all at once when the run
ends. A link value that names no available choice is left out, and a small notice (a toast) says which
and why. A value the app itself wrote for a widget is never re-applied to that widget, so moving a
control is never undone by the URL. Pages share parameter names (``model``, ``sample``), so what was written is recorded per
widget key: a value another page wrote under the same name is still applied.

The browser sends its URL with every rerun, and after quick successive reruns (a file replacing another in an
uploader) it can send one the app wrote a moment earlier. The URLs the last few script runs of the current page
ended with are remembered (``begin_run``, ``end_run``; forgotten when the page changes), and the same URL arriving
again on that page is the app's own echo, never a new link: it is not applied. (A link from another page naming
the same values is applied.)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import streamlit as st

_PUSHED = "_url_pushed"  # widget key -> the URL text last written or applied for it
_WRITTEN = "_url_written"  # the whole queries the last ECHO_RUNS script runs of the current page ended with
_PAGE = "_url_page"  # the page of the current script run
_PENDING = "_url_pending"  # URL parameter -> text (None: remove) this run wants, written by ``end_run``
_CHANGED = "_url_changed"  # this run pushed a value other than the one last written for its widget
ECHO_RUNS = 3  # a stale echo seen here came from two runs back (a file replacing another in an uploader)


def _query() -> frozenset:
    return frozenset(st.query_params.to_dict().items())


@dataclass(frozen=True)
class Param:
    """One URL parameter bound to a widget key; ``options`` lists the values it may take."""

    name: str
    key: str
    options: Callable[[], Sequence[Any]]
    many: bool = False  # a multiselect: comma-separated in the URL
    max_count: int | None = None  # a multiselect's max_selections: later values in the URL are dropped

    def read(self, text: str) -> tuple[Any | None, list[str]]:
        """(the widget value for a URL text or None, what of the text was left out and why)."""
        by_text = {str(option): option for option in self.options()}
        if not self.many:
            return (by_text[text], []) if text in by_text else (None, [f"{self.name}={text[:40]} (not one of the choices)"])
        parts = text.split(",")
        unknown = [part for part in parts if part not in by_text]
        named = list(dict.fromkeys(part for part in parts if part in by_text))  # each option once, in order
        left_out = [f"{self.name}: {', '.join(p[:40] for p in unknown[:3])} (not among the choices)"] if unknown else []
        repeated = [part for part in named if parts.count(part) > 1]
        if repeated:
            left_out.append(f"{self.name}: {', '.join(repeated[:3])} again (each counts once)")
        if self.max_count is not None and len(named) > self.max_count:
            left_out.append(f"{self.name}: {', '.join(named[self.max_count:])} (at most {self.max_count})")
        values = [by_text[part] for part in named][:self.max_count]
        return values or None, left_out

    def encode(self, value: Any) -> str:
        return ",".join(map(str, value)) if self.many else str(value)


def steps(low: float, high: float, step: float) -> list[float]:
    """Every value of a float slider from ``low`` to ``high`` by ``step``, rounded as the slider shows them."""
    count = round((high - low) / step)
    return [round(low + i * step, 10) for i in range(count + 1)]


def pull(params: Sequence[Param]) -> None:
    """Apply URL values that the app did not write itself to the widgets' session state."""
    if _query() in st.session_state.setdefault(_WRITTEN, []):
        return  # an echo of a URL this page wrote, perhaps an older one: the widgets hold the truth
    pushed = st.session_state.setdefault(_PUSHED, {})
    ignored = []
    for param in params:
        text = st.query_params.get(param.name)
        if text is None or pushed.get(param.key) == text:
            continue
        value, left_out = param.read(text)
        if value is not None:
            st.session_state[param.key] = value
        ignored += left_out
        pushed[param.key] = text
    if ignored:
        st.toast("Left out of the link: " + "; ".join(ignored), icon=":material/link_off:")


def push(params: Sequence[Param]) -> None:
    """Write the widgets' current values into the URL (at the end of the script run, see ``end_run``)."""
    pushed = st.session_state.setdefault(_PUSHED, {})
    pending = st.session_state.setdefault(_PENDING, {})
    for param in params:
        if param.key in st.session_state:
            text = param.encode(st.session_state[param.key])
            if pushed.get(param.key) != text:
                st.session_state[_CHANGED] = True
            pushed[param.key] = text
            pending[param.name] = text


def drop(param: Param) -> None:
    """Remove a parameter from the URL (for a value that is the default), forgetting it was written."""
    st.session_state.setdefault(_PUSHED, {}).pop(param.key, None)
    st.session_state.setdefault(_PENDING, {})[param.name] = None
    if param.name in st.query_params:
        st.session_state[_CHANGED] = True


def begin_run(page: str) -> None:
    """Name the page this script run shows (before any ``pull``); a new page starts with no remembered URLs."""
    if st.session_state.get(_PAGE) != page:
        st.session_state[_WRITTEN] = []
    st.session_state[_PAGE] = page


def end_run() -> None:
    """Write what this run pushed and dropped into the URL in one change (the browser adds a history entry per
    change, so one per parameter would make Back step through them rather than go to the previous page), then
    remember the URL the run ends with, so that the browser's later echo of it is not taken for a link."""
    pending = st.session_state.pop(_PENDING, {})
    changed = st.session_state.pop(_CHANGED, False)
    current = st.query_params.to_dict()
    wanted = {name: text for name, text in {**current, **pending}.items() if text is not None}
    # A bare URL with nothing changed since the page last wrote its values is where Back led: writing again
    # would push a new entry in front of the one Back is heading for, and Back could never leave the page.
    if wanted != current and (current or changed):
        st.query_params.from_dict(wanted)
    written = st.session_state.setdefault(_WRITTEN, [])
    written.append(_query())
    del written[:-ECHO_RUNS]


def stop() -> NoReturn:
    """End the page here, as ``st.stop`` does, with its URL written first (after ``st.stop`` every Streamlit
    call raises, so ``end_run`` could not run later)."""
    end_run()
    st.stop()
