"""Trainer: SGD + cosine with warm-up, autocast, channels_last, resume, and DDP under torchrun.

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
import platform
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from sbcore.checkpoint import save_checkpoint
from sbcore.data import DATASETS, DatasetSpec, limited_test_split, load_dataset
from sbcore.evaluate import evaluate, evaluation_loader
from sbcore.models import create_model


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


def _autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "none":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or device.type == "cpu" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _split(spec: DatasetSpec, val_size: int, seed: int, limit: int | None) -> tuple[Subset, Subset]:
    """Hold out ``val_size`` training images (same seed -> same split), then optionally limit both."""
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


def train(config: TrainConfig) -> Path | None:
    """Train, log JSON lines, checkpoint every epoch; returns the final checkpoint path (rank 0)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    _seed_everything(config.seed)
    output = Path(config.output)
    if rank == 0:
        output.mkdir(parents=True, exist_ok=True)

    spec = load_dataset(config.dataset, config.data, config.image_size)
    train_set, val_set = _split(spec, config.val_size, config.seed, config.limit_train)
    test_set = limited_test_split(spec, config.limit_test)

    shuffle_generator = torch.Generator().manual_seed(config.seed)  # saved with the state, so resume keeps the order
    sampler = DistributedSampler(train_set, world, rank, seed=config.seed) if distributed else None
    loader = DataLoader(
        train_set, config.batch_size, shuffle=sampler is None, sampler=sampler, num_workers=config.workers,
        drop_last=True, generator=shuffle_generator, persistent_workers=config.workers > 0,
    )
    eval_loader = lambda ds: evaluation_loader(ds, config.workers)  # noqa: E731

    model = create_model(
        config.model, num_classes=len(spec.class_names), in_chans=spec.preprocessing.input_size[0]
    ).to(device)
    metadata = model.metadata
    metadata.class_names, metadata.preprocessing = spec.class_names, spec.preprocessing
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    peak_lr = config.lr * config.batch_size * world / 128
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=peak_lr, momentum=config.momentum, nesterov=True,
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    dtype = _autocast_dtype(config.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    steps_per_epoch = len(loader)
    total_steps, warmup_steps = config.epochs * steps_per_epoch, int(config.warmup_epochs * steps_per_epoch)

    state_path, start_epoch, elapsed = output / "train_state.pt", 0, 0.0
    if config.resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, elapsed = int(state["epoch"]), float(state["elapsed"])
        torch.set_rng_state(state["rng"])
        shuffle_generator.set_state(state["shuffle_rng"])
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)

    log = (output / "log.jsonl").open("a") if rank == 0 else None
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=rank != 0, dynamic_ncols=True)
        for step, (images, labels) in enumerate(bar, start=epoch * steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = _cosine_lr(step, total_steps, warmup_steps, peak_lr)
            images = images.to(device, memory_format=memory_format, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype) if dtype else nullcontext():
                logits = model(images)
                loss = criterion(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            seen += labels.numel()
            correct += (logits.argmax(1) == labels).sum().item()
            loss_sum += loss.item() * labels.numel()
            rate = seen * world / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}", img_s=f"{rate:.0f}")
        elapsed += time.perf_counter() - started
        if rank == 0:
            val = evaluate(_unwrap(model), eval_loader(val_set), len(spec.class_names), device)
            record = {
                "epoch": epoch + 1, "train_loss": loss_sum / seen, "train_top1": 100 * correct / seen,
                "val_top1": val["top1"], "val_top5": val["top5"], "lr": optimizer.param_groups[0]["lr"],
                "epoch_seconds": time.perf_counter() - started, "img_per_s": seen * world / (time.perf_counter() - started),
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
            tqdm.write(json.dumps(record))
            torch.save(
                {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                 "elapsed": elapsed, "rng": torch.get_rng_state(),
                 "shuffle_rng": shuffle_generator.get_state()},
                state_path,
            )
    final = None
    if rank == 0:
        plain = _unwrap(model).to(memory_format=torch.contiguous_format)
        test = evaluate(plain, eval_loader(test_set), len(spec.class_names), device, progress=True)
        val = evaluate(plain, eval_loader(val_set), len(spec.class_names), device)
        metadata.training = {
            **asdict(config), "world_size": world, "peak_lr": peak_lr, "optimizer": "SGD nesterov",
            "schedule": "cosine with linear warm-up", "autocast": str(dtype), "train_images": len(train_set),
            "val_images": len(val_set), "wall_seconds": round(elapsed, 1),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
            + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
            "torch": torch.__version__,
        }
        metadata.metrics = {"test": test, "val_top1": val["top1"], "test_split": config.dataset + " test",
                            "test_limit": config.limit_test}
        final = save_checkpoint(plain, output / config.model, metadata)
        tqdm.write(f"test top-1 {test['top1']:.2f}%  top-5 {test['top5']:.2f}%  -> {final}")
    if distributed:
        dist.destroy_process_group()
    return final


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Command-line options mirroring TrainConfig."""
    parser = parser or argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainConfig()
    parser.add_argument("--model", default=defaults.model, help="registered architecture, e.g. sb_resnet38 (see sbcore.list_models())")
    parser.add_argument("--dataset", default=defaults.dataset, choices=DATASETS, help="dataset kind")
    parser.add_argument("--data", default=None, help="dataset folder (Fashion-MNIST: found automatically)")
    parser.add_argument("--output", default=defaults.output, help="folder for log, state and checkpoint")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per step per process")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate for a global batch of 128")
    parser.add_argument("--momentum", type=float, default=defaults.momentum, help="SGD momentum (Nesterov)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="on weights, not BN/bias")
    parser.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs, help="linear warm-up length")
    parser.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing, help="cross-entropy smoothing")
    parser.add_argument("--val-size", type=int, default=defaults.val_size, help="training images held out for validation")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for weights, split and order")
    parser.add_argument("--amp", default=defaults.amp, choices=("auto", "bf16", "fp16", "none"), help="autocast dtype")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW layout")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="data-loader worker processes")
    parser.add_argument("--image-size", type=int, default=None, help="input size for ImageFolder data")
    parser.add_argument("--limit-train", type=int, default=None, help="use only this many training images")
    parser.add_argument("--limit-test", type=int, default=None, help="evaluate on only this many test images")
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
    from sbcore.cli import run_command

    args = build_parser().parse_args(argv)
    args.command, args.run = "train", _run_train
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
