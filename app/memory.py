"""What a session remembers: widget values across pages, and each page's last result together with
the settings that made it, so a changed control marks a result stale instead of deleting it.

Long runs go through ``Run``: a progress bar with the time left, a Cancel button, and results kept
as they arrive, so an interrupted run (Cancel, a moved control, another page) leaves what it had.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

PAGE_PREFIXES = ("intro_", "explore_", "gc_", "compare_", "erf_", "speed_", "models_")
# Buttons, uploads and downloads cannot be given values through session state, so their keys must end
# in one of these (a page adding a button with another ending breaks here); charts hold events.
_NOT_VALUES = ("_run", "_cancel", "_upload", "_uploads", "_load", "_load_reference", "_download")
_PLAIN = (str, int, float, bool)


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, _PLAIN) for item in value)
    return isinstance(value, _PLAIN)


def keep_widget_values() -> None:
    """Re-store every page widget's value as a session value at the top of each run.

    Streamlit drops a widget's state when its page is not shown; re-storing it makes the value
    outlive the page, so navigating away and back finds the controls as they were.
    """
    for key in list(st.session_state):
        if (isinstance(key, str) and key.startswith(PAGE_PREFIXES) and not key.endswith(_NOT_VALUES)
                and _is_plain(st.session_state[key])):
            st.session_state[key] = st.session_state[key]


@dataclass
class Stored:
    """A page's last result: the settings it was computed with, the value, whether the run finished."""

    settings: Any  # compared with ==, never hashed
    value: Any
    complete: bool = True
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def _slot(page: str) -> str:
    return f"_result_{page}"


def recall(page: str) -> Stored | None:
    """The page's last stored result, if any."""
    return st.session_state.get(_slot(page))


def remember(page: str, stored: Stored) -> None:
    """Keep ``stored`` as the page's result for the rest of the session."""
    st.session_state[_slot(page)] = stored


def is_stale(stored: Stored, settings: Any) -> bool:
    """Whether a stored result was made with other settings than the current ones."""
    return stored.settings != settings


def show_freshness(stored: Stored, settings: Any, action: str) -> None:
    """One caption when the result shown is stale or from an interrupted run."""
    if not stored.complete:
        st.warning(
            f"The last run was stopped before it finished; showing the part it completed. Press {action} to run it again.",
            icon=":material/pause_circle:",
        )
    elif is_stale(stored, settings):
        st.caption(f":material/history: These results are for earlier settings; press {action} to update them.")


class Run:
    """A cancellable run of ``total`` steps with a progress bar that estimates the time left.

    Use as a context manager; call ``step(label)`` before each step. Results stored in between with
    ``remember(..., Stored(complete=False))`` survive an interruption.
    """

    def __init__(self, page: str, total: int, title: str) -> None:
        self.page, self.total, self.title = page, max(total, 1), title
        self.done = 0
        self.started = time.perf_counter()

    def __enter__(self) -> Run:
        self._cancel = st.empty()
        self._cancel.button("Cancel", key=f"{self.page}_cancel", icon=":material/stop_circle:",
                            help="Stops after the current step; what is done so far is kept.")
        self._bar = st.progress(0.0, text=f"{self.title}…")
        return self

    def step(self, label: str, fraction: float = 0.0) -> None:
        """Report progress: ``done`` whole steps plus ``fraction`` of the current one, labelled ``label``."""
        position = min(self.done + fraction, self.total)
        elapsed = time.perf_counter() - self.started
        left = f", about {elapsed / position * (self.total - position):.0f} s left" if position > 0 and elapsed > 1 else ""
        self._bar.progress(position / self.total, text=f"{self.title}: {label}{left}")

    def advance(self) -> None:
        """Mark one step done."""
        self.done += 1

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def __exit__(self, *exc: object) -> None:
        self._bar.empty()
        self._cancel.empty()
