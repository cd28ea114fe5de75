"""Heavy work through the server's one compute scheduler (``sbcore.scheduler``): every session's predictions,
maps, attributions, receptive fields, sweeps, ablations and benchmarks share one bounded pool of workers, so a
class on one server never runs more torch threads than there are free cores, and identical requests from
different sessions cost one computation.

While a request waits, the page shows its place in the queue and the estimated time; a page that is left (a
rerun, another page, Cancel) gives its request up, and a job nobody wants any more stops.

Settings (environment variables of the server process):
- ``SBE_THREADS``: ``WxT`` (W workers with T torch threads each) or ``adaptive``; by default one worker per core
  with one thread each, which measured fastest for one user and for many, quiet or beside a busy process
  (``benchmarks/scheduler_policies.py``);
- ``SBE_RESULT_CACHE_MB``: the shared result cache's budget (default 512);
- ``SBE_JOB_LOG``: a file that gets one JSON line per finished job (kind, seconds queued and run), for
  ``benchmarks/classroom_load.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Hashable
from functools import partial
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from sbcore.scheduler import ByteBudgetCache, Report, Scheduler, Ticket, TicketStatus

Progress = Callable[[int, int], None]
POLL_SECONDS = 0.25
QUIET_SECONDS = 0.3  # a request answered within this shows no queue notice


def scheduler_settings(value: str | None) -> dict[str, Any]:
    """``Scheduler`` options from an ``SBE_THREADS`` value; ValueError naming the accepted forms."""
    if value in (None, ""):
        return {"policy": "fixed", "threads": 1}  # one worker per core
    if value == "adaptive":
        return {"policy": "adaptive"}
    workers, _, threads = value.partition("x")
    if not (workers.isdecimal() and threads.isdecimal() and int(workers) > 0 and int(threads) > 0):
        raise ValueError(f"SBE_THREADS must be 'adaptive' or WORKERSxTHREADS such as 2x1, not {value!r}")
    return {"policy": "fixed", "workers": int(workers), "threads": int(threads)}


@st.cache_resource
def scheduler() -> Scheduler:
    """The server's scheduler (one per process)."""
    budget = int(os.environ.get("SBE_RESULT_CACHE_MB", "512")) * 2**20
    log = os.environ.get("SBE_JOB_LOG")
    return Scheduler(cache_bytes=budget, on_finish=partial(_log_job, Path(log)) if log else None,
                     **scheduler_settings(os.environ.get("SBE_THREADS")))


def _log_job(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as log:
        log.write(json.dumps(record) + "\n")


def digest(data: bytes) -> str:
    """A short content digest for cache keys (image files, canvases)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def session_id() -> str:
    """The browser session running this script ("" outside a session)."""
    context = get_script_run_ctx()
    return context.session_id if context is not None else ""


def submit(kind: str, key: tuple[Hashable, ...], run: Callable[[Report], Any], *, exclusive: bool = False,
           cache: bool = True, long: bool = False) -> Ticket:
    """Queue ``run(report)`` as a job of ``kind`` keyed on ``key`` (or join the same request of another session);
    ``long`` for work of seconds or more, which leaves one worker to the quick requests of other sessions."""
    return scheduler().submit((kind, *key), run, kind=kind, session=session_id(), exclusive=exclusive, cache=cache,
                              long=long)


def wait(ticket: Ticket, label: str, progress: Progress | None = None, cancel_on_leave: bool = False) -> Any:
    """The job's value, showing queue position, time left and progress while it waits.

    When the wait is interrupted (a rerun, another page) the request is released, or cancelled with
    ``cancel_on_leave`` (for work started by a button, which a rerun does not ask for again).
    """
    if ticket.wait(QUIET_SECONDS):
        return ticket.result()
    notice = st.empty()
    try:
        while not ticket.wait(POLL_SECONDS):
            status = ticket.status()
            if progress is not None and status.total:
                progress(status.done, status.total)
            notice.caption(f":material/hourglass_top: {label}: {describe(status)}")
        return ticket.result()
    finally:
        notice.empty()
        if cancel_on_leave:
            ticket.cancel()
        else:
            ticket.release()


def compute(kind: str, key: tuple[Hashable, ...], run: Callable[[Report], Any], label: str, *,
            progress: Progress | None = None, cancel_on_leave: bool = False, exclusive: bool = False,
            cache: bool = True, long: bool = False) -> Any:
    """``wait(submit(...))``: run ``run`` through the scheduler and return its value."""
    ticket = submit(kind, key, run, exclusive=exclusive, cache=cache, long=long)
    return wait(ticket, label, progress, cancel_on_leave)


def describe(status: TicketStatus) -> str:
    """One line on where a request stands: its place in the queue or its progress, and the time left."""
    left = f", about {status.eta_s:.0f} s left" if status.eta_s is not None and status.eta_s >= 1 else ""
    if status.state == "queued":
        return f"waiting for {status.jobs_ahead} job(s) of this server to finish{left}"
    share = f" {status.done / status.total:.0%}" if status.total else ""
    cores = f" on {status.threads} core{'s' if status.threads != 1 else ''}" if status.threads else ""
    return f"running{cores}{share}{left}"


def status_panel(models: ByteBudgetCache) -> None:
    """A sidebar view of the server's load: jobs running and queued, sessions waiting, the shared caches."""
    snapshot = scheduler().snapshot()
    with st.sidebar.expander("Server load", icon=":material/monitoring:"):
        st.caption(
            f"{len(snapshot['running'])} job(s) running, {len(snapshot['queued'])} queued, "
            f"{snapshot['sessions_waiting']} session(s) waiting; {snapshot['cores']} cores "
            f"({snapshot['policy']}), {snapshot['other_busy_cores']} busy with other programs."
        )
        st.caption(
            f"Shared results: {snapshot['cache_entries']} kept, {snapshot['cache_bytes'] / 2**20:.0f} of "
            f"{snapshot['cache_budget'] / 2**20:.0f} MB; {snapshot['cache_hits']} answered from the cache, "
            f"{snapshot['shared']} joined a job already running, {snapshot['completed']} computed."
        )
        st.caption(f"Models loaded: {len(models)}, {models.bytes / 2**20:.0f} of {models.budget / 2**20:.0f} MB.")

