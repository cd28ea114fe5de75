"""Trainer: SGD or AdamW + cosine with warm-up, autocast, channels_last, resume, and DDP under torchrun.

    python -m sbcore.train --model sb_resnet38 --dataset fashion-mnist --epochs 15 --output runs/sb
    torchrun --nproc_per_node=2 -m sbcore.train ...   # same flags, DistributedDataParallel

Part of the training set is held out for validation (``--val-size``); the test split is touched
once, after the last epoch, and its metrics go into the checkpoint's metadata.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import random
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from sbcore.checkpoint import save_checkpoint
from sbcore.cli_types import MAX_BATCH, MAX_WORKERS, OneLineParser, integer, output_folder, positive_int, real, seed
from sbcore.console import run_command
from sbcore.data import DATASETS, DatasetSpec, limited_test_split, load_dataset, sample_groups
from sbcore.errors import SBCoreError
from sbcore.evaluate import evaluate, evaluation_loader
from sbcore.factory import create_model
from sbcore.models.metadata import ModelMetadata
from sbcore.output_files import replacing
from sbcore.schema import MAX_SIDE


@dataclass
class TrainConfig:
    """The training recipe; saved into every checkpoint it produces."""

    model: str = "sb_resnet38"
    dataset: str = "fashion-mnist"
    data: str | None = None
    output: str = "runs/train"
    epochs: int = 15
    batch_size: int = 128  # per process
    lr: float = 0.1  # for a global batch of 128, scaled linearly
    optimizer: str = "sgd"  # sgd (Nesterov) | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    val_size: int = 5000
    seed: int = 0
    amp: str = "auto"  # auto | bf16 | fp16 | none
    channels_last: bool = True
    workers: int = 0
    image_size: int | None = None  # ImageFolder only
    limit_train: int | None = None  # subset for smoke tests
    limit_test: int | None = None
    resume: bool = False


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _native_bf16_cpu() -> bool:
    """Whether this CPU runs bf16 convolutions natively (AVX-512 BF16 or AMX); without it, CPU autocast
    falls back to slow reference kernels (7x slower than fp32 for the lab models on an AVX2 machine)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "none":
        return None
    if amp == "fp16":
        return torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if amp == "bf16" or _native_bf16_cpu() else None
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _split(spec: DatasetSpec, val_size: int, seed: int, limit: int | None) -> tuple[Subset, Subset]:
    """Hold out ``val_size`` training images (same seed -> same split), then optionally limit both."""
    if val_size >= len(spec.train):
        raise SBCoreError(f"--val-size {val_size:,} holds out every one of the {len(spec.train):,} training images; "
                          "leave some to train on.")
    order = torch.randperm(len(spec.train), generator=torch.Generator().manual_seed(seed)).tolist()
    val_idx, train_idx = order[:val_size], order[val_size:]
    if limit:
        train_idx, val_idx = train_idx[:limit], val_idx[: max(limit // 10, 1)]
    return Subset(spec.train, train_idx), Subset(spec.train_eval, val_idx)


def _cosine_lr(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * peak * (1 + math.cos(math.pi * progress))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@dataclass
class _Process:
    """Where this process runs: its rank among ``world`` processes and its device."""

    distributed: bool
    rank: int
    world: int
    device: torch.device


@dataclass
class _Data:
    """The splits and the shuffled training loader, whose generator is saved with the state."""

    spec: DatasetSpec
    train_set: Dataset
    val_set: Dataset
    test_set: Dataset
    loader: DataLoader
    sampler: DistributedSampler | None
    shuffle_generator: torch.Generator


@dataclass
class _Optimization:
    """Optimizer, loss, mixed precision and the learning-rate schedule of one run."""

    optimizer: torch.optim.Optimizer
    criterion: nn.Module
    scaler: torch.amp.GradScaler
    dtype: torch.dtype | None
    peak_lr: float
    total_steps: int
    warmup_steps: int


def _start_process() -> _Process:
    """Join the process group under torchrun (WORLD_SIZE > 1) and pick this process's device."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    return _Process(distributed, rank, world, device)


def _prepare_data(config: TrainConfig, process: _Process) -> _Data:
    """Load the dataset, hold out the validation split and build the shuffled training loader."""
    spec = load_dataset(config.dataset, config.data, config.image_size)
    train_set, val_set = _split(spec, config.val_size, config.seed, config.limit_train)
    shuffle_generator = torch.Generator().manual_seed(config.seed)
    sampler = (
        DistributedSampler(train_set, process.world, process.rank, seed=config.seed) if process.distributed else None
    )
    loader = DataLoader(
        train_set, config.batch_size, shuffle=sampler is None, sampler=sampler, num_workers=config.workers,
        drop_last=True, generator=shuffle_generator, persistent_workers=config.workers > 0,
    )
    if len(loader) == 0:
        raise SBCoreError(
            f"The training split holds {len(train_set):,} images, fewer than one batch of {config.batch_size} per "
            f"process; lower --batch-size or raise --limit-train."
        )
    test_set = limited_test_split(spec, config.limit_test)
    return _Data(spec, train_set, val_set, test_set, loader, sampler, shuffle_generator)


def _prepare_model(config: TrainConfig, spec: DatasetSpec, device: torch.device) -> nn.Module:
    """A fresh model sized for the dataset, its metadata naming the dataset's classes and preprocessing."""
    model = create_model(config.model, num_classes=len(spec.class_names), in_chans=spec.preprocessing.input_size[0])
    model.metadata.class_names, model.metadata.preprocessing = spec.class_names, spec.preprocessing
    return model.to(device, memory_format=_memory_format(config))


def _memory_format(config: TrainConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.contiguous_format


def _prepare_optimization(
    config: TrainConfig, model: nn.Module, process: _Process, steps_per_epoch: int
) -> _Optimization:
    """SGD with Nesterov momentum or AdamW (no weight decay on BN and biases), the lr scaled to the global batch."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    peak_lr = config.lr * config.batch_size * process.world / 128
    if config.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=peak_lr)
    else:
        optimizer = torch.optim.SGD(groups, lr=peak_lr, momentum=config.momentum, nesterov=True)
    dtype = _autocast_dtype(config.amp, process.device)
    return _Optimization(
        optimizer,
        nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        torch.amp.GradScaler(process.device.type, enabled=dtype == torch.float16),
        dtype,
        peak_lr,
        total_steps=config.epochs * steps_per_epoch,
        warmup_steps=int(config.warmup_epochs * steps_per_epoch),
    )


def _save_state(path: Path, model: nn.Module, opt: _Optimization, data: _Data, epoch: int, elapsed: float) -> None:
    """Everything a resumed run needs to continue as if never interrupted; an interrupted write keeps the last state."""
    with replacing(path) as temporary:
        torch.save(
            {"model": _unwrap(model).state_dict(), "optimizer": opt.optimizer.state_dict(), "epoch": epoch,
             "elapsed": elapsed, "rng": torch.get_rng_state(), "shuffle_rng": data.shuffle_generator.get_state()},
            temporary,
        )


def _load_state(path: Path, model: nn.Module, opt: _Optimization, data: _Data, device: torch.device) -> tuple[int, float]:
    """Restore a saved state; returns (epochs done, training seconds so far). A file that is not this run's saved
    state (corrupt, another model's, or a pickle that needs more than tensors and plain values) is refused in one
    sentence."""
    def refuse(reason: str) -> SBCoreError:
        return SBCoreError(f"{path} cannot be resumed: {reason}. Delete it to start this run afresh.")

    try:
        with warnings.catch_warnings():  # torch warns about the globals it refuses; the message below says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError):
        raise refuse("it is not a state this trainer saved (corrupt, or holding objects other than tensors and "
                     "plain values, which are never unpickled)") from None
    try:
        model.load_state_dict(state["model"])
        opt.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        data.shuffle_generator.set_state(state["shuffle_rng"])
        return int(state["epoch"]), float(state["elapsed"])
    except (KeyError, TypeError, IndexError) as error:
        raise refuse(f"it lacks {error} or holds it in another form") from None
    except (RuntimeError, ValueError):
        raise refuse(f"it was saved for another model or optimizer than this run's {_architecture(model)}") from None


def _architecture(model: nn.Module) -> str:
    """The architecture name of a (possibly DDP-wrapped) model, for messages."""
    return _unwrap(model).metadata.architecture


def _train_one_epoch(
    model: nn.Module, data: _Data, opt: _Optimization, config: TrainConfig, process: _Process, epoch: int
) -> dict[str, float]:
    """One pass over the training loader; returns the epoch's loss, accuracy and images seen."""
    model.train()
    if data.sampler is not None:
        data.sampler.set_epoch(epoch)
    seen = correct = 0
    loss_sum = 0.0
    started = time.perf_counter()
    steps_per_epoch = len(data.loader)
    bar = tqdm(data.loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=process.rank != 0, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar, start=epoch * steps_per_epoch):
        for group in opt.optimizer.param_groups:
            group["lr"] = _cosine_lr(step, opt.total_steps, opt.warmup_steps, opt.peak_lr)
        images = images.to(process.device, memory_format=_memory_format(config), non_blocking=True)
        labels = labels.to(process.device, non_blocking=True)
        with torch.autocast(process.device.type, dtype=opt.dtype) if opt.dtype else nullcontext():
            logits = model(images)
            loss = opt.criterion(logits.float(), labels)
        opt.optimizer.zero_grad(set_to_none=True)
        opt.scaler.scale(loss).backward()
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        seen += labels.numel()
        correct += (logits.argmax(1) == labels).sum().item()
        loss_sum += loss.item() * labels.numel()
        rate = seen * process.world / (time.perf_counter() - started)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}", img_s=f"{rate:.0f}")
    return {"train_loss": loss_sum / seen, "train_top1": 100 * correct / seen, "seen": seen}


def _final_metadata(
    config: TrainConfig, model: nn.Module, data: _Data, opt: _Optimization, process: _Process, elapsed: float
) -> ModelMetadata:
    """The checkpoint's metadata: the recipe as run, and test metrics measured once, at the end."""
    classes = len(data.spec.class_names)
    test = evaluate(
        model, evaluation_loader(data.test_set, config.workers), classes, process.device, progress=True,
        groups=sample_groups(data.test_set),
    )
    val = evaluate(model, evaluation_loader(data.val_set, config.workers), classes, process.device)
    metadata = model.metadata
    metadata.training = {
        **asdict(config), "world_size": process.world, "peak_lr": opt.peak_lr,
        "optimizer": "AdamW" if config.optimizer == "adamw" else "SGD nesterov",
        "schedule": "cosine with linear warm-up", "autocast": str(opt.dtype), "train_images": len(data.train_set),
        "val_images": len(data.val_set), "wall_seconds": round(elapsed, 1),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name(process.device)}" if process.device.type == "cuda" else ""),
        "torch": torch.__version__,
    }
    metadata.metrics = {"test": test, "val_top1": val["top1"], "test_split": config.dataset + " test",
                        "test_limit": config.limit_test}
    return metadata


def train(config: TrainConfig) -> Path | None:
    """Train, log JSON lines, checkpoint every epoch; returns the final checkpoint path (rank 0)."""
    process = _start_process()
    _seed_everything(config.seed)
    output = Path(config.output)
    if process.rank == 0:
        output.mkdir(parents=True, exist_ok=True)
    data = _prepare_data(config, process)
    model = _prepare_model(config, data.spec, process.device)
    opt = _prepare_optimization(config, model, process, len(data.loader))
    state_path, start_epoch, elapsed = output / "train_state.pt", 0, 0.0
    if config.resume and state_path.is_file():
        start_epoch, elapsed = _load_state(state_path, model, opt, data, process.device)
    if process.distributed:
        model = nn.parallel.DistributedDataParallel(model)

    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        stats = _train_one_epoch(model, data, opt, config, process, epoch)
        elapsed += time.perf_counter() - started
        if process.rank == 0:
            val = evaluate(_unwrap(model), evaluation_loader(data.val_set, config.workers), len(data.spec.class_names), process.device)
            seconds = time.perf_counter() - started
            record = {
                "epoch": epoch + 1, "train_loss": stats["train_loss"], "train_top1": stats["train_top1"],
                "val_top1": val["top1"], "val_top5": val["top5"], "lr": opt.optimizer.param_groups[0]["lr"],
                "epoch_seconds": seconds, "img_per_s": stats["seen"] * process.world / seconds,
            }
            with (output / "log.jsonl").open("a") as log:  # closed each epoch: nothing left open on an interruption
                log.write(json.dumps(record) + "\n")
            tqdm.write(json.dumps(record))
            _save_state(state_path, model, opt, data, epoch + 1, elapsed)
    final = None
    if process.rank == 0:
        plain = _unwrap(model).to(memory_format=torch.contiguous_format)
        metadata = _final_metadata(config, plain, data, opt, process, elapsed)
        final = save_checkpoint(plain, output / config.model, metadata)
        test = metadata.metrics["test"]
        tqdm.write(f"test top-1 {test['top1']:.2f}%  top-5 {test['top5']:.2f}%  -> {final}")
    if process.distributed:
        dist.destroy_process_group()
    return final


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Command-line options mirroring TrainConfig."""
    parser = parser or OneLineParser(
        prog="python -m sbcore.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = TrainConfig()
    parser.add_argument("--model", default=defaults.model, help="registered architecture, e.g. sb_resnet38 (see sbcore.list_models())")
    parser.add_argument("--dataset", default=defaults.dataset, choices=DATASETS, help="dataset kind")
    parser.add_argument("--data", default=None, help="dataset folder (Fashion-MNIST: found automatically)")
    parser.add_argument("--output", type=output_folder, default=defaults.output, help="folder for log, state and checkpoint")
    parser.add_argument("--epochs", type=integer(1, 10_000), default=defaults.epochs, help="training epochs")
    parser.add_argument("--batch-size", type=integer(1, MAX_BATCH), default=defaults.batch_size,
                        help="images per step per process")
    parser.add_argument("--lr", type=real(0, 10, above_low=True), default=defaults.lr,
                        help="peak learning rate for a global batch of 128")
    parser.add_argument("--optimizer", default=defaults.optimizer, choices=("sgd", "adamw"), help="SGD (Nesterov) or AdamW")
    parser.add_argument("--momentum", type=real(0, 1), default=defaults.momentum, help="SGD momentum (Nesterov)")
    parser.add_argument("--weight-decay", type=real(0, 1), default=defaults.weight_decay, help="on weights, not BN/bias")
    parser.add_argument("--warmup-epochs", type=real(0, 10_000), default=defaults.warmup_epochs, help="linear warm-up length")
    parser.add_argument("--label-smoothing", type=real(0, 1), default=defaults.label_smoothing,
                        help="cross-entropy smoothing")
    parser.add_argument("--val-size", type=positive_int, default=defaults.val_size,
                        help="training images held out for validation")
    parser.add_argument("--seed", type=seed, default=defaults.seed, help="seed for weights, split and order")
    parser.add_argument("--amp", default=defaults.amp, choices=("auto", "bf16", "fp16", "none"), help="autocast dtype")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW layout")
    parser.add_argument("--workers", type=integer(0, MAX_WORKERS), default=defaults.workers,
                        help="data-loader worker processes")
    parser.add_argument("--image-size", type=integer(8, MAX_SIDE), default=None, help="input size for ImageFolder data")
    parser.add_argument("--limit-train", type=positive_int, default=None, help="use only this many training images")
    parser.add_argument("--limit-test", type=positive_int, default=None, help="evaluate on only this many test images")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT/train_state.pt")
    return parser


def _run_train(args: argparse.Namespace) -> None:
    train(TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)}))


def configure_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sbcore train`` with the options of ``python -m sbcore.train``."""
    parser = subparsers.add_parser(
        "train", help="train a model (also under torchrun)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build_parser(parser).set_defaults(run=_run_train)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m sbcore.train``; a user error prints one line and gives status 2."""
    args = build_parser().parse_args(argv)
    args.command, args.run = "train", _run_train
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
