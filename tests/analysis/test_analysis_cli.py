"""The four analysis subcommands end to end on shipped checkpoints (whatever their weights)."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from sbcore.analysis import non_local_blocks, spatial_bias_blocks
from sbcore.analysis.cli import load_model
from sbcore.cli import main
from sbcore.models.pretrained import CHECKPOINT_DIR

SAMPLES = CHECKPOINT_DIR.parent / "samples"


@pytest.fixture(scope="module")
def shirt(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "shirt.png"
    image = Image.new("RGB", (60, 80), "white")
    image.paste((30, 30, 30), (15, 20, 45, 70))
    image.save(path)
    return path


def test_maps_writes_figures_and_statistics(tmp_path, shirt):
    assert main(["maps", "sbnl_resnet38.fmnist", str(shirt), "--out", str(tmp_path), "--invert",
                 "--steps", "layer1.0", "--top-k", "3"]) == 0
    for name in ("shirt_maps.png", "shirt_attention.png", "shirt_steps_layer1.0.png"):
        assert (tmp_path / name).stat().st_size > 1000
    report = json.loads((tmp_path / "shirt_maps.json").read_text())
    model = load_model("sbnl_resnet38.fmnist")
    assert list(report["spatial_bias"]) == spatial_bias_blocks(model)
    assert list(report["attention_peak"]) == non_local_blocks(model)
    assert len(report["predictions"]) == 3
    assert {p["label"] for p in report["predictions"]} <= set(model.metadata.class_names)


def test_explain_writes_heatmaps_and_raw_maps(tmp_path, shirt):
    assert main(["explain", "sb_resnet38.fmnist", str(shirt), "--method", "saliency", "grad_cam",
                 "--target", "4", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "shirt_explain.json").read_text())
    assert set(report["methods"]) == {"saliency", "grad_cam"}
    assert report["methods"]["saliency"]["target"] == 4 and report["methods"]["saliency"]["label"] == "Coat"
    assert np.loadtxt(tmp_path / "shirt_grad_cam.csv", delimiter=",").shape == (28, 28)
    assert (tmp_path / "shirt_explain.png").stat().st_size > 1000


def test_explain_reports_integrated_gradients_completeness_as_a_share_of_the_score_change(tmp_path, shirt, capsys):
    boot = SAMPLES / "fmnist_0000_ankle_boot.png"
    assert main(["explain", "resnet38.fmnist", str(boot), "--method", "integrated_gradients", "--baseline", "black",
                 "--out", str(tmp_path)]) == 0
    entry = json.loads((tmp_path / "fmnist_0000_ankle_boot_explain.json").read_text())["methods"]["integrated_gradients"]
    assert entry["steps"] >= 32 and 0 <= entry["completeness_error"] < 0.05
    printed = capsys.readouterr()
    assert f"{entry['steps']} steps" in printed.out and f"within {entry['completeness_error']:.1%}" in printed.out
    assert "warning" not in printed.err and entry["warning"] is None
    # a synthetic rectangle on white, not inverted, is far from the training data: 32 fixed steps miss by more
    assert main(["explain", "resnet38.fmnist", str(shirt), "--method", "integrated_gradients", "--steps", "32",
                 "--out", str(tmp_path)]) == 0
    entry = json.loads((tmp_path / "shirt_explain.json").read_text())["methods"]["integrated_gradients"]
    assert entry["steps"] == 32 and entry["completeness_error"] >= 0.05
    warning = capsys.readouterr().err
    assert warning.startswith("warning: Integrated Gradients did not converge: after 32 steps") and "--baseline" in warning
    assert entry["warning"] in warning


def test_explain_warns_when_integrated_gradients_hits_its_step_cap(tmp_path, capsys):
    boot = SAMPLES / "fmnist_0000_ankle_boot.png"  # explaining "Sneaker" (7) from black: 48% off after 256 steps
    assert main(["explain", "nl_resnet38.fmnist", str(boot), "--method", "integrated_gradients", "--target", "7",
                 "--baseline", "black", "--out", str(tmp_path)]) == 0
    entry = json.loads((tmp_path / "fmnist_0000_ankle_boot_explain.json").read_text())["methods"]["integrated_gradients"]
    assert entry["steps"] == 256 and entry["completeness_error"] > 0.4
    assert "after 256 steps" in entry["warning"] and "not reliable" in entry["warning"]
    assert capsys.readouterr().err.count("warning: Integrated Gradients did not converge") == 1


def test_erf_on_noise_writes_metrics(tmp_path):
    assert main(["erf", "resnet38.fmnist", "--stage", "layer1", "--count", "4", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "erf_layer1.json").read_text())
    assert metrics["receptive_field_px"] == 11 and metrics["num_images"] == 4
    assert metrics["input_size"] == [1, 28, 28] and metrics["outside_rf_share"] == 0.0
    assert set(metrics["area_ratios"]) == {"0.2", "0.3", "0.5", "0.99"}
    assert np.loadtxt(tmp_path / "erf_layer1_contribution.csv", delimiter=",").shape == (28, 28)
    assert (tmp_path / "erf_layer1.png").exists() and (tmp_path / "erf_layer1_radial.csv").exists()


def test_erf_on_image_files_and_a_checkpoint_path(tmp_path, shirt):
    checkpoint = CHECKPOINT_DIR / "sb_resnet38_fmnist.safetensors"
    assert main(["erf", str(checkpoint), "--stage", "layer2", "--images", str(shirt), str(shirt),
                 "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "erf_layer2.json").read_text())["num_images"] == 2


def test_bench_writes_a_row_per_model_and_batch(tmp_path, capsys):
    assert main(["bench", "resnet38.fmnist", "sb_resnet38.fmnist", "--batch-sizes", "1", "2",
                 "--min-run-time", "0.02", "--rounds", "1", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "throughput.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["batch_size"]) for r in rows] == [
        ("resnet38.fmnist", "1"), ("sb_resnet38.fmnist", "1"), ("resnet38.fmnist", "2"), ("sb_resnet38.fmnist", "2")]
    assert all(float(r["img_per_s"]) > 0 and r["vs_baseline"] for r in rows)
    assert json.loads((tmp_path / "throughput.json").read_text())["input_size"] == [1, 28, 28]
    assert (tmp_path / "throughput.png").exists()
    assert "sb_resnet38.fmnist" in capsys.readouterr().out


def test_bench_by_cpu_time_needs_one_thread_and_then_measures(tmp_path, capsys):
    argv = ["bench", "resnet38.fmnist", "--batch-sizes", "1", "--min-run-time", "0.02", "--rounds", "2", "--cpu-time",
            "--out", str(tmp_path)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(argv) == 2
        assert "one torch thread" in capsys.readouterr().err
        torch.set_num_threads(1)
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    rows = json.loads((tmp_path / "throughput.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["img_per_s"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["maps", "sb_resnet38.fmnist", "{bad}"], "is not an image"),
        (["maps", "sb_resnet99", "{shirt}"], "Unknown model 'sb_resnet99'"),
        (["maps", "sb_resnet38.fmnist", "{shirt}", "--steps", "layer9.0"], "no spatial-bias branch"),
        (["explain", "sb_resnet38.fmnist", "{shirt}", "--target", "12"], "classes 0 to 9"),
        (["erf", "sb_resnet38.fmnist", "--stage", "layer7"], "Unknown stage 'layer7'"),
        (["bench", "sb_resnet38.fmnist", "resnet50", "--min-run-time", "0.01"], "input channels"),
    ],
)
def test_user_errors_print_one_line(tmp_path, shirt, capsys, argv, message):
    bad = tmp_path / "bad.png"
    bad.write_text("not pixels")
    argv = [a.format(bad=bad, shirt=shirt) for a in argv] + ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bar
    assert error.startswith(f"sbcore {argv[0]}: error:") and message in error


@pytest.mark.parametrize("command, option", [("maps", "--query"), ("explain", "--smoothgrad"), ("erf", "--count"),
                                             ("bench", "--channels-last"), ("bench", "--cpu-time")])
def test_help_explains_the_options(capsys, command, option):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert option in capsys.readouterr().out
