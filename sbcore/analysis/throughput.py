"""Inference throughput, with models interleaved so ratios are fair.

The models take turns in rounds (ABCD, BCDA, ...), so a slow spell of a shared machine hits them alike.
Each round gives one median latency per model; a ratio between two models comes with a bootstrap
interval over rounds, latency spreads are quantiles (never below zero), and every batch size records
how much of the machine other processes used while it was measured.
"""
from __future__ import annotations

import copy
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import torch
from torch import nn

from sbcore.cost import count_flops, count_parameters
from sbcore.models.registry import plain_counterpart
from sbcore.errors import SBCoreError
from sbcore.runtime import cpu_sample, release_freed_memory

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
WARMUP_CALLS = 2
MIN_BLOCK_SECONDS = 1e-3
BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


@dataclass
class ThroughputRow:
    """One model at one batch size. Latencies are per batch; ``error`` is set when the row could not run."""

    model: str
    batch_size: int
    device: str
    dtype: str
    channels_last: bool
    compiled: bool
    img_per_s: float | None
    median_ms: float | None
    iqr_ms: float | None  # interquartile range of the per-batch latency
    peak_memory_mb: float | None  # above what was in use before the forward: CUDA max allocated, CPU peak RSS
    params_m: float  # millions of parameters
    gflops: float  # per image
    vs_baseline: float | None  # img/s over the plain counterpart's, paired by round (see ratio_interval)
    vs_non_local: float | None  # img/s over the nl_ variant's, paired by round
    error: str | None = None
    latency_low_ms: float | None = None  # 25th percentile of the per-batch latency
    latency_high_ms: float | None = None  # 75th percentile
    vs_baseline_ci: tuple[float, float] | None = None  # 95% bootstrap interval over rounds
    vs_non_local_ci: tuple[float, float] | None = None
    rounds: int = 0  # rounds that timed this row
    others_cpu_share: float | None = None  # share of all cores other processes used while this batch size ran
    cpu_threads: int | None = None  # torch threads of a CPU run (None on a GPU): SB's share depends on it

    @property
    def spread_ms(self) -> tuple[float, float] | None:
        """(below, above) the median: error-bar lengths from the quartiles, both >= 0."""
        if self.median_ms is None or self.latency_low_ms is None or self.latency_high_ms is None:
            return None
        return max(self.median_ms - self.latency_low_ms, 0.0), max(self.latency_high_ms - self.median_ms, 0.0)


ModelSource = Union[nn.Module, Callable[[], nn.Module]]


def _prepare(
    source: ModelSource, input_size: tuple[int, int, int], device: torch.device, channels_last: bool, compile: bool
) -> tuple[nn.Module, float, float]:
    """(model in eval mode on ``device``, millions of parameters, GFLOPs per image). A model is copied, so the
    caller's is left untouched; a builder's fresh model is used as it is, which keeps one copy in memory."""
    prepared = (copy.deepcopy(source) if isinstance(source, nn.Module) else source()).eval()
    params, gflops = count_parameters(prepared)[0] / 1e6, count_flops(prepared, input_size) / 1e9
    prepared = prepared.to(device)
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    return (torch.compile(prepared) if compile else prepared), params, gflops


def _runner(model: nn.Module, x: torch.Tensor, dtype: str) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        autocast = torch.autocast(x.device.type, dtype=DTYPES[dtype]) if dtype != "fp32" else nullcontext()
        with torch.inference_mode(), autocast:
            return model(x)

    return run


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _cpu_peak_delta_mb(run: Callable[[], torch.Tensor]) -> float | None:
    """Peak RSS during ``run`` above the RSS before it, in MB (Linux /proc); None where /proc is unavailable."""
    release_freed_memory()  # return freed heap so earlier models do not hide this one's
    try:
        before = _rss_bytes()
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM, the peak RSS, to the current RSS
    except OSError:
        run()
        return None
    run()
    return max(_peak_rss_bytes() - before, 0) / 2**20


def _cuda_peak_delta_mb(run: Callable[[], torch.Tensor], device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    run()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def _warm_up(run: Callable[[], torch.Tensor], device: torch.device, dtype: str) -> float | None:
    """Run a few times (compiles, fills caches), check autocast really ran in ``dtype``; returns peak memory MB."""
    for _ in range(WARMUP_CALLS):
        out = run()
    if out.dtype != DTYPES[dtype]:
        raise RuntimeError(f"{dtype} autocast is not supported on {device.type}; the model ran in {out.dtype}")
    return _cuda_peak_delta_mb(run, device) if device.type == "cuda" else _cpu_peak_delta_mb(run)


def _short_error(error: Exception, device: torch.device) -> str:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return "out of memory"
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _check_arguments(device: str, dtype: str, batch_sizes: Sequence[int]) -> torch.device:
    if dtype not in DTYPES:
        raise SBCoreError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise SBCoreError(f"Batch sizes must be positive integers, got {list(batch_sizes)}.")
    try:
        target = torch.device(device)
    except RuntimeError:
        raise SBCoreError(f"Unknown device {device!r}; use cpu, cuda or cuda:N.") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise SBCoreError("CUDA was requested but no CUDA device is available; use --device cpu.")
    if target.type not in ("cpu", "cuda"):
        raise SBCoreError(f"Device {device!r} is not supported; use cpu or cuda.")
    return target


def ratio_interval(
    mine: Sequence[float], theirs: Sequence[float], seed: int = 0
) -> tuple[float, tuple[float, float]] | None:
    """img/s ratio of two models from their per-round latencies (seconds, paired by round): the median of the
    per-round ratios, with a 95% bootstrap interval that resamples whole rounds; None with fewer than two
    paired rounds. Pairing by round cancels what a round shares, such as a machine that slows down for a
    minute, which a ratio of the two medians would not. Medians are taken of log ratios, so A/B is exactly
    the reciprocal of B/A also for an even number of rounds."""
    a, b = np.asarray(mine, dtype=float), np.asarray(theirs, dtype=float)
    if len(a) != len(b) or len(a) < 2:
        return None
    log_ratios = np.log(b / a)
    picks = np.random.default_rng(seed).integers(0, len(a), size=(BOOTSTRAP_SAMPLES, len(a)))
    samples = np.median(log_ratios[picks], axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.exp(np.percentile(samples, [tail, 100 - tail]))
    return float(np.exp(np.median(log_ratios))), (float(low), float(high))


class _CpuShare:
    """Share of all cores that processes other than this one kept busy between start and ``read`` (Linux /proc)."""

    def __init__(self) -> None:
        self._start = cpu_sample()

    def read(self) -> float | None:
        end = cpu_sample()
        if self._start is None or end is None or end[2] <= self._start[2]:
            return None
        busy, own, wall = (e - s for e, s in zip(end, self._start))
        return min(max((busy - own) / (wall * (os.cpu_count() or 1)), 0.0), 1.0)


@dataclass
class InterleavedTimes:
    """What ``time_interleaved`` measured: seconds per call, by name."""

    blocks: dict[str, list[float]]  # every timed block
    per_round: dict[str, list[float]]  # one median per round, paired across names by round
    errors: dict[str, RuntimeError]  # runs that failed; they drop out of later rounds
    others_cpu_share: float | None  # share of all cores other processes used meanwhile


def time_interleaved(
    runs: Mapping[str, Callable[[], object]],
    rounds: int,
    seconds_per_turn: float,
    after_turn: Callable[[], None] | None = None,
    synchronize: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> InterleavedTimes:
    """Time callables in turns: each round every run is called for ``seconds_per_turn`` (at least once),
    and each round starts one run later (ABC, BCA, CAB, ...), so neither a slow spell of a shared machine
    nor a fixed position in the order favours one of them. Runs must be warmed up; ``synchronize``
    (e.g. ``torch.cuda.synchronize``) is called before each reading of ``clock`` (seconds; wall time by default,
    ``time.thread_time`` to leave out the time other processes had the core, valid for one-thread CPU work)."""
    names = list(runs)
    result = InterleavedTimes({n: [] for n in names}, {n: [] for n in names}, {}, None)
    others = _CpuShare()
    for round_index in range(rounds):
        shift = round_index % max(len(names), 1)
        for name in names[shift:] + names[:shift]:
            if name not in result.errors:
                try:
                    times = _turn(runs[name], seconds_per_turn, synchronize, clock)
                    result.blocks[name].extend(times)
                    result.per_round[name].append(float(np.median(times)))
                except RuntimeError as error:
                    result.errors[name] = error
            if after_turn:
                after_turn()
    result.others_cpu_share = others.read()
    return result


def _turn(
    run: Callable[[], object], seconds: float, synchronize: Callable[[], None] | None, clock: Callable[[], float]
) -> list[float]:
    """Seconds per call of blocks of calls for about ``seconds``; blocks grow tenfold while shorter than
    MIN_BLOCK_SECONDS, so clock and synchronisation overheads stay small against the calls they time."""
    times: list[float] = []
    number, spent = 1, 0.0
    while not times or spent < seconds:
        if synchronize:
            synchronize()
        start = clock()
        for _ in range(number):
            run()
        if synchronize:
            synchronize()
        elapsed = clock() - start
        spent += elapsed
        if elapsed < MIN_BLOCK_SECONDS and number < 10_000:
            number *= 10
            continue  # too short to trust: time a bigger block
        times.append(elapsed / number)
    return times


def measure_throughput(
    models: Mapping[str, ModelSource],
    batch_sizes: Sequence[int],
    input_size: tuple[int, int, int],
    device: str = "cpu",
    dtype: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
    min_run_time: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    rounds: int = 8,
    cpu_time: bool = False,
) -> list[ThroughputRow]:
    """Inference speed of each model (or model builder) at each batch size on random (B, *input_size) inputs.

    Every model is warmed up, then the models take turns for ``rounds`` rounds (each round starts one
    model later: ABCD, BCDA, ...), each turn ``min_run_time / rounds`` seconds. A row's median is the
    median of its per-round medians, its quartiles pool all its timed blocks; ratios (``sb_resnet50``
    over ``resnet50`` and over ``nl_resnet50``, when those are measured) pair the rounds and carry a
    bootstrap interval. A row whose model fails (CUDA out of memory, unsupported dtype, compile error)
    gets ``error`` and the others go on. With ``cpu_time`` the clock is this thread's CPU time, which
    leaves out the time other processes had the core (CPU with one torch thread only).
    """
    target = _check_arguments(device, dtype, batch_sizes)
    if rounds < 1:
        raise SBCoreError(f"rounds must be at least 1, got {rounds}.")
    if cpu_time and (target.type != "cpu" or torch.get_num_threads() != 1):
        raise SBCoreError("CPU-time measurement needs the CPU and one torch thread (torch.set_num_threads(1)).")
    prepared, costs = {}, {}
    for name, source in models.items():
        prepared[name], *costs[name] = _prepare(source, input_size, target, channels_last, compile)
    total, done = len(models) * len(batch_sizes) * rounds, 0

    def _tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    rows: list[ThroughputRow] = []
    for batch_size in batch_sizes:
        x = torch.randn(batch_size, *input_size, device=target)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        runs = {name: _runner(model, x, dtype) for name, model in prepared.items()}
        memory: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        for name, run in runs.items():
            try:
                memory[name] = _warm_up(run, target, dtype)
            except RuntimeError as error:
                errors[name] = _short_error(error, target)
        live = {name: run for name, run in runs.items() if name not in errors}
        synchronize = (lambda: torch.cuda.synchronize(target)) if target.type == "cuda" else None
        clock = time.thread_time if cpu_time else time.perf_counter
        timing = time_interleaved(live, rounds, min_run_time / rounds, _tick, synchronize, clock)
        errors.update({name: _short_error(error, target) for name, error in timing.errors.items()})
        blocks, per_round, busy = timing.blocks, timing.per_round, timing.others_cpu_share
        for _ in range(rounds * (len(runs) - len(live))):
            _tick()  # models that failed their warm-up count as done
        by_name = {name: _row(name, batch_size, blocks.get(name, []), per_round.get(name, []), errors.get(name))
                   for name in runs}
        for name, row in by_name.items():
            row.device, row.dtype, row.channels_last, row.compiled = str(target), dtype, channels_last, compile
            row.peak_memory_mb, (row.params_m, row.gflops) = memory.get(name), tuple(costs[name])
            row.rounds, row.others_cpu_share = len(per_round.get(name, [])), busy
            row.cpu_threads = torch.get_num_threads() if target.type == "cpu" else None
            baseline, non_local = plain_counterpart(name), "nl_" + plain_counterpart(name)
            row.vs_baseline, row.vs_baseline_ci = _paired_ratio(per_round, errors, name, baseline)
            row.vs_non_local, row.vs_non_local_ci = _paired_ratio(per_round, errors, name, non_local)
        rows.extend(by_name.values())
    return rows


def _row(
    name: str, batch_size: int, blocks: Sequence[float], rounds: Sequence[float], error: str | None
) -> ThroughputRow:
    """A row with the latency statistics of one model at one batch size (the caller fills in the rest).

    The median is the median of the per-round medians; the quartiles pool every timed block. Ratios are
    medians of per-round ratios (``ratio_interval``), so when the machine's speed drifted during a run they
    can differ a little from the quotient of two rows' img/s.
    """
    row = ThroughputRow(model=name, batch_size=batch_size, device="", dtype="", channels_last=False, compiled=False,
                        img_per_s=None, median_ms=None, iqr_ms=None, peak_memory_mb=None, params_m=0.0, gflops=0.0,
                        vs_baseline=None, vs_non_local=None, error=error)
    if error is None and len(rounds):
        median = float(np.median(rounds)) * 1e3
        low, high = np.percentile(np.asarray(blocks) * 1e3, [25, 75])
        row.img_per_s, row.median_ms = batch_size / median * 1e3, median
        row.iqr_ms, row.latency_low_ms, row.latency_high_ms = float(high - low), float(low), float(high)
    return row


def _paired_ratio(
    per_round: Mapping[str, Sequence[float]], errors: Mapping[str, str], name: str, other: str
) -> tuple[float | None, tuple[float, float] | None]:
    """img/s of ``name`` over ``other`` from their per-round medians, with its interval when there are >= 2 rounds."""
    if other not in per_round or name in errors or other in errors or not per_round[name] or not per_round[other]:
        return None, None
    if name == other:
        return 1.0, (1.0, 1.0)
    paired = ratio_interval(per_round[name], per_round[other])
    if paired is None:
        return float(np.median(per_round[other]) / np.median(per_round[name])), None
    return paired


def _cell(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def format_ratio(value: float | None, interval: tuple[float, float] | None) -> str:
    """``0.96x [0.94-0.98]``, ``0.96x`` without an interval, ``-`` without a value."""
    if value is None:
        return "-"
    return f"{value:.2f}x" + (f" [{interval[0]:.2f}-{interval[1]:.2f}]" if interval else "")


def format_throughput_table(rows: Sequence[ThroughputRow]) -> str:
    """A plain-text table: model, batch, img/s, median and quartile ms, peak MB, params, GFLOPs, ratios with
    their 95% intervals; then how busy the machine was."""
    header = (f"{'model':<22} {'batch':>5} {'img/s':>9} {'median ms':>10} {'p25-p75 ms':>15} {'peak MB':>8} "
              f"{'params M':>9} {'GFLOPs':>7} {'vs plain [95% CI]':>19} {'vs NL [95% CI]':>19}")
    lines = [header, "-" * len(header)]
    for r in rows:
        quartiles = f"{r.latency_low_ms:.1f}-{r.latency_high_ms:.1f}" if r.latency_low_ms is not None else "-"
        lines.append(
            f"{r.model:<22} {r.batch_size:>5} {_cell(r.img_per_s, '9.1f')} {_cell(r.median_ms, '10.1f')} "
            f"{quartiles:>15} {_cell(r.peak_memory_mb, '8.1f')} {r.params_m:>9.2f} {r.gflops:>7.2f} "
            f"{format_ratio(r.vs_baseline, r.vs_baseline_ci):>19} {format_ratio(r.vs_non_local, r.vs_non_local_ci):>19}"
            + (f"  error: {r.error}" if r.error else "")
        )
    threads = sorted({r.cpu_threads for r in rows if r.cpu_threads is not None})
    if threads:
        lines.append(f"CPU rows ran on {'/'.join(map(str, threads))} torch thread(s)")
    shares = [r.others_cpu_share for r in rows if r.others_cpu_share is not None]
    if shares:
        lines.append(f"other processes used up to {max(shares):.0%} of the machine's cores while this ran")
    return "\n".join(lines)
