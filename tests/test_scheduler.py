"""The compute scheduler: shared work done once, cancellation, queue status, core tokens, the byte-bounded cache."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from sbcore.scheduler import ByteBudgetCache, JobCancelled, Scheduler


def blocker() -> tuple[threading.Event, callable]:
    """A job that waits for the returned event, then returns 'blocked'."""
    event = threading.Event()

    def run(report):
        assert event.wait(10)
        return "blocked"

    return event, run


def test_identical_requests_share_one_computation_while_running_and_after():
    scheduler = Scheduler(2, watch_other_processes=False)
    calls = []
    gate = threading.Event()

    def run(report):
        calls.append(1)
        gate.wait(10)
        return {"value": 42}

    first = scheduler.submit(("maps", "model", "digest"), run, session="a")
    second = scheduler.submit(("maps", "model", "digest"), run, session="b")
    gate.set()
    assert first.result() == second.result() == {"value": 42}
    third = scheduler.submit(("maps", "model", "digest"), run, session="c")
    assert third.cached and third.result() == {"value": 42}
    assert len(calls) == 1 and scheduler.shared == 1 and scheduler.cache.hits == 1


def test_an_exception_reaches_every_request_and_is_not_cached():
    scheduler = Scheduler(1, watch_other_processes=False)
    gate, calls = threading.Event(), []

    def failing(report):
        calls.append(1)
        gate.wait(10)
        raise ValueError("bad settings")

    tickets = [scheduler.submit("k", failing) for _ in range(2)]
    gate.set()
    for ticket in tickets:
        with pytest.raises(ValueError, match="bad settings"):
            ticket.result()
    with pytest.raises(ValueError):
        scheduler.run("k", failing)
    assert len(calls) == 2


def test_a_cancelled_queued_job_never_runs_and_the_queue_reports_positions():
    scheduler = Scheduler(1, watch_other_processes=False)
    gate, block = blocker()
    ran = []
    running = scheduler.submit("first", block)
    while running.status().state != "running":
        time.sleep(0.01)
    queued = scheduler.submit("second", lambda report: ran.append("second"))
    last = scheduler.submit("third", lambda report: ran.append("third") or "third")
    assert queued.status().state == "queued" and queued.status().jobs_ahead == 1
    assert last.status().jobs_ahead == 2 and last.status().eta_s > 0
    queued.cancel()
    assert last.status().jobs_ahead == 1
    gate.set()
    assert last.result() == "third"
    with pytest.raises(JobCancelled):
        queued.result()
    assert ran == ["third"]


def test_a_job_released_by_everyone_is_dropped_unless_asked_for_again_before_it_starts():
    scheduler = Scheduler(1, watch_other_processes=False)
    gate, block = blocker()
    ran = []
    scheduler.submit("first", block)
    scheduler.submit("dropped", lambda report: ran.append("dropped")).release()
    scheduler.submit("kept", lambda report: ran.append("kept")).release()
    again = scheduler.submit("kept", lambda report: ran.append("kept twice"))  # a rerun asks again
    assert again.status().jobs_ahead == 2  # it kept its place in the queue
    gate.set()
    again.result()
    assert ran == ["kept"]


def test_a_running_job_stops_at_its_next_progress_report_once_cancelled():
    scheduler = Scheduler(1, watch_other_processes=False)
    steps = []

    def long(report):
        for step in range(1000):
            report(step, 1000)
            steps.append(step)
            time.sleep(0.005)
        return "finished"

    ticket = scheduler.submit("long", long)
    while ticket.status().done < 3:
        time.sleep(0.01)
    assert ticket.status().total == 1000
    ticket.cancel()
    with pytest.raises(JobCancelled):
        ticket.result()
    assert len(steps) < 1000 and scheduler.cache.get("long") == (False, None)


def test_adaptive_threads_never_exceed_the_cores():
    scheduler = Scheduler(2, watch_other_processes=False)
    seen: list[int] = []
    in_use, peak, lock = [0], [0], threading.Lock()

    def job(report):
        threads = torch.get_num_threads()
        with lock:
            in_use[0] += threads
            peak[0] = max(peak[0], in_use[0])
        time.sleep(0.05)
        with lock:
            in_use[0] -= threads
        seen.append(threads)
        return threads

    assert scheduler.run("alone", job) == 2  # nothing else waits: every core
    tickets = [scheduler.submit(("crowd", i), job) for i in range(6)]
    assert [t.result() for t in tickets].count(1) >= 5  # a queue: one core each, two jobs at a time
    assert peak[0] <= 2


def test_other_processes_busy_cores_are_left_to_them(monkeypatch):
    scheduler = Scheduler(2)
    monkeypatch.setattr(scheduler, "_other_busy", lambda: 1)
    assert scheduler.run("busy machine", lambda report: torch.get_num_threads()) == 1


def test_an_exclusive_job_runs_alone_on_every_core():
    scheduler = Scheduler(2, watch_other_processes=False)
    gate, block = blocker()
    first = scheduler.submit("ordinary", block)
    while first.status().state != "running":
        time.sleep(0.01)
    exclusive = scheduler.submit("benchmark", lambda report: torch.get_num_threads(), exclusive=True)
    time.sleep(0.2)
    assert exclusive.status().state == "queued"  # waits for the running job
    gate.set()
    assert exclusive.result() == 2


def test_fixed_policy_gives_every_job_its_threads():
    scheduler = Scheduler(2, policy="fixed", threads=1, watch_other_processes=False)
    assert scheduler.workers == 2
    assert scheduler.run("one", lambda report: torch.get_num_threads()) == 1
    with pytest.raises(ValueError, match="policy"):
        Scheduler(2, policy="greedy")


def test_the_cache_drops_the_least_recently_used_values_past_its_byte_budget():
    cache = ByteBudgetCache(100, size_of=len)
    cache.put("a", "x" * 20)
    cache.put("b", "y" * 20)
    cache.get("a")
    cache.put("c", "z" * 20)
    cache.put("d", "w" * 20)
    cache.put("e", "v" * 20)  # exactly 100 bytes: all five kept
    assert cache.get("b")[0]
    cache.put("f", "u" * 20)  # over 100 bytes: "a", now the least recently used, goes
    assert cache.get("a") == (False, None) and cache.get("c")[0] and cache.bytes == 100
    assert not cache.put("huge", "h" * 26) and cache.get("huge") == (False, None)  # over a quarter of the budget


def test_every_finished_job_is_reported_with_its_kind_and_seconds():
    records = []
    scheduler = Scheduler(1, watch_other_processes=False, on_finish=records.append)
    scheduler.run("a", lambda report: time.sleep(0.05), kind="prediction", session="s1")
    with pytest.raises(ValueError):
        scheduler.run("b", lambda report: int("x"), kind="attribution")
    time.sleep(0.05)  # the report follows the result
    assert [(r["kind"], r["state"], r["threads"]) for r in records] == [("prediction", "done", 1),
                                                                       ("attribution", "failed", 1)]
    assert records[0]["ran_s"] >= 0.05 and records[0]["queued_s"] >= 0 and records[0]["sessions"] == 1


def test_a_short_job_passes_a_long_one_in_the_queue(monkeypatch):
    scheduler = Scheduler(1, policy="fixed", threads=1, watch_other_processes=False)
    expected = {"sweep": 50.0, "prediction": 0.1}
    monkeypatch.setattr(scheduler, "expected_seconds", lambda kind: expected.get(kind, 1.0))
    gate, block = blocker()
    order = []
    first = scheduler.submit("busy", block)
    while first.status().state != "running":
        time.sleep(0.01)
    sweep = scheduler.submit("sweep", lambda report: order.append("sweep"), kind="sweep")
    prediction = scheduler.submit("prediction", lambda report: order.append("prediction"), kind="prediction")
    assert prediction.status().jobs_ahead == 1 and sweep.status().jobs_ahead == 2  # the running job, the prediction
    gate.set()
    sweep.result(), prediction.result()
    assert order == ["prediction", "sweep"]


def test_long_jobs_leave_one_worker_free_for_short_ones():
    scheduler = Scheduler(2, policy="fixed", threads=1, watch_other_processes=False)
    gate, block = blocker()
    sweeps = [scheduler.submit(("sweep", i), block, kind="sweep", long=True, session=f"student {i}") for i in range(2)]
    time.sleep(0.2)
    assert [t.status().state for t in sweeps] == ["running", "queued"]
    assert scheduler.run("prediction", lambda report: "answered", kind="prediction") == "answered"  # not behind them
    gate.set()
    assert [t.result() for t in sweeps] == ["blocked", "blocked"]


def test_a_long_job_most_sessions_wait_for_may_take_the_last_worker():
    scheduler = Scheduler(2, policy="fixed", threads=1, watch_other_processes=False)
    gate, block = blocker()
    sweep = scheduler.submit(("sweep", 0), block, kind="sweep", long=True, session="student 0")
    time.sleep(0.2)
    attribution = [scheduler.submit("shared attribution", block, kind="attribution", long=True, session=f"student {i}")
                   for i in (1, 2)]  # two students want it, one other has work: it runs beside the sweep
    time.sleep(0.2)
    assert sweep.status().state == "running" and attribution[0].status().state == "running"
    gate.set()
    assert [t.result() for t in (sweep, *attribution)] == ["blocked"] * 3


def test_one_session_alone_runs_its_long_jobs_on_every_worker():
    scheduler = Scheduler(2, policy="fixed", threads=1, watch_other_processes=False)
    gate, block = blocker()
    jobs = [scheduler.submit(("attribution", i), block, kind="attribution", long=True, session="teacher")
            for i in range(2)]
    time.sleep(0.2)
    assert [t.status().state for t in jobs] == ["running", "running"]
    gate.set()
    assert [t.result() for t in jobs] == ["blocked", "blocked"]


def test_a_finished_job_keeps_nothing_its_closure_captured_alive():
    import gc
    import weakref

    class Model:  # stands for a model a page hands to a job
        pass

    scheduler = Scheduler(2, watch_other_processes=False)
    model = Model()
    alive = weakref.ref(model)
    ticket = scheduler.submit("k", lambda report, model=model: 1, cache=False)
    assert ticket.result() == 1
    del model
    gc.collect()
    # neither the idle worker (its last job) nor the ticket (its job's closure) holds the model: freed at once
    assert alive() is None
