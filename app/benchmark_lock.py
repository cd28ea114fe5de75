"""One benchmark at a time across browser sessions.

Streamlit runs every browser session as a thread of one server process, so a module-level lock
serialises benchmarks: two users never time their models against each other's load. A session that
finds the lock taken waits, with a message, and its result records that others were measuring.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

_LOCK = threading.Lock()
_GUARD = threading.Lock()  # protects the counters below
_waiting = 0
_started_at: float | None = None
POLL_SECONDS = 0.5


def sessions_measuring() -> int:
    """Benchmarks running or waiting in this server process right now."""
    with _GUARD:
        return _waiting + (1 if _started_at is not None else 0)


@contextmanager
def benchmark_slot(on_wait: Callable[[str], None], timeout: float) -> Iterator[bool]:
    """Hold the server's benchmark slot for the ``with`` body; yields False when another session kept it
    longer than ``timeout`` seconds (the body should then give up). ``on_wait`` gets a message each poll
    while this session waits."""
    global _waiting, _started_at
    with _GUARD:
        _waiting += 1
    deadline = time.monotonic() + timeout
    acquired = False
    try:
        while not (acquired := _LOCK.acquire(timeout=POLL_SECONDS)) and time.monotonic() < deadline:
            with _GUARD:
                running = time.monotonic() - _started_at if _started_at is not None else 0.0
            on_wait(f"Another session is measuring (for {running:.0f} s so far); yours starts when it finishes, "
                    "so the two never slow each other down.")
    finally:
        with _GUARD:
            _waiting -= 1
            if acquired:
                _started_at = time.monotonic()
    try:
        yield acquired
    finally:
        if acquired:
            with _GUARD:
                _started_at = None
            _LOCK.release()
