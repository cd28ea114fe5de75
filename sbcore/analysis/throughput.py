"""Inference throughput through ``torch.utils.benchmark``, with models interleaved so ratios are fair."""
from __future__ import annotations

import copy
import ctypes
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sbcore.cost import count_flops, count_parameters
from sbcore.models.registry import plain_counterpart
from sbcore.errors import SBCoreError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
WARMUP_CALLS = 2


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
    vs_baseline: float | None  # img/s over the plain counterpart's img/s in this run
    vs_non_local: float | None  # img/s over the nl_ variant's img/s in this run
    error: str | None = None


def _prepare(model: nn.Module, device: torch.device, channels_last: bool, compile: bool) -> nn.Module:
    """A copy in eval mode on ``device`` (the caller's model is left untouched)."""
    prepared = copy.deepcopy(model).eval().to(device)
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    return torch.compile(prepared) if compile else prepared


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
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # return freed heap so earlier models do not hide this one's
    except (OSError, AttributeError):
        pass
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


def _ratio(rows: dict[str, ThroughputRow], name: str, other: str) -> float | None:
    mine, theirs = rows[name].img_per_s, rows[other].img_per_s if other in rows else None
    return mine / theirs if mine and theirs else None


def measure_throughput(
    models: Mapping[str, nn.Module],
    batch_sizes: Sequence[int],
    input_size: tuple[int, int, int],
    device: str = "cpu",
    dtype: str = "fp32",
    channels_last: bool = False,
    compile: bool = False,
    min_run_time: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    rounds: int = 3,
) -> list[ThroughputRow]:
    """Inference speed of each model at each batch size on random (B, *input_size) inputs.

    Every model is warmed up, then the models take turns (``rounds`` round-robin passes of
    ``blocked_autorange`` with ``min_run_time / rounds`` seconds each), so a slow spell of a noisy
    machine hits all of them alike. Median and IQR come from all passes together. Ratios use the
    names: ``sb_resnet50`` is compared with ``resnet50`` and ``nl_resnet50`` when those are measured.
    A row whose model fails (CUDA out of memory, unsupported dtype, compile error) gets ``error``.
    """
    from torch.utils.benchmark import Timer  # deferred: importing it probes for a CUDA toolkit and warns

    target = _check_arguments(device, dtype, batch_sizes)
    costs = {name: (count_parameters(m)[0] / 1e6, count_flops(m, input_size) / 1e9) for name, m in models.items()}
    prepared = {name: _prepare(m, target, channels_last, compile) for name, m in models.items()}
    total, done = len(models) * len(batch_sizes) * rounds, 0
    rows: list[ThroughputRow] = []
    for batch_size in batch_sizes:
        x = torch.randn(batch_size, *input_size, device=target)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        runs = {name: _runner(model, x, dtype) for name, model in prepared.items()}
        memory: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        times: dict[str, list[float]] = {name: [] for name in runs}
        for name, run in runs.items():
            try:
                memory[name] = _warm_up(run, target, dtype)
            except RuntimeError as error:
                errors[name] = _short_error(error, target)
        for _ in range(rounds):
            for name, run in runs.items():
                if name not in errors:
                    try:
                        timer = Timer(stmt="run()", globals={"run": run}, num_threads=torch.get_num_threads())
                        times[name].extend(timer.blocked_autorange(min_run_time=min_run_time / rounds).times)
                    except RuntimeError as error:
                        errors[name] = _short_error(error, target)
                done += 1
                if progress:
                    progress(done, total)
        by_name = {}
        for name in runs:
            ok = name not in errors
            seconds = np.asarray(times[name]) if ok else None
            median = float(np.median(seconds)) if ok else None
            by_name[name] = ThroughputRow(
                model=name, batch_size=batch_size, device=str(target), dtype=dtype, channels_last=channels_last,
                compiled=compile, img_per_s=batch_size / median if ok else None,
                median_ms=median * 1e3 if ok else None,
                iqr_ms=float(np.subtract(*np.percentile(seconds, [75, 25]))) * 1e3 if ok else None,
                peak_memory_mb=memory.get(name), params_m=costs[name][0], gflops=costs[name][1],
                vs_baseline=None, vs_non_local=None, error=errors.get(name),
            )
        for name, row in by_name.items():
            row.vs_baseline = _ratio(by_name, name, plain_counterpart(name))
            row.vs_non_local = _ratio(by_name, name, "nl_" + plain_counterpart(name))
        rows.extend(by_name.values())
    return rows


def _cell(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def format_throughput_table(rows: Sequence[ThroughputRow]) -> str:
    """A plain-text table: model, batch, img/s, median and IQR ms, peak MB, params, GFLOPs, ratios."""
    header = (f"{'model':<22} {'batch':>5} {'img/s':>9} {'median ms':>10} {'IQR ms':>8} {'peak MB':>8} "
              f"{'params M':>9} {'GFLOPs':>7} {'vs plain':>9} {'vs NL':>7}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.model:<22} {r.batch_size:>5} {_cell(r.img_per_s, '9.1f')} {_cell(r.median_ms, '10.1f')} "
            f"{_cell(r.iqr_ms, '8.1f')} {_cell(r.peak_memory_mb, '8.1f')} {r.params_m:>9.2f} {r.gflops:>7.2f} "
            f"{_cell(r.vs_baseline, '8.2f')}x {_cell(r.vs_non_local, '6.2f')}x"
            + (f"  error: {r.error}" if r.error else "")
        )
    return "\n".join(lines)
