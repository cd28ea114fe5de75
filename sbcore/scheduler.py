"""One compute scheduler for a process that serves many users (the app's server): a bounded pool of workers
that never runs more torch threads than the machine has free cores, shares identical work between users and
keeps finished results in a cache bounded by bytes.

Why: torch's intra-op threads spin on their cores. Two jobs with two threads each on a 2-core machine (or one
job beside a busy process) make every job several times slower; this scheduler hands each job a number of
*core tokens* and sets the worker's ``torch.set_num_threads`` (a per-thread setting under OpenMP) to match, so
the total never exceeds the cores left free by other processes.

- A job is keyed by what it computes (model, input digest, settings). A second request for a key that is
  queued or running joins that job (in-flight de-duplication); a request for a finished key is answered from
  the result cache (least recently used first out, bounded by ``cache_bytes``).
- Each request is a ``Ticket``: queue position, an estimated wait, the job's progress, ``cancel()``. A job
  whose every ticket was cancelled or released is dropped before it starts; a running one stops at its next
  progress report (``JobCancelled``) once its last ticket was cancelled.
- The next job to start is the one with the shortest expected run time (a moving average per kind) less the time
  it has waited, so predictions pass sweeps in the queue but no job waits for ever; while other sessions have
  work, jobs submitted as ``long`` never take the last free worker, which stays for their quick requests; a long
  job wanted by more sessions than have other work may (a class waiting for the same attribution).
- Thread policy ``"adaptive"`` (the default) gives a job alone every core other processes leave free, and one
  core (one thread) per job as soon as two jobs could run, up to one job per core; ``"fixed"`` gives every job
  ``threads`` threads on ``workers`` workers. An exclusive job (a benchmark) waits for every core and runs alone.
  Measured in ``benchmarks/scheduler_policies.py``: single-threaded jobs side by side beat one two-threaded job
  at a time, quiet or beside a busy process, because several OpenMP threads spin-wait on cores another thread
  holds while single-threaded jobs simply share them.

Results are shared between users: treat them as read only.
"""
from __future__ import annotations

import itertools
import os
import pickle
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from sbcore.runtime import cpu_sample

Report = Callable[[int, int], None]  # (done, total) from inside a job
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
_DURATION_SMOOTHING = 0.3  # weight of the newest duration in a kind's moving average
_FIRST_GUESS_S = 2.0  # expected duration of a kind never run before
_GRACE_S = 0.02  # a lone new job waits this long for company (a page queueing several) before taking every core


class JobCancelled(Exception):
    """The job was cancelled by everyone who asked for it."""


def result_bytes(value: Any) -> int:
    """The size of ``value`` as the cache counts it: its pickled length (tensors and arrays included)."""
    try:
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # noqa: BLE001 - an unpicklable value is counted as large, never refused
        return 2**20


class ByteBudgetCache:
    """Values by key, least recently used first out, with their summed ``size_of`` kept under ``budget`` bytes.

    A value larger than ``largest`` (a share of the budget) is not kept. Thread-safe.
    """

    def __init__(self, budget: int, size_of: Callable[[Any], int] = result_bytes, largest: float = 0.25) -> None:
        self.budget = budget
        self._size_of = size_of
        self._largest = int(budget * largest)
        self._values: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> tuple[bool, Any]:
        """(True, value) for a kept key (now the most recent), else (False, None)."""
        with self._lock:
            if key not in self._values:
                self.misses += 1
                return False, None
            self.hits += 1
            self._values.move_to_end(key)
            return True, self._values[key][0]

    def put(self, key: Hashable, value: Any) -> bool:
        """Keep ``value`` under ``key``, dropping the least recent values past the budget; False when too large."""
        size = self._size_of(value)
        if size > self._largest:
            return False
        with self._lock:
            if key in self._values:
                self.bytes -= self._values.pop(key)[1]
            self._values[key] = (value, size)
            self.bytes += size
            while self.bytes > self.budget:
                self.bytes -= self._values.popitem(last=False)[1][1]
        return True

    def keys(self) -> list[Hashable]:
        """The kept keys, least recently used first."""
        with self._lock:
            return list(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _spent(report: Report) -> Any:
    raise RuntimeError("a finished job does not run again")


class _Job:
    def __init__(self, number: int, key: Hashable, kind: str, run: Callable[[Report], Any], exclusive: bool,
                 cache: bool, long: bool) -> None:
        self.number, self.key, self.kind, self.run = number, key, kind, run
        self.exclusive, self.cache, self.long = exclusive, cache, long
        self.state: JobState = "queued"
        self.tickets = 0
        self.cancelled_tickets = 0
        self.sessions: set[str] = set()
        self.threads = 0
        self.submitted = time.monotonic()
        self.started: float | None = None
        self.progress: tuple[int, int] = (0, 0)
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()

    @property
    def abandoned(self) -> bool:
        """Every ticket on this job was cancelled or released."""
        return self.tickets <= 0


@dataclass(frozen=True)
class TicketStatus:
    """Where a request stands: ``jobs_ahead`` queued or running before it, the estimated seconds until it
    finishes (None when unknown), its progress and the threads it runs with."""

    state: JobState
    jobs_ahead: int
    eta_s: float | None
    done: int
    total: int
    threads: int


class Ticket:
    """One request's hold on a job (or on a cached result)."""

    def __init__(self, scheduler: Scheduler, job: _Job | None, value: Any = None, cached: bool = False) -> None:
        self._scheduler, self._job, self._value = scheduler, job, value
        self.cached = cached
        self._released = job is None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds; True once the job finished (or failed, or was cancelled)."""
        return True if self._job is None else self._job.finished.wait(timeout)

    def status(self) -> TicketStatus:
        """Queue position, estimated time to finish, progress."""
        if self._job is None:
            return TicketStatus("done", 0, 0.0, 1, 1, 0)
        return self._scheduler._status(self._job)

    def result(self) -> Any:
        """The job's value; re-raises the job's exception, ``JobCancelled`` for a cancelled job. Waits."""
        if self._job is None:
            return self._value
        self._job.finished.wait()
        self.release()
        if self._job.error is not None:
            raise self._job.error
        return self._job.value

    def cancel(self) -> None:
        """Give up this request; the job stops when no other request still wants it."""
        self._scheduler._leave(self, cancelled=True)

    def release(self) -> None:
        """Stop waiting without cancelling (a queued job nobody waits for is dropped before it starts;
        a running one finishes and its result is cached for the next request)."""
        self._scheduler._leave(self, cancelled=False)


class Scheduler:
    """A bounded pool of worker threads sharing ``cores`` core tokens (see the module docstring)."""

    def __init__(self, cores: int | None = None, *, policy: Literal["adaptive", "fixed"] = "adaptive",
                 threads: int = 1, workers: int | None = None, cache_bytes: int = 512 * 2**20,
                 watch_other_processes: bool = True, on_finish: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.cores = max(1, cores or os.cpu_count() or 1)
        if policy not in ("adaptive", "fixed"):
            raise ValueError(f"policy must be 'adaptive' or 'fixed', not {policy!r}")
        self.policy, self.fixed_threads = policy, max(1, min(threads, self.cores))
        self.workers = max(1, workers or (self.cores if policy == "adaptive" else self.cores // self.fixed_threads))
        self.cache = ByteBudgetCache(cache_bytes)
        self._condition = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._running: list[_Job] = []
        self._in_flight: dict[Hashable, _Job] = {}
        self._tokens_used = 0
        self._numbers = itertools.count()
        self._durations: dict[str, float] = {}
        self.completed = 0
        self.shared = 0  # requests that joined a job already queued or running
        self._load = _OtherProcessLoad() if watch_other_processes else None
        self.on_finish = on_finish  # called on a worker with each job's kind, state, threads, seconds queued and run
        for index in range(self.workers):
            threading.Thread(target=self._work, name=f"sbcore-compute-{index}", daemon=True).start()

    # requests

    def submit(self, key: Hashable, run: Callable[[Report], Any], *, kind: str = "job", session: str = "",
               exclusive: bool = False, cache: bool = True, long: bool = False) -> Ticket:
        """Ask for ``run(report)`` under ``key``: from the cache, by joining the same key in flight, or queued.

        ``run`` calls ``report(done, total)`` to publish progress (and to be cancellable while running).
        ``exclusive`` jobs run alone on every core; ``long`` jobs (seconds or more: attributions, sweeps) never
        take the last free worker; ``cache=False`` results are not kept after delivery.
        """
        if cache:
            found, value = self.cache.get(key)
            if found:
                return Ticket(self, None, value, cached=True)
        with self._condition:
            job = self._in_flight.get(key)
            if job is not None:  # queued or running: join it
                self.shared += 1
            else:
                job = _Job(next(self._numbers), key, kind, run, exclusive, cache, long)
                self._in_flight[key] = job
                self._queue.append(job)
                self._condition.notify_all()
            job.tickets += 1
            job.sessions.add(session)
            return Ticket(self, job)

    def run(self, key: Hashable, run: Callable[[Report], Any], **options: Any) -> Any:
        """``submit(...).result()``: the value, waiting as long as it takes."""
        return self.submit(key, run, **options).result()

    # status

    def snapshot(self) -> dict[str, Any]:
        """Counts for a status view: jobs running and queued, sessions waiting, cores, cache use and hits."""
        with self._condition:
            running = [(job.kind, job.threads, time.monotonic() - (job.started or time.monotonic())) for job in self._running]
            queued = [job.kind for job in self._queue]
            sessions = set().union(*(job.sessions for job in [*self._running, *self._queue])) - {""}
        return {
            "cores": self.cores, "policy": self.policy, "workers": self.workers,
            "other_busy_cores": self._other_busy(), "running": running, "queued": queued,
            "sessions_waiting": len(sessions), "completed": self.completed, "shared": self.shared,
            "cache_entries": len(self.cache), "cache_bytes": self.cache.bytes, "cache_budget": self.cache.budget,
            "cache_hits": self.cache.hits, "cache_misses": self.cache.misses,
        }

    def expected_seconds(self, kind: str) -> float:
        """The moving average of ``kind``'s durations (a first guess before it has run)."""
        return self._durations.get(kind, _FIRST_GUESS_S)

    def _status(self, job: _Job) -> TicketStatus:
        with self._condition:
            if job.state == "queued":
                now = time.monotonic()
                score = lambda j: self.expected_seconds(j.kind) - (now - j.submitted)  # noqa: E731 (as _next_job)
                ahead = [j for j in self._queue if j is not job and score(j) <= score(job)]
                busy = sum(max(self.expected_seconds(j.kind) - (now - (j.started or now)), 0.0) for j in self._running)
                waiting = sum(self.expected_seconds(j.kind) for j in ahead)
                eta = (busy + waiting) / self.workers + self.expected_seconds(job.kind)
                return TicketStatus("queued", len(ahead) + len(self._running), eta, *job.progress, 0)
            if job.state == "running":
                done, total = job.progress
                elapsed = time.monotonic() - (job.started or time.monotonic())
                eta = (elapsed / done * (total - done) if done and total else
                       max(self.expected_seconds(job.kind) - elapsed, 0.0))
                return TicketStatus("running", 0, eta, done, total, job.threads)
            return TicketStatus(job.state, 0, 0.0, *job.progress, job.threads)

    # leaving

    def _leave(self, ticket: Ticket, cancelled: bool) -> None:
        with self._condition:
            if ticket._released:
                return
            ticket._released = True
            job = ticket._job
            job.tickets -= 1
            job.cancelled_tickets += cancelled
            if job.abandoned and job.state == "queued" and (cancelled or job.cancelled_tickets):
                self._queue.remove(job)
                self._finish(job, "cancelled", error=JobCancelled("cancelled"))

    # workers

    def _other_busy(self) -> int:
        return self._load.busy_cores() if self._load is not None else 0

    def _next_job(self) -> tuple[_Job, int]:
        """Wait for a job that can start now and the core tokens it gets (called with the condition held)."""
        while True:
            for job in [job for job in self._queue if job.abandoned]:
                self._queue.remove(job)  # nobody waits for it any more
                self._finish(job, "cancelled", error=JobCancelled("abandoned"))
            now = time.monotonic()
            # shortest expected first, ageing: a job's expected seconds minus the seconds it has waited
            for job in sorted(self._queue, key=lambda j: self.expected_seconds(j.kind) - (now - j.submitted)):
                tokens = self._tokens_for(job)
                if tokens:
                    self._queue.remove(job)
                    return job, tokens
            grace = min((j.submitted for j in self._queue), default=now) + _GRACE_S - now
            self._condition.wait(timeout=grace if grace > 0 else 1.0)  # 1 s: also re-reads the other processes' load

    def _other_sessions(self, job: _Job) -> set[str]:
        """Sessions other than ``job``'s with work queued or running (called with the condition held)."""
        others = [j.sessions for j in [*self._running, *self._queue] if j is not job]
        return set().union(*others) - job.sessions

    def _tokens_for(self, job: _Job) -> int:
        """Core tokens ``job`` gets if it can start now, else 0 (called with the condition held)."""
        if job.exclusive:
            return self.cores if not self._running else 0
        if any(j.exclusive for j in self._running) or any(
                j.exclusive and j.submitted < job.submitted for j in self._queue):
            return 0  # a benchmark waiting longer goes first, alone
        if job.long and self.workers > 1 and sum(j.long for j in self._running) >= self.workers - 1 and (
                len(self._other_sessions(job)) >= len(job.sessions)):
            return 0  # one worker stays free for the quick requests of the other sessions, unless fewer have work
        if self.policy == "fixed":
            return self.fixed_threads  # a worker is free: this one
        if self._tokens_used >= self.cores:
            return 0
        if self._running or len(self._queue) > 1:
            return 1  # single-threaded jobs share cores fairly, even with other programs: no spinning threads
        if time.monotonic() - job.submitted < _GRACE_S:
            return 0  # more may be on their way
        return max(1, self.cores - self._other_busy())  # alone: every core other programs leave free

    def _work(self) -> None:
        while True:
            with self._condition:
                job, tokens = self._next_job()
                job.state, job.threads, job.started = "running", tokens, time.monotonic()
                self._tokens_used += tokens
                self._running.append(job)
            self._run(job, tokens)
            del job  # an idle worker keeps nothing of its last job alive: its value or closure may hold a model

    def _run(self, job: _Job, tokens: int) -> None:
        torch.set_num_threads(tokens)
        try:
            value = job.run(lambda done, total, job=job: self._report(job, done, total))
        except BaseException as error:  # noqa: BLE001 - delivered to every ticket, raised there
            outcome: tuple[JobState, Any, BaseException | None] = (
                "cancelled" if isinstance(error, JobCancelled) else "failed", None, error)
        else:
            outcome = ("done", value, None)
            if job.cache:
                self.cache.put(job.key, value)
        job.run = _spent  # tickets still held keep the job, not what its closure captured
        with self._condition:
            self._tokens_used -= tokens
            self._running.remove(job)
            if outcome[0] == "done":
                self.completed += 1
                elapsed = time.monotonic() - job.started
                previous = self._durations.get(job.kind)
                self._durations[job.kind] = elapsed if previous is None else (
                    (1 - _DURATION_SMOOTHING) * previous + _DURATION_SMOOTHING * elapsed)
            self._finish(job, outcome[0], outcome[1], outcome[2])
        if self.on_finish is not None:
            now = time.monotonic()
            self.on_finish({"kind": job.kind, "state": outcome[0], "threads": tokens, "sessions": len(job.sessions),
                            "queued_s": round(job.started - job.submitted, 4), "ran_s": round(now - job.started, 4),
                            "long": job.long, "ended_at": round(time.time(), 3)})

    def _report(self, job: _Job, done: int, total: int) -> None:
        job.progress = (done, total)
        if job.abandoned and job.cancelled_tickets:
            raise JobCancelled("cancelled while running")

    def _finish(self, job: _Job, state: JobState, value: Any = None, error: BaseException | None = None) -> None:
        """Record the outcome and wake the job's tickets and the workers (called with the condition held)."""
        job.state, job.value, job.error = state, value, error
        if self._in_flight.get(job.key) is job:
            del self._in_flight[job.key]
        job.finished.set()
        self._condition.notify_all()


class _OtherProcessLoad:
    """Cores kept busy by other processes, from ``/proc/stat`` minus this process's own CPU time, sampled at
    most once a second; 0 where ``/proc`` is not there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = cpu_sample()
        self._busy = 0

    def busy_cores(self) -> int:
        """Other processes' busy cores over the last sample interval, rounded."""
        with self._lock:
            if self._last is None:
                return 0
            if time.monotonic() - self._last[2] >= 1.0:
                sample = cpu_sample()
                if sample is not None:
                    busy, own, wall = (now - before for now, before in zip(sample, self._last))
                    self._busy = max(0, int((busy - own) / wall + 0.5))
                    self._last = sample
            return self._busy
