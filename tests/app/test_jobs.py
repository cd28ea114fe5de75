"""The app's use of the scheduler: its settings from the environment."""
from __future__ import annotations

import pytest

from app.jobs import scheduler_settings


def test_thread_settings_read_workers_by_threads_adaptive_or_the_default():
    assert scheduler_settings(None) == {"policy": "fixed", "threads": 1}
    assert scheduler_settings("1x2") == {"policy": "fixed", "workers": 1, "threads": 2}
    assert scheduler_settings("adaptive") == {"policy": "adaptive"}
    for bad in ("2", "0x1", "twoxone", "2x"):
        with pytest.raises(ValueError, match="SBE_THREADS"):
            scheduler_settings(bad)
