"""One benchmark at a time across sessions: a second session waits with a message, or gives up after its timeout."""
from __future__ import annotations

import threading
import time

from app.benchmark_lock import benchmark_slot, sessions_measuring


def test_a_second_session_waits_with_a_message_until_the_first_finishes():
    events, messages = [], []
    first_holds = threading.Event()

    def first() -> None:
        with benchmark_slot(lambda m: None, timeout=10) as acquired:
            assert acquired
            events.append("first starts")
            first_holds.set()
            time.sleep(1.2)
            events.append("first ends")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(5)
    assert sessions_measuring() == 1
    with benchmark_slot(messages.append, timeout=10) as acquired:
        events.append("second starts")
        assert acquired
    thread.join()
    assert events == ["first starts", "first ends", "second starts"]
    assert messages and "Another session is measuring" in messages[0]
    assert sessions_measuring() == 0


def test_a_session_gives_up_after_its_timeout_and_leaves_the_slot_to_the_holder():
    holder_in, release = threading.Event(), threading.Event()

    def holder() -> None:
        with benchmark_slot(lambda m: None, timeout=5):
            holder_in.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    holder_in.wait(5)
    with benchmark_slot(lambda m: None, timeout=0.6) as acquired:
        assert not acquired
    release.set()
    thread.join()
    with benchmark_slot(lambda m: None, timeout=1) as acquired:
        assert acquired
