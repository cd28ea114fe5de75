"""The trainer on a tiny Fashion-MNIST subset: outputs, resume, exact re-evaluation, a missing dataset,
and DistributedDataParallel on CPU with two processes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sbcore import train as trainer
from sbcore.checkpoint import load_checkpoint
from sbcore.cli import main as cli_main
from sbcore.data import FASHION_MNIST_CLASSES

TINY = ["--model", "sb_resnet38", "--limit-train", "128", "--limit-test", "64", "--val-size", "64", "--batch-size", "32"]
SINGLE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One epoch of sb_resnet38 on 128 training images, through ``sbcore train``."""
    output = tmp_path_factory.mktemp("run")
    assert cli_main(["train", *TINY, "--epochs", "1", "--output", str(output)]) == 0
    return output


def test_training_writes_a_log_a_resumable_state_and_a_checkpoint(run):
    (record,) = _log(run)
    assert record["epoch"] == 1
    assert {"train_loss", "train_top1", "val_top1", "val_top5", "lr", "img_per_s"} <= set(record)
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["epoch"] == 1 and {"model", "optimizer", "rng", "elapsed"} <= set(state)
    assert (run / "sb_resnet38.safetensors").is_file() and (run / "sb_resnet38.json").is_file()


def test_the_checkpoint_carries_recipe_metrics_classes_and_preprocessing(run):
    model = load_checkpoint(run / "sb_resnet38.safetensors")
    meta = model.metadata
    assert meta.architecture == "sb_resnet38" and meta.model_kwargs == {"num_classes": 10, "in_chans": 1}
    assert meta.class_names == list(FASHION_MNIST_CLASSES)
    assert meta.preprocessing.input_size == (1, 28, 28) and meta.preprocessing.dark_background
    recipe = meta.training
    assert recipe["epochs"] == 1 and recipe["batch_size"] == 32 and recipe["dataset"] == "fashion-mnist"
    assert recipe["train_images"] == 128 and recipe["world_size"] == 1
    assert recipe["wall_seconds"] > 0 and recipe["hardware"] and recipe["torch"] == torch.__version__
    test = meta.metrics["test"]
    assert test["samples"] == 64 and meta.metrics["test_limit"] == 64
    assert 0 <= test["top1"] <= test["top5"] <= 100
    assert sum(map(sum, test["confusion"])) == 64 and len(test["per_class"]) == 10


def test_sbcore_eval_reproduces_the_recorded_metrics_exactly(run, capsys):
    assert cli_main(["eval", str(run / "sb_resnet38.safetensors"), "--limit", "64"]) == 0
    out = capsys.readouterr().out
    recorded = json.loads((run / "sb_resnet38.json").read_text())["metrics"]["test"]
    assert "fashion-mnist test split, 64 images" in out
    assert f"top-1  {recorded['top1']:7.2f}%" in out
    assert "Reproduces the recorded test metrics exactly" in out


def test_sbcore_eval_reproduces_them_in_the_padded_channel_layout_too(run, capsys):
    assert cli_main(["eval", str(run / "sb_resnet38.safetensors"), "--limit", "64", "--channel-layout", "padded"]) == 0
    assert "Reproduces the recorded test metrics exactly" in capsys.readouterr().out


def test_sbcore_eval_fails_clearly_when_the_recorded_metrics_differ(run, tmp_path, capsys):
    for suffix in (".safetensors", ".json"):
        shutil.copy(run / f"sb_resnet38{suffix}", tmp_path / f"copy{suffix}")
    meta = tmp_path / "copy.json"
    document = json.loads(meta.read_text())
    document["metrics"]["test"]["top1"] += 1.0
    meta.write_text(json.dumps(document))
    assert cli_main(["eval", str(tmp_path / "copy.json")]) == 2
    err = capsys.readouterr().err
    assert "does not reproduce its recorded test metrics: top1" in err and err.count("\n") == 1


def test_sbcore_eval_on_another_subset_does_not_claim_a_reproduction(run, capsys):
    assert cli_main(["eval", str(run / "sb_resnet38.safetensors"), "--limit", "32"]) == 0
    out = capsys.readouterr().out
    assert "Not compared: the recorded metrics cover 64 test images, this run 32" in out
    assert "Reproduces" not in out


def test_resume_continues_from_the_saved_epoch(run, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    assert cli_main(["train", *TINY, "--epochs", "2", "--output", str(resumed), "--resume"]) == 0
    assert [r["epoch"] for r in _log(resumed)] == [1, 2]
    assert torch.load(resumed / "train_state.pt", weights_only=True)["epoch"] == 2
    recipe = json.loads((resumed / "sb_resnet38.json").read_text())["training"]
    assert recipe["epochs"] == 2 and recipe["resume"] is True


def test_resume_keeps_the_shuffle_order_of_an_uninterrupted_run(run, tmp_path):
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    shutil.copytree(run, resumed)
    assert cli_main(["train", *TINY, "--epochs", "2", "--output", str(resumed), "--resume"]) == 0
    assert cli_main(["train", *TINY, "--epochs", "2", "--output", str(straight)]) == 0
    state = lambda folder: torch.load(folder / "train_state.pt", weights_only=True)["shuffle_rng"]  # noqa: E731
    assert torch.equal(state(resumed), state(straight))


def test_a_missing_dataset_gives_one_sentence_and_status_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sbcore.train", *TINY, "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path)],
        capture_output=True, text=True, env=SINGLE_THREAD, timeout=300,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"sbcore train: error: Fashion-MNIST not found in {tmp_path / 'nowhere'}")
    assert "apt-get install dataset-fashion-mnist" in result.stderr


def test_sbcore_train_accepts_the_same_options_as_python_m_sbcore_train(capsys):
    from sbcore.train import build_parser

    with pytest.raises(SystemExit):
        cli_main(["train", "--help"])
    cli_help = capsys.readouterr().out
    options = [a.option_strings[-1] for a in build_parser()._actions if a.option_strings]
    assert all(option in cli_help for option in options)


def test_distributed_training_on_cpu_with_two_processes(tmp_path):
    output = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "sbcore.train", *TINY, "--epochs", "1", "--output", str(output),
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=SINGLE_THREAD, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(_log(output)) == 1  # only rank 0 logs
    recipe = json.loads((output / "sb_resnet38.json").read_text())["training"]
    assert recipe["world_size"] == 2 and recipe["peak_lr"] == pytest.approx(0.1 * 32 * 2 / 128)
    load_checkpoint(output / "sb_resnet38.safetensors")


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cpu_uses_bf16_only_where_the_cpu_runs_it_natively(monkeypatch, native):
    monkeypatch.setattr(trainer, "_native_bf16_cpu", lambda: native)
    cpu = torch.device("cpu")
    assert trainer._autocast_dtype("auto", cpu) == (torch.bfloat16 if native else None)
    assert trainer._autocast_dtype("bf16", cpu) == torch.bfloat16 and trainer._autocast_dtype("none", cpu) is None
